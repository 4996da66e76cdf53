"""``/api/v1/suppressions`` and the store the executor asks before sending, on both dialects."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from campaignflow.store.database import Database
from campaignflow.store.suppressions import NewSuppression, SuppressionStore
from campaignflow.store.tables import suppressions
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import ClientFactory, make_settings


async def test_an_address_added_by_hand_is_suppressed_until_lifted(
    client: httpx.AsyncClient, database: Database
) -> None:
    added = await client.post("/api/v1/suppressions", json={"email": " Ada@Example.com"})
    again = await client.post("/api/v1/suppressions", json={"email": "ada@example.com"})
    check = await client.get("/api/v1/suppressions/check", params={"email": "ADA@example.com"})

    assert added.status_code == 201, added.text
    assert again.status_code == 200
    assert again.json() == added.json()
    assert (added.json()["reason"], added.json()["source"]) == ("manual", "api")
    assert check.json()["suppressed"] is True
    assert check.json()["suppression"]["emailDigest"] == added.json()["emailDigest"]
    async with database.read() as connection:
        stored = (await connection.execute(select(suppressions))).all()
    assert "ada@example.com" not in str(stored)  # only the keyed digest is kept

    lifted = await client.delete("/api/v1/suppressions", params={"email": "ada@example.com"})
    gone = await client.delete("/api/v1/suppressions", params={"email": "ada@example.com"})
    after = await client.get("/api/v1/suppressions/check", params={"email": "ada@example.com"})

    assert lifted.status_code == 200
    assert gone.status_code == 404
    assert after.json() == {"email": "ada@example.com", "suppressed": False, "suppression": None}


async def test_the_list_pages_newest_first_and_filters_by_reason(client: httpx.AsyncClient) -> None:
    for address in ("a@x.io", "b@x.io", "c@x.io"):
        assert (
            await client.post("/api/v1/suppressions", json={"email": address})
        ).status_code == 201

    first = (await client.get("/api/v1/suppressions", params={"limit": 2})).json()
    rest = (
        await client.get("/api/v1/suppressions", params={"limit": 2, "cursor": first["nextCursor"]})
    ).json()
    bounces = (await client.get("/api/v1/suppressions", params={"reason": "bounce"})).json()
    bad_cursor = await client.get("/api/v1/suppressions", params={"cursor": "nope"})

    digests = [item["emailDigest"] for item in first["items"] + rest["items"]]
    assert len(digests) == len(set(digests)) == 3
    assert rest["nextCursor"] is None
    created = [item["createdAt"] for item in first["items"] + rest["items"]]
    assert created == sorted(created, reverse=True)
    assert bounces["items"] == []
    assert bad_cursor.status_code == 400


async def test_a_bad_address_points_at_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/suppressions", json={"email": "not an address"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/email"


async def test_workspaces_have_their_own_lists(app_client: ClientFactory) -> None:
    async with app_client(make_settings("acme")) as acme:
        await acme.post("/api/v1/suppressions", json={"email": "ada@example.com"})
        async with app_client(make_settings("globex")) as globex:
            check = await globex.get(
                "/api/v1/suppressions/check", params={"email": "ada@example.com"}
            )
            listed = (await globex.get("/api/v1/suppressions")).json()
            removed = await globex.delete(
                "/api/v1/suppressions", params={"email": "ada@example.com"}
            )
        still = await acme.get("/api/v1/suppressions/check", params={"email": "ada@example.com"})

    assert check.json()["suppressed"] is False
    assert listed["items"] == []
    assert removed.status_code == 404
    assert still.json()["suppressed"] is True


async def test_the_executor_checks_many_recipients_in_one_call(database: Database) -> None:
    store = SuppressionStore(database, contact_cipher())
    added = await store.add(
        "default",
        [
            NewSuppression("bo@x.io", "bounce", "sendgrid", provider_event_id="e1"),
            NewSuppression("BO@x.io", "spam_report", "sendgrid", provider_event_id="e2"),
            NewSuppression("un@x.io", "unsubscribe", "mailchimp_marketing"),
        ],
    )
    recipients = ["Bo@X.io", "un@x.io", "ok@x.io", *(f"r{n}@x.io" for n in range(1200))]

    assert len(added) == 2  # the second entry of one address does not replace the first
    assert await store.suppressed("default", recipients) == {"Bo@X.io", "un@x.io"}
    assert await store.suppressed("other", recipients) == set()
    first = await store.get("default", "bo@x.io")
    assert first is not None
    assert (first.reason, first.provider_event_id) == ("bounce", "e1")
