"""After an end-to-end run on PostgreSQL and Redis (`serve` + `worker`, API keys, an OAuth
client and its token, Segment calls carrying an email and a phone, a stored integration secret,
refused attempts with made-up keys), no credential is in the raw database or in Redis, and no
credential, email or phone number is in any log line of either process."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx
import pytest
from redis import Redis
from sqlalchemy import text

from campaignflow.config import Settings
from campaignflow.security.key_file import load_key_ring
from campaignflow.store.database import Database
from campaignflow.store.secrets import DatabaseSecretStore
from campaignflow.store.tables import metadata
from tests.e2e.conftest import TEST_MASTER_KEY, TOKEN, bus_env, spawn_worker, start_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

EMAIL = f"ann.{secrets.token_hex(3)}@example.com"
OTHER_EMAIL = f"bob.{secrets.token_hex(3)}@example.org"
PHONE = "+1 415 555 0199"
INTEGRATION_SECRET = "SG." + secrets.token_urlsafe(24)
MADE_UP_KEY = "cf_Zz99Yy88_" + secrets.token_urlsafe(32)


@pytest.fixture
def env(postgres_database_url: str, redis_url: str, stream_prefix: str) -> dict[str, str]:
    return bus_env(
        postgres_database_url,
        redis_url,
        stream_prefix,
        CAMPAIGNFLOW_EVENTS__SHARDS="2",
        CAMPAIGNFLOW_LOG__FORMAT="json",
    )


def _exercise(base: str) -> list[str]:
    """Use every kind of credential; return the credentials that were issued."""
    owner = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"})
    with owner:
        write_key = owner.post(
            "/api/v1/api-keys", json={"name": "site", "scopes": ["events:write"]}
        ).json()["key"]
        client = owner.post("/api/v1/oauth-clients", json={"name": "etl", "role": "editor"}).json()
        token = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client["clientId"], client["clientSecret"]),
        ).json()["access_token"]
        assert owner.post(
            "/api/v1/contacts", json={"email": OTHER_EMAIL, "traits": {"phone": PHONE}}
        ).is_success
        assert owner.get("/api/v1/contacts", params={"email": OTHER_EMAIL}).is_success
    sender = httpx.Client(base_url=base, auth=(write_key, ""))
    with sender:
        identify = {"userId": "ann", "traits": {"email": EMAIL, "phone": PHONE}}
        assert sender.post("/v1/identify", json=identify).is_success
        track = {"userId": "ann", "event": "signed_up", "properties": {"plan": "pro"}}
        assert sender.post("/v1/track", json=track).is_success
    as_client = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/api/v1/workflows", headers=as_client).is_success
    refused = httpx.get(
        f"{base}/api/v1/workflows", headers={"Authorization": f"Bearer {MADE_UP_KEY}"}
    )
    assert refused.status_code == 401
    assert httpx.post(f"{base}/v1/track", json=track, auth=(MADE_UP_KEY, "")).status_code == 401
    return [write_key, client["clientSecret"], token]


def _wait_for_contact(base: str) -> None:
    deadline = time.monotonic() + 30
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while time.monotonic() < deadline:
        found = httpx.get(f"{base}/api/v1/contacts", params={"userId": "ann"}, headers=headers)
        if found.json()["items"]:
            return
        time.sleep(0.2)
    pytest.fail("the identify call was not routed")


async def _seed_secret(url: str) -> None:
    database = Database.from_url(url)
    ring = load_key_ring(Settings(encryption={"master_key": TEST_MASTER_KEY}).encryption)
    try:
        await DatabaseSecretStore(database, ring).put(
            "default", "sendgrid", {"apiKey": INTEGRATION_SECRET}
        )
    finally:
        await database.dispose()


async def _database_text(url: str) -> str:
    """Every row of every table, as PostgreSQL prints it."""
    database = Database.from_url(url)
    try:
        async with database.read() as connection:
            parts = []
            for table in metadata.sorted_tables:
                rows = await connection.execute(text(f"SELECT t::text FROM {table.name} t"))
                parts.extend(row[0] for row in rows)
            return "\n".join(parts)
    finally:
        await database.dispose()


def _redis_text(url: str) -> str:
    """Every value of every key, read by type (DUMP may compress and hide a plaintext)."""
    client = Redis.from_url(url)
    parts: list[str] = []
    try:
        for key in client.scan_iter():
            kind = client.type(key).decode()
            value: object = {
                "string": client.get,
                "hash": client.hgetall,
                "list": lambda k: client.lrange(k, 0, -1),
                "set": client.smembers,
                "zset": lambda k: client.zrange(k, 0, -1),
                "stream": client.xrange,
            }.get(kind, lambda k: None)(key)
            parts.append(f"{key!r} {value!r}")
    finally:
        client.close()
    return "\n".join(parts)


@pytest.mark.timeout(120)
def test_no_credential_at_rest_and_no_credential_or_pii_in_logs(
    env: dict[str, str], postgres_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    asyncio.run(_seed_secret(postgres_database_url))
    worker_log = tmp_path / "worker.log"
    worker = spawn_worker(env, worker_log)
    try:
        with start_server(["serve"], env, tmp_path / "serve.log") as server:
            issued = _exercise(server.url)
            _wait_for_contact(server.url)
    finally:
        worker.terminate()
        worker.wait(timeout=15)

    credentials = [TOKEN, MADE_UP_KEY, INTEGRATION_SECRET, *issued]
    stored = asyncio.run(_database_text(postgres_database_url))
    assert "ann" in stored  # the scan reads the data (the routed contact is there)
    cached = _redis_text(redis_url)
    for credential in credentials:
        assert credential not in stored
        assert credential not in cached
    assert "PRIVATE KEY" not in stored  # signing keys are sealed

    logs = (tmp_path / "serve.log").read_text() + worker_log.read_text()
    assert '"event"' in logs  # JSON lines were written: the scan reads something
    for secret in [*credentials, EMAIL, OTHER_EMAIL, PHONE, PHONE.replace(" ", "")]:
        assert secret not in logs, secret
