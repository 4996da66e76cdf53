"""``rotate-key`` on a real database (SQLite and PostgreSQL): after it every sealed value is under
the new key and opens without the old one; a run that dies half-way loses nothing and the next
run finishes the job."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import insert, select

from campaignflow.config import Settings, get_settings
from campaignflow.errors import SealedDataError
from campaignflow.security.envelope import KeyRing
from campaignflow.security.key_file import (
    effective_encryption,
    embedded_encryption,
    ensure_key_file,
    load_key_ring,
    rotate_key_file,
)
from campaignflow.security.rotation import rotate_keys, rotate_keys_in
from campaignflow.store.database import Database
from campaignflow.store.secrets import SIGNING_KEY_CONTEXT, DatabaseSecretStore, secret_context
from campaignflow.store.tables import secrets, signing_keys

SECRETS = {("acme", f"s{n}"): {"apiKey": f"key-{n}"} for n in range(4)} | {
    ("globex", f"s{n}"): {"apiKey": f"globex-{n}"} for n in range(3)
}
PEM = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI...\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "keys.json"
    ensure_key_file(path)
    return get_settings(encryption={"key_file": path, "rewrap_batch_size": 3})


async def seed(database: Database, ring: KeyRing) -> None:
    store = DatabaseSecretStore(database, ring)
    for (workspace_id, secret_id), value in SECRETS.items():
        await store.put(workspace_id, secret_id, value)
    now = datetime.now(UTC)
    async with database.transaction() as connection:
        await connection.execute(
            insert(signing_keys),
            [
                {
                    "kid": kid,
                    "algorithm": "EdDSA",
                    "private_key": ring.seal(PEM, context=SIGNING_KEY_CONTEXT + kid),
                    "public_jwk": {"kty": "OKP", "kid": kid},
                    "created_at": now,
                    "signs_from": now,
                }
                for kid in ("sig1", "sig2")
            ],
        )


async def key_ids(database: Database) -> set[str]:
    async with database.read() as connection:
        return set((await connection.execute(select(secrets.c.key_id))).scalars())


async def assert_everything_opens(database: Database, ring: KeyRing) -> None:
    store = DatabaseSecretStore(database, ring)
    for (workspace_id, secret_id), value in SECRETS.items():
        assert await store.get(workspace_id, secret_id) == value
    async with database.read() as connection:
        rows = (await connection.execute(select(signing_keys))).all()
    for row in rows:
        assert ring.open(row.private_key, context=SIGNING_KEY_CONTEXT + row.kid) == PEM


def only(ring: KeyRing, key_id: str) -> KeyRing:
    return KeyRing({key_id: ring.keys[key_id]}, key_id)


async def test_rotation_moves_every_value_under_the_new_key(
    database: Database, settings: Settings
) -> None:
    old = load_key_ring(settings.encryption)
    await seed(database, old)

    report = await rotate_keys(settings, database)

    ring = load_key_ring(settings.encryption)
    assert report.new_key
    assert report.active_key_id == ring.active_id != old.active_id
    assert (report.secrets_rewrapped, report.signing_keys_rewrapped) == (len(SECRETS), 2)
    assert await key_ids(database) == {ring.active_id}
    await assert_everything_opens(database, ring)
    await assert_everything_opens(database, only(ring, ring.active_id))  # old key retired


async def test_running_it_again_rewraps_nothing_twice(
    database: Database, settings: Settings
) -> None:
    await seed(database, load_key_ring(settings.encryption))
    await rotate_keys(settings, database)
    again = await rotate_keys(settings, database, new_key=False)
    assert (again.secrets_rewrapped, again.signing_keys_rewrapped, again.new_key) == (0, 0, False)


class CrashingRing:
    """The real key ring, except that re-wrapping raises after ``survive`` rows: it stands in
    for a process killed in the middle of the second batch, which a test cannot do to itself
    at that exact point."""

    def __init__(self, ring: KeyRing, survive: int) -> None:
        self._ring = ring
        self._left = survive
        self.active_id = ring.active_id
        self.seal, self.open, self.key_id_of = ring.seal, ring.open, ring.key_id_of

    def rewrap(self, sealed: str, *, context: str) -> str:
        if self._left == 0:
            raise RuntimeError("killed")
        self._left -= 1
        return self._ring.rewrap(sealed, context=context)


async def test_a_rotation_that_dies_half_way_loses_nothing_and_a_second_run_finishes(
    database: Database, settings: Settings
) -> None:
    await seed(database, load_key_ring(settings.encryption))
    assert settings.encryption.key_file is not None
    new_id = rotate_key_file(settings.encryption.key_file)
    ring = load_key_ring(settings.encryption)

    crashing = DatabaseSecretStore(database, CrashingRing(ring, survive=4))  # batches of 3
    with pytest.raises(RuntimeError, match="killed"):
        await crashing.rewrap_all(batch_size=3)

    assert len(await key_ids(database)) == 2  # the first batch committed, the second did not
    await assert_everything_opens(database, ring)

    report = await rotate_keys(settings, database, new_key=False)
    assert report.active_key_id == new_id
    assert report.secrets_rewrapped == len(SECRETS) - 3
    assert await key_ids(database) == {new_id}
    await assert_everything_opens(database, only(ring, new_id))


async def test_a_value_under_a_key_no_longer_in_the_ring_stops_the_run_naming_it(
    database: Database, settings: Settings
) -> None:
    stranger = KeyRing({"lost": os.urandom(32)}, "lost")
    await DatabaseSecretStore(database, stranger).put("acme", "orphan", {"apiKey": "x"})
    with pytest.raises(SealedDataError, match="'orphan' of workspace 'acme'"):
        await rotate_keys(settings, database)


async def test_with_a_master_key_it_explains_that_the_operator_rotates_it(
    database: Database,
) -> None:
    key = SecretStr(base64.b64encode(os.urandom(32)).decode())
    settings = get_settings(encryption={"master_key": key})
    await seed(database, load_key_ring(settings.encryption))
    report = await rotate_keys(settings, database)
    assert not report.new_key
    assert report.secrets_rewrapped == 0
    assert report.note is not None
    assert "KEY_FILE" in report.note


def test_secret_contexts_cannot_collide() -> None:
    assert secret_context("a/b", "c") != secret_context("a", "b/c")


async def test_the_cli_entry_point_rotates_the_embedded_key_file(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = get_settings(data_dir=data_dir, database_url=database_url)
    ring = load_key_ring(embedded_encryption(settings.encryption, data_dir))
    await seed(database, ring)

    report = await rotate_keys_in(settings)

    assert report.new_key
    assert await key_ids(database) == {report.active_key_id}
    assert report.active_key_id != ring.active_id
    await assert_everything_opens(
        database, load_key_ring(effective_encryption(settings.encryption, data_dir))
    )
