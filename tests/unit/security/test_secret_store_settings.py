"""Choosing the secret store by settings: the environment names an operator sets, and a Vault
store that cannot work is refused at start-up rather than at the first credential read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from campaignflow.config import get_settings
from campaignflow.security.settings import SecretStoreSettings


def test_the_database_store_is_the_default() -> None:
    assert get_settings().secrets.secret_store == "database"


def test_vault_is_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNFLOW_SECRETS__SECRET_STORE", "vault")
    monkeypatch.setenv("CAMPAIGNFLOW_SECRETS__VAULT_URL", "https://vault.internal:8200")
    monkeypatch.setenv("CAMPAIGNFLOW_SECRETS__VAULT_TOKEN", "hvs.example")
    secrets = get_settings().secrets
    assert (secrets.secret_store, secrets.vault_mount, secrets.vault_path_prefix) == (
        "vault",
        "secret",
        "campaignflow",
    )
    assert secrets.vault_token is not None
    assert "hvs.example" not in repr(secrets)


@pytest.mark.parametrize("missing", ["vault_url", "vault_token"])
def test_vault_without_an_address_or_token_is_refused(missing: str) -> None:
    values = {"secret_store": "vault", "vault_url": "http://v:8200", "vault_token": "t"}
    del values[missing]
    with pytest.raises(ValidationError, match=r"vault_url and secrets\.vault_token"):
        SecretStoreSettings.model_validate(values)
