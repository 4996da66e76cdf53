"""Settings: env names derived from the path, insecure production refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from campaignflow.config import Settings, get_settings
from campaignflow.errors import ConfigurationError


def test_environment_variables_follow_the_settings_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CAMPAIGNFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAMPAIGNFLOW_API__MAX_BODY_BYTES", "4096")

    settings = get_settings()

    assert settings.data_dir == tmp_path
    assert settings.api.max_body_bytes == 4096
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'campaignflow.db'}"


def test_an_explicit_database_url_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://db/cf")

    assert settings.resolved_database_url == "postgresql://db/cf"


KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes


def test_production_without_an_encryption_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY"):
        Settings(mode="production").require_secure()


def test_production_with_a_key_and_no_bootstrap_token_may_start() -> None:
    Settings(mode="production", encryption={"master_key": KEY}).require_secure()


def test_production_with_a_short_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="24"):
        Settings(
            mode="production", api_token=SecretStr("short"), encryption={"master_key": KEY}
        ).require_secure()


def test_embedded_mode_may_start_without_a_token() -> None:
    Settings(mode="embedded").require_secure()


def test_page_size_default_cannot_exceed_the_maximum() -> None:
    with pytest.raises(ValueError, match="page_size_default"):
        Settings(api={"page_size_default": 100, "page_size_max": 10})
