"""The harness itself: without Prism installed, the contract tests fail and say how to
install it (they are never skipped)."""

from __future__ import annotations

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


def test_every_spec_file_is_present() -> None:
    assert all(path.is_file() for path in SPEC_FILES.values()), SPEC_FILES
