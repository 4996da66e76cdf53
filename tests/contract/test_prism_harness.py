"""The harness itself: without Prism installed, the contract tests fail and say how to
install it (they are never skipped)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.contract import prism
from tests.contract.conftest import SPEC_FILES


def test_a_missing_prism_fails_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prism, "PRISM", tmp_path / "node_modules" / ".bin" / "prism")
    with (
        pytest.raises(prism.PrismUnavailable, match=r"npm ci --no-audit --no-fund"),
        prism.prism_servers(SPEC_FILES, tmp_path),
    ):
        pass  # pragma: no cover


def test_every_spec_unpacks_to_the_recorded_bytes(tmp_path: Path) -> None:
    for relative in SPEC_FILES.values():
        assert prism.unpacked(relative, tmp_path).stat().st_size > 1000, relative


def test_a_changed_spec_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "specs"
    copy.mkdir()
    (copy / "SHA256SUMS").write_text((prism.SPECS / "SHA256SUMS").read_text())
    (copy / "sendgrid").mkdir()
    (copy / "sendgrid" / "tsg_mail_v3.json.gz").write_bytes(gzip.compress(b'{"openapi": 1}'))
    monkeypatch.setattr(prism, "SPECS", copy)
    with pytest.raises(prism.PrismUnavailable, match="sha256"):
        prism.unpacked("sendgrid/tsg_mail_v3.json", tmp_path / "out")
