"""Settings of encryption at rest and of the secret store (``Settings.encryption``,
``Settings.secrets``).

Kept apart from the modules that use them so that ``config`` imports no cryptography, database or
HTTP client when a process reads its settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

SecretStoreKind = Literal["database", "vault"]


class EncryptionSettings(BaseModel):
    """Where the key-encryption keys come from: a key file, or one key in the environment."""

    key_file: Path | None = Field(
        None,
        description='JSON key file {"active": id, "keys": {id: base64 key}, "blind_index": '
        "base64 key}, mode 0600. `campaignflow rotate-key` adds a key to it. Embedded mode "
        "creates data_dir/keys.json when neither this nor master_key is set.",
    )
    master_key: SecretStr | None = Field(
        None,
        description="One base64 256-bit key-encryption key (CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY), "
        "instead of a key file; its id is derived from its hash.",
    )
    blind_index_key: SecretStr | None = Field(
        None,
        description="Base64 256-bit key of the blind indexes of encrypted contact fields. "
        "Default: the key file's blind_index key, else derived from master_key. It must never "
        "change once data is stored: every lookup digest depends on it.",
    )
    rewrap_batch_size: int = Field(
        500, ge=1, le=10_000, description="Rows re-wrapped per transaction by rotate-key."
    )
    sensitive_contact_fields: list[str] = Field(
        default_factory=lambda: ["email", "phone"],
        description="Contact fields encrypted at rest: the email column and top-level traits "
        "with these keys (case-insensitive), sealed into one document per contact and per "
        "execution snapshot. Email identities are always stored as a keyed blind index. "
        "Removing a field later keeps values sealed before readable.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EncryptionSettings:
        if self.key_file is not None and self.master_key is not None:
            raise ValueError("set encryption.key_file or encryption.master_key, not both")
        return self


class SecretStoreSettings(BaseModel):
    """Which store keeps integration credentials: the database (sealed) or HashiCorp Vault."""

    secret_store: SecretStoreKind = Field(
        "database",
        description="`database`: sealed rows of the system of record; `vault`: a Vault (or "
        "OpenBao) KV version 2 mount.",
    )
    vault_url: str | None = Field(None, description="Vault address, e.g. https://vault:8200.")
    vault_token: SecretStr | None = Field(None, description="Vault token with KV access.")
    vault_mount: str = Field("secret", min_length=1, description="Mount path of the KV v2 engine.")
    vault_path_prefix: str = Field(
        "campaignflow",
        min_length=1,
        description="Secrets live at <prefix>/<workspace id>/<secret id> under the mount.",
    )
    vault_timeout_seconds: int = Field(
        5, ge=1, le=120, description="Timeout of one request to Vault."
    )

    @model_validator(mode="after")
    def _vault_configured(self) -> SecretStoreSettings:
        vault = self.secret_store == "vault"  # noqa: S105 — a backend name, not a secret
        if vault and (self.vault_url is None or self.vault_token is None):
            raise ValueError("secrets.vault_url and secrets.vault_token are needed for vault")
        return self
