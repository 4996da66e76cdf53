"""The embedded bootstrap token: generated once, private to its owner."""

from __future__ import annotations

from pathlib import Path

from campaignflow.security.credentials import ensure_bootstrap_token, tokens_match


def test_the_bootstrap_token_is_created_once_and_private(tmp_path: Path) -> None:
    first = ensure_bootstrap_token(tmp_path / "data")
    second = ensure_bootstrap_token(tmp_path / "data")

    assert first.created
    assert not second.created
    assert first.value == second.value
    assert len(first.value) >= 40
    assert first.path.stat().st_mode & 0o077 == 0


def test_tokens_match_only_when_identical() -> None:
    assert tokens_match("cf_abc", "cf_abc")
    assert not tokens_match("cf_abc", "cf_abd")
    assert not tokens_match("", "cf_abc")
