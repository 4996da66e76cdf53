"""``/api/v1/privacy/retention``: the policy (defaults, replace, problems) and the purges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert

from campaignflow.compliance.retention import RetentionPurger
from campaignflow.domain.retention import PurgeLimits
from campaignflow.services.retention import RetentionService
from campaignflow.store.database import Database
from campaignflow.store.retention import RetentionStore
from campaignflow.store.tables import events
from tests.integration.api.conftest import ClientFactory, make_settings
from tests.integration.compliance.test_retention import event_row, seed_workspace

DEFAULTS = {
    "events": 365,
    "webhookPayloads": 90,
    "executionLogs": 180,
    "processingLog": 1095,
    "auditLog": 2555,
}


async def test_a_workspace_reads_the_defaults_until_it_sets_its_own(
    client: httpx.AsyncClient,
) -> None:
    before = await client.get("/api/v1/privacy/retention")
    replaced = await client.put("/api/v1/privacy/retention", json={"events": 30})
    after = await client.get("/api/v1/privacy/retention")

    assert before.status_code == 200, before.text
    assert before.json() == DEFAULTS
    assert replaced.status_code == 200, replaced.text
    assert after.json() == {**DEFAULTS, "events": 30}


async def test_every_problem_of_a_policy_has_its_pointer(client: httpx.AsyncClient) -> None:
    answer = await client.put(
        "/api/v1/privacy/retention", json={"events": 0, "auditLogs": 10, "executionLogs": "9"}
    )
    longer = await client.put(
        "/api/v1/privacy/retention", json={"processingLog": 3000, "auditLog": 2000}
    )

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    pointers = {error["pointer"] for error in answer.json()["errors"]}
    assert pointers == {"/events", "/auditLogs", "/executionLogs"}
    assert longer.status_code == 422
    assert [error["pointer"] for error in longer.json()["errors"]] == ["/processingLog"]
    assert (await client.get("/api/v1/privacy/retention")).json() == DEFAULTS  # nothing stored


async def test_the_purges_are_listed_newest_first(
    client: httpx.AsyncClient, database: Database
) -> None:
    now = datetime.now(UTC)
    await client.put("/api/v1/privacy/retention", json={"events": 1})
    await seed_workspace(database, "scratch")  # another workspace, to show isolation
    async with database.transaction() as connection:
        old = now - timedelta(days=2)
        await connection.execute(
            insert(events),
            [event_row("default", f"m{n}", old, webhook=False) for n in range(3)]
            + [event_row("scratch", "s1", old - timedelta(days=400), webhook=False)],
        )
    service = RetentionService(RetentionStore(database), lambda: now)
    purger = RetentionPurger(
        RetentionStore(database), service.policy, lambda: now, PurgeLimits(pause_seconds=0)
    )
    await purger.run_once()

    runs = await client.get("/api/v1/privacy/retention/runs", params={"dataClass": "events"})
    assert runs.status_code == 200, runs.text
    (run,) = runs.json()["items"]
    assert run["dataClass"] == "events"
    assert run["purged"] == 3
    assert run["complete"] is True
    bad = await client.get("/api/v1/privacy/retention/runs", params={"dataClass": "nope"})
    assert bad.status_code == 400  # a bad query parameter, as everywhere in the API


async def test_only_admins_read_or_change_the_policy(app_client: ClientFactory) -> None:
    async with app_client() as owner:
        editor = await owner.post("/api/v1/principals", json={"name": "e", "role": "editor"})
        key = await owner.post(
            "/api/v1/api-keys", json={"name": "e", "principalId": editor.json()["id"]}
        )
    async with app_client(make_settings(), auth=False) as anonymous:
        as_editor = {"Authorization": f"Bearer {key.json()['key']}"}
        read = await anonymous.get("/api/v1/privacy/retention", headers=as_editor)
        write = await anonymous.put(
            "/api/v1/privacy/retention", json={"events": 1}, headers=as_editor
        )
    assert read.status_code == 403
    assert write.status_code == 403
