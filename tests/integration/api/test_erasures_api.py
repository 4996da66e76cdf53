"""Erasures as a client sees them (SQLite and PostgreSQL): ask, follow, list; and
``DELETE /contacts/{id}``, which is an erasure now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from campaignflow.compliance.erasure import ErasureRunner, ErasureWorker, NoStream
from campaignflow.security.contact_fields import contact_cipher_from
from campaignflow.security.rbac import Role
from campaignflow.store.database import Database
from campaignflow.store.erasure import ErasureStore
from tests._support.api_clients import bearer
from tests.integration.api.conftest import ClientFactory, make_settings
from tests.integration.api.test_authorization import make_key

PROBLEM = "application/problem+json"


async def run_erasures(database: Database) -> int:
    """Carry every queued erasure as a worker would; how many ran."""
    store = ErasureStore(database, contact_cipher_from(make_settings()))
    later = datetime.now(UTC) + timedelta(seconds=1)
    runner = ErasureRunner(store, NoStream(), None, "test-worker", lambda: later)
    worker, ran = ErasureWorker(runner), 0
    while await worker.run_once():
        ran += 1
    return ran


async def contact(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/api/v1/contacts", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_an_erasure_by_email_is_accepted_then_done_without_naming_the_person(
    client: httpx.AsyncClient, database: Database
) -> None:
    contact_id = await contact(client, userId="ada-1", email="ada@example.com")

    asked = await client.post("/api/v1/erasures", json={"email": "  Ada@Example.com "})

    assert asked.status_code == 202, asked.text
    job = asked.json()
    assert asked.headers["location"] == f"/api/v1/erasures/{job['id']}"
    assert job["status"] == "queued"
    assert set(job["subject"]) == {"emailDigest"}
    assert job["options"] == {"propagate": False, "suppress": True}
    assert await run_erasures(database) == 1
    done = await client.get(asked.headers["location"])
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "succeeded"
    assert body["contactIds"] == [contact_id]
    assert body["stats"]["contacts"] == 1
    assert body["stats"]["contact_identities"] == 2
    for text in (asked.text, done.text):
        assert "ada@example.com" not in text.lower()
        assert "ada-1" not in text
    assert (await client.get(f"/api/v1/contacts/{contact_id}")).status_code == 404


async def test_a_subject_without_a_contact_still_runs_and_says_so(
    client: httpx.AsyncClient, database: Database
) -> None:
    asked = await client.post("/api/v1/erasures", json={"userId": "never-seen"})

    assert asked.status_code == 202
    await run_erasures(database)
    body = (await client.get(asked.headers["location"])).json()
    assert body["status"] == "succeeded"
    assert body["contactIds"] == []
    assert body["stats"]["contactsFound"] == 0
    assert body["stats"]["erasedIdentitiesAdded"] == 1  # the userId's digest stops re-ingestion


async def test_deleting_a_contact_queues_its_erasure(
    client: httpx.AsyncClient, database: Database
) -> None:
    contact_id = await contact(client, userId="u-1", anonymousId="a-1")

    deleted = await client.delete(f"/api/v1/contacts/{contact_id}", params={"propagate": "true"})

    assert deleted.status_code == 202, deleted.text
    job = deleted.json()
    assert job["subject"] == {"contactId": contact_id}
    assert job["options"] == {"propagate": True, "suppress": True}
    assert deleted.headers["location"] == f"/api/v1/erasures/{job['id']}"
    await run_erasures(database)
    assert (await client.get(f"/api/v1/contacts/{contact_id}")).status_code == 404
    assert (await client.delete(f"/api/v1/contacts/{contact_id}")).status_code == 404
    status = (await client.get(deleted.headers["location"])).json()
    assert status["status"] == "succeeded"
    assert status["propagation"] == {}  # no connection to propagate to


async def test_exactly_one_subject_and_a_real_address_are_required(
    client: httpx.AsyncClient,
) -> None:
    none = await client.post("/api/v1/erasures", json={"propagate": True})
    two = await client.post("/api/v1/erasures", json={"userId": "u", "email": "a@example.com"})
    bad = await client.post("/api/v1/erasures", json={"email": "not an address"})
    typo = await client.post("/api/v1/erasures", json={"userid": "u"})

    for response in (none, two, bad, typo):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
    assert bad.json()["errors"][0]["pointer"] == "/email"
    assert "/userid" in {error["pointer"] for error in typo.json()["errors"]}


async def test_an_unknown_erasure_is_404_and_the_list_pages_newest_first(
    client: httpx.AsyncClient,
) -> None:
    ids = [
        (await client.post("/api/v1/erasures", json={"userId": f"u-{n}"})).json()["id"]
        for n in range(3)
    ]

    missing = await client.get("/api/v1/erasures/01J0000000000000000000000Z")
    first = (await client.get("/api/v1/erasures", params={"limit": 2})).json()
    second = (
        await client.get("/api/v1/erasures", params={"limit": 2, "cursor": first["nextCursor"]})
    ).json()

    assert missing.status_code == 404
    assert [job["id"] for job in first["items"] + second["items"]] == ids[::-1]
    assert second["nextCursor"] is None


async def test_erasing_takes_the_contacts_erase_permission(client: httpx.AsyncClient) -> None:
    contact_id = await contact(client, userId="u-9")
    editor = bearer(await make_key(client, Role.EDITOR))
    admin = bearer(await make_key(client, Role.ADMIN))

    refused = await client.post("/api/v1/erasures", json={"userId": "u-9"}, headers=editor)
    refused_delete = await client.delete(f"/api/v1/contacts/{contact_id}", headers=editor)
    allowed = await client.post("/api/v1/erasures", json={"userId": "u-9"}, headers=admin)

    assert (refused.status_code, refused_delete.status_code) == (403, 403)
    assert allowed.status_code == 202


async def test_a_workspace_sees_and_erases_only_its_own(
    app_client: ClientFactory, database: Database
) -> None:
    async with app_client(make_settings("acme")) as acme:
        acme_contact = await contact(acme, userId="shared-id")
        async with app_client(make_settings("globex")) as globex:
            globex_contact = await contact(globex, userId="shared-id")
            job = (await globex.post("/api/v1/erasures", json={"userId": "shared-id"})).json()
            cross_delete = await globex.delete(f"/api/v1/contacts/{acme_contact}")
            await run_erasures(database)
            assert (await acme.get(f"/api/v1/erasures/{job['id']}")).status_code == 404
            assert (await acme.get("/api/v1/erasures")).json()["items"] == []
            assert (await globex.get(f"/api/v1/contacts/{globex_contact}")).status_code == 404
        assert cross_delete.status_code == 404
        assert (await acme.get(f"/api/v1/contacts/{acme_contact}")).status_code == 200
