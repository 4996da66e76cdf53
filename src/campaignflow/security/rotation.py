"""``campaignflow rotate-key``: a new key-encryption key, and every sealed value moved under it.

Rotation never re-encrypts data: it re-wraps each value's data key (see ``envelope``). Re-wrapping
goes in batches, each its own transaction, so it can stop anywhere and be run again: every value
opens throughout, under its old key or the new one. The old keys stay in the key file; remove one
only after a rotation has finished (no value names it any more).
"""

from __future__ import annotations

from dataclasses import dataclass

from campaignflow.config import Settings
from campaignflow.security.key_file import effective_encryption, load_key_ring, rotate_key_file
from campaignflow.store.contact_sealing import rewrap_contacts
from campaignflow.store.database import Database
from campaignflow.store.record_sealing import rewrap_records
from campaignflow.store.secrets import DatabaseSecretStore, rewrap_signing_keys

MASTER_KEY_NOTE = (
    "The key comes from CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY, which rotate-key cannot change: "
    "only values not under that key were re-wrapped. To rotate, keep the keys in a key file "
    "(CAMPAIGNFLOW_ENCRYPTION__KEY_FILE) instead."
)


@dataclass(frozen=True, slots=True)
class RotationReport:
    active_key_id: str  # the key every value is now wrapped with
    new_key: bool  # a key was added to the key file by this run
    secrets_rewrapped: int
    signing_keys_rewrapped: int
    contacts_rewrapped: int = 0
    executions_rewrapped: int = 0
    events_rewrapped: int = 0
    note: str | None = None  # what the operator must know or do


async def rotate_keys(
    settings: Settings, database: Database, *, new_key: bool = True
) -> RotationReport:
    """Rotate the key file (when ``new_key`` and a key file is configured), then re-wrap every
    value not under the active key: the ``secrets`` rows, the JWT signing keys and the
    sealed values of contacts, executions and events.

    ``new_key=False`` only finishes re-wrapping (after a run that stopped half-way). Processes
    that loaded the key ring before the rotation must be restarted to read the new key.
    """
    encryption = effective_encryption(settings.encryption, settings.data_dir)
    key_file = encryption.key_file
    added = new_key and key_file is not None
    if new_key and key_file is not None:
        rotate_key_file(key_file)
    ring = load_key_ring(encryption)
    store = DatabaseSecretStore(database, ring)
    secrets_count = await store.rewrap_all(encryption.rewrap_batch_size)
    signing_count = await rewrap_signing_keys(database, ring)
    contacts_count = await rewrap_contacts(database, ring, encryption.rewrap_batch_size)
    executions_count, events_count = await rewrap_records(
        database, ring, encryption.rewrap_batch_size
    )
    return RotationReport(
        ring.active_id,
        added,
        secrets_count,
        signing_count,
        contacts_rewrapped=contacts_count,
        executions_rewrapped=executions_count,
        events_rewrapped=events_count,
        note=MASTER_KEY_NOTE if key_file is None else None,
    )


async def rotate_keys_in(settings: Settings, *, new_key: bool = True) -> RotationReport:
    """:func:`rotate_keys` on the configured database (what the CLI runs)."""
    database = Database.from_url(settings.resolved_database_url)
    try:
        return await rotate_keys(settings, database, new_key=new_key)
    finally:
        await database.dispose()
