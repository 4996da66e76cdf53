"""``GET /api/v1/contacts/{id}/processing-log``: a person's records of processing, through the
real app on both dialects (entries written by the store, as the recorders write them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from campaignflow.domain.processing import Activity, ProcessingEntry
from campaignflow.security.rbac import Role
from campaignflow.store.database import Database
from campaignflow.store.processing_log import ProcessingLogStore
from tests.integration.api.conftest import ClientFactory, make_settings
from tests.integration.api.test_authorization import make_key

T0 = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)


async def contact(client: httpx.AsyncClient, email: str = "ada@example.com") -> str:
    created = await client.post("/api/v1/contacts", json={"email": email})
    assert created.status_code == 201, created.text
    contact_id: str = created.json()["id"]
    return contact_id


async def record(
    database: Database, workspace: str, contact_id: str, minutes: range, **kwargs: str
) -> None:
    entries = [
        ProcessingEntry.of(
            workspace_id=workspace,
            contact_id=contact_id,
            occurred_at=T0 + timedelta(minutes=minute),
            activity=Activity(kwargs.get("activity", "action")),
            purpose=kwargs.get("purpose", "marketing"),
            recipient=kwargs.get("recipient", "sendgrid (mail)"),
            details={"minute": minute},
        )
        for minute in minutes
    ]
    await ProcessingLogStore(database).add(entries)


async def test_the_log_pages_newest_first_and_filters(
    client: httpx.AsyncClient, database: Database
) -> None:
    ada = await contact(client)
    await record(database, "default", ada, range(5))
    await record(
        database, "default", ada, range(10, 11), activity="export", purpose="access_request"
    )
    url = f"/api/v1/contacts/{ada}/processing-log"

    first = (await client.get(url, params={"limit": 4})).json()
    rest = (await client.get(url, params={"limit": 4, "cursor": first["nextCursor"]})).json()
    exports = (await client.get(url, params={"activity": "export"})).json()
    window = (
        await client.get(
            url, params={"since": "2026-03-27T08:01:00Z", "before": "2026-03-27T09:03:00+01:00"}
        )
    ).json()

    minutes = [item["details"]["minute"] for item in first["items"] + rest["items"]]
    assert minutes == [10, 4, 3, 2, 1, 0]
    assert rest["nextCursor"] is None
    assert first["items"][1] == {
        "id": first["items"][1]["id"],
        "occurredAt": "2026-03-27T08:04:00Z",
        "activity": "action",
        "purpose": "marketing",
        "legalBasis": "consent",
        "recipient": "sendgrid (mail)",
        "details": {"minute": 4},
    }
    assert [(i["activity"], i["legalBasis"], i["recipient"]) for i in exports["items"]] == [
        ("export", "legal_obligation", "sendgrid (mail)")
    ]
    assert [item["details"]["minute"] for item in window["items"]] == [2, 1]


async def test_bad_parameters_are_400_naming_them(client: httpx.AsyncClient) -> None:
    ada = await contact(client)
    url = f"/api/v1/contacts/{ada}/processing-log"

    bad_time = await client.get(url, params={"since": "yesterday"})
    bad_cursor = await client.get(url, params={"cursor": "nope"})

    assert bad_time.status_code == 400
    assert bad_time.json()["errors"][0]["parameter"] == "since"
    assert bad_cursor.status_code == 400


async def test_an_unknown_contact_and_another_workspaces_contact_are_404(
    app_client: ClientFactory, database: Database
) -> None:
    async with app_client(make_settings("acme")) as acme:
        ada = await contact(acme)
        await record(database, "acme", ada, range(2))
        async with app_client(make_settings("globex")) as globex:
            theirs = await globex.get(f"/api/v1/contacts/{ada}/processing-log")
            unknown = await acme.get("/api/v1/contacts/no-such-contact/processing-log")
        own = await acme.get(f"/api/v1/contacts/{ada}/processing-log")

    assert theirs.status_code == 404
    assert theirs.headers["content-type"] == "application/problem+json"
    assert unknown.status_code == 404
    assert len(own.json()["items"]) == 2


async def test_only_admins_and_up_may_read_it(client: httpx.AsyncClient) -> None:
    ada = await contact(client)
    url = f"/api/v1/contacts/{ada}/processing-log"
    statuses = {}
    for role in (Role.VIEWER, Role.EDITOR, Role.OPERATOR, Role.ADMIN):
        key = await make_key(client, role)
        response = await client.get(url, headers={"Authorization": f"Bearer {key}"})
        statuses[role.value] = response.status_code

    assert statuses == {"viewer": 403, "editor": 403, "operator": 403, "admin": 200}
