"""``/api/v1/privacy/send-policy``: the workspace's send-time policy, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from campaignflow.store.database import Database
from campaignflow.store.tables import privacy_settings

POLICY = {
    "consent": {"email": "email_marketing", "sms": None},
    "frequencyCaps": [{"channel": "email", "max": 2, "window": "P7D", "onExceed": "defer"}],
    "quietHours": {
        "start": "21:00",
        "end": "08:00",
        "timezone": "Europe/Berlin",
        "channels": ["email", "sms"],
        "onViolation": "defer",
    },
}


async def test_the_defaults_until_set_then_the_policy_as_written(
    client: httpx.AsyncClient,
) -> None:
    default = await client.get("/api/v1/privacy/send-policy")
    put = await client.put("/api/v1/privacy/send-policy", json=POLICY)
    read = await client.get("/api/v1/privacy/send-policy")

    assert default.status_code == 200, default.text
    assert default.json() == {
        "consent": {"email": "email_marketing", "sms": "sms_marketing"},
        "frequencyCaps": [],
        "quietHours": None,
        "updatedBy": None,
        "updatedAt": None,
    }
    assert put.status_code == 200, put.text
    body = read.json()
    assert {key: body[key] for key in POLICY} == POLICY
    assert body["updatedBy"]
    assert body == put.json()


async def test_a_consent_map_without_sms_keeps_sms_consent_required(
    client: httpx.AsyncClient,
) -> None:
    put = await client.put("/api/v1/privacy/send-policy", json={"consent": {"email": None}})

    assert put.json()["consent"] == {"email": None, "sms": "sms_marketing"}


async def test_every_problem_is_reported_with_its_pointer(client: httpx.AsyncClient) -> None:
    bad = {
        "consent": {"email": "Email Marketing"},
        "frequencyCaps": [{"channel": "sms", "max": 0, "window": "1 day"}],
        "quietHours": {"start": "25:00", "end": "08:00", "timezone": "Mars/Base"},
        "quietHour": None,
    }
    answer = await client.put("/api/v1/privacy/send-policy", json=bad)
    unchanged = await client.get("/api/v1/privacy/send-policy")

    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    pointers = {problem["pointer"] for problem in answer.json()["errors"]}
    assert {
        "/consent/email",
        "/frequencyCaps/0/max",
        "/frequencyCaps/0/window",
        "/quietHours/start",
        "/quietHours/timezone",
        "/quietHour",
    } <= pointers
    assert unchanged.json()["updatedAt"] is None  # nothing was stored


async def test_a_write_keeps_the_retention_settings_of_the_row(
    client: httpx.AsyncClient, database: Database
) -> None:
    retention = {"events": "P90D"}
    async with database.transaction() as connection:
        await connection.execute(
            privacy_settings.insert().values(
                workspace_id="default",
                send_policy=None,
                retention=retention,
                updated_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    put = await client.put("/api/v1/privacy/send-policy", json=POLICY)

    assert put.status_code == 200, put.text
    async with database.read() as connection:
        row = (await connection.execute(select(privacy_settings))).one()
    assert row.retention == retention
    assert row.send_policy["frequencyCaps"] == POLICY["frequencyCaps"]
