"""The contact cipher tests build their stores and engines with: fixed keys, default fields."""

from __future__ import annotations

from campaignflow.security.blind_index import BlindIndex
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.envelope import KeyRing
from campaignflow.security.key_file import load_blind_index, load_key_ring
from campaignflow.security.settings import EncryptionSettings

TEST_KEY_ID = "test-key"
TEST_KEY = bytes(range(32))
TEST_BLIND_INDEX_KEY = bytes(range(32, 64))


def fixed_key_ring() -> KeyRing:
    return KeyRing({TEST_KEY_ID: TEST_KEY}, TEST_KEY_ID)


def contact_cipher(fields: list[str] | None = None) -> ContactCipher:
    """Sealing ``fields`` (default: the setting's default, email and phone)."""
    chosen = EncryptionSettings().sensitive_contact_fields if fields is None else fields
    return ContactCipher(fixed_key_ring(), BlindIndex(TEST_BLIND_INDEX_KEY), chosen)


def master_key_cipher(master_key: str) -> ContactCipher:
    """The cipher a ``serve``/``worker`` subprocess builds from
    ``CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY`` (for tests that write rows those processes read)."""
    encryption = EncryptionSettings.model_validate({"master_key": master_key})
    return ContactCipher(
        load_key_ring(encryption), load_blind_index(encryption), encryption.sensitive_contact_fields
    )
