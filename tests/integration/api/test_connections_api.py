"""``/api/v1/connections`` and ``/api/v1/integrations`` over the real app and database.

The provider behind a connection is a local aiohttp server standing in for SendGrid's one test
call (GET of one page of lists): what is checked here is our side — credentials sent as the
connector says, never returned, outcomes recorded. The requests' conformance to SendGrid's own
spec is the contract tests' job (tests/contract).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiohttp import web
from sqlalchemy import select

from campaignflow.store.database import Database
from campaignflow.store.tables import connections, secrets
from tests.integration.api.conftest import ClientFactory, make_settings

GOOD_KEY = "SG.good-key-0123456789"


@asynccontextmanager
async def fake_provider(status_for_bad_key: int = 401) -> AsyncIterator[tuple[str, list[Any]]]:
    """Answers 200 to the good key's bearer token, ``status_for_bad_key`` to any other."""
    seen: list[web.Request] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request)
        if request.headers.get("Authorization") == f"Bearer {GOOD_KEY}":
            return web.json_response({"result": [], "_metadata": {}})
        return web.json_response({"errors": [{"message": "no"}]}, status=status_for_bad_key)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def sendgrid(name: str = "mail", key: str = GOOD_KEY, **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "sendgrid",
        "description": "Transactional mail",
        "credentials": {"token": key},
        "settings": settings,
    }


async def test_created_connection_keeps_its_credentials_out_of_every_answer_and_row(
    client: httpx.AsyncClient, database: Database
) -> None:
    created = await client.post("/api/v1/connections", json=sendgrid())
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["Location"].endswith(f"/api/v1/connections/{body['id']}")
    assert body["name"] == "mail"
    assert body["provider"] == "sendgrid"
    assert body["webhookPath"] == f"/api/v1/webhooks/sendgrid/{body['id']}"
    assert body["lastTest"] is None
    listed = (await client.get("/api/v1/connections")).json()
    fetched = (await client.get(f"/api/v1/connections/{body['id']}")).json()
    for document in (body, listed, fetched):
        assert GOOD_KEY not in str(document)
    assert [item["id"] for item in listed["items"]] == [body["id"]]
    async with database.read() as connection:
        row = (await connection.execute(select(connections))).one()
        sealed = (await connection.execute(select(secrets.c.sealed))).scalar_one()
    assert GOOD_KEY not in str(tuple(row))
    assert GOOD_KEY not in sealed  # stored sealed in the secret store


async def test_bad_connections_are_refused_with_a_pointer_to_each_problem(
    client: httpx.AsyncClient,
) -> None:
    unknown = await client.post("/api/v1/connections", json={**sendgrid(), "provider": "acme"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["pointer"] == "/provider"
    assert "sendgrid" in unknown.json()["errors"][0]["detail"]  # lists what is known

    typo = {**sendgrid(), "credentials": {"tokn": GOOD_KEY}}
    response = await client.post("/api/v1/connections", json=typo)
    assert response.status_code == 422
    pointers = {problem["pointer"] for problem in response.json()["errors"]}
    assert pointers == {"/credentials/tokn", "/credentials/token"}
    assert GOOD_KEY not in response.text  # the refused secret is not echoed

    bad_url = sendgrid(baseUrl="ftp://example.com")
    response = await client.post("/api/v1/connections", json=bad_url)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/settings/baseUrl"

    bad_name = {**sendgrid(), "name": "Not A Slug"}
    response = await client.post("/api/v1/connections", json=bad_name)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/name"


async def test_a_taken_name_is_a_conflict_and_leaves_no_orphaned_secret(
    client: httpx.AsyncClient, database: Database
) -> None:
    assert (await client.post("/api/v1/connections", json=sendgrid())).status_code == 201
    again = await client.post("/api/v1/connections", json=sendgrid(key="SG.other"))
    assert again.status_code == 409
    async with database.read() as connection:
        stored = (await connection.execute(select(secrets.c.id))).scalars().all()
    assert len(stored) == 1  # the second secret was removed with the refused row


async def test_testing_a_connection_calls_the_provider_with_its_credentials_and_records_it(
    client: httpx.AsyncClient,
) -> None:
    async with fake_provider() as (url, seen):
        good = (await client.post("/api/v1/connections", json=sendgrid(baseUrl=url))).json()
        bad = (
            await client.post(
                "/api/v1/connections", json=sendgrid("bad", key="SG.revoked", baseUrl=url)
            )
        ).json()
        passed = await client.post(f"/api/v1/connections/{good['id']}/test")
        failed = await client.post(f"/api/v1/connections/{bad['id']}/test")
    assert passed.status_code == 200, passed.text
    assert passed.json()["ok"] is True
    assert passed.json()["status"] == 200
    assert failed.status_code == 200
    assert failed.json()["ok"] is False
    assert failed.json()["status"] == 401
    assert "SG.revoked" not in failed.text
    assert [request.headers["Authorization"] for request in seen] == [
        f"Bearer {GOOD_KEY}",
        "Bearer SG.revoked",
    ]
    assert all(request.method == "GET" for request in seen)  # a test call has no effect
    recorded = (await client.get(f"/api/v1/connections/{bad['id']}")).json()["lastTest"]
    assert recorded["outcome"] == "failed"
    assert "401" in recorded["message"]


async def test_an_unreachable_provider_is_a_failed_test_not_an_error(
    client: httpx.AsyncClient,
) -> None:
    closed_port = "http://127.0.0.1:9"  # discard port: nothing listens
    created = (await client.post("/api/v1/connections", json=sendgrid(baseUrl=closed_port))).json()
    response = await client.post(f"/api/v1/connections/{created['id']}/test")
    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert response.json()["status"] is None


async def test_deleting_removes_the_row_and_the_credentials(
    client: httpx.AsyncClient, database: Database
) -> None:
    created = (await client.post("/api/v1/connections", json=sendgrid())).json()
    deleted = await client.delete(f"/api/v1/connections/{created['id']}")
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v1/connections/{created['id']}")).status_code == 404
    assert (await client.delete(f"/api/v1/connections/{created['id']}")).status_code == 404
    async with database.read() as connection:
        assert (await connection.execute(select(secrets.c.id))).first() is None
    # The name is free again.
    assert (await client.post("/api/v1/connections", json=sendgrid())).status_code == 201


async def test_listing_pages_by_name_and_filters_by_provider(client: httpx.AsyncClient) -> None:
    for name in ("c-three", "a-one", "b-two"):
        assert (await client.post("/api/v1/connections", json=sendgrid(name))).status_code == 201
    first = (await client.get("/api/v1/connections", params={"limit": 2})).json()
    assert [item["name"] for item in first["items"]] == ["a-one", "b-two"]
    rest = (
        await client.get("/api/v1/connections", params={"limit": 2, "cursor": first["nextCursor"]})
    ).json()
    assert [item["name"] for item in rest["items"]] == ["c-three"]
    assert rest["nextCursor"] is None
    other = (await client.get("/api/v1/connections", params={"provider": "slack"})).json()
    assert other["items"] == []


async def test_the_catalog_lists_every_connector_with_its_operation_schemas(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/integrations")
    assert response.status_code == 200
    catalog = {item["provider"]: item for item in response.json()["items"]}
    expected = {"sendgrid", "mailchimp_transactional", "mailchimp_marketing", "hubspot", "slack"}
    assert expected <= set(catalog)
    send = {op["name"]: op for op in catalog["sendgrid"]["operations"]}["send_email"]
    assert send["action"] == "sendgrid.send_email"
    assert send["sendsMessage"] is True
    assert send["paramsSchema"]["type"] == "object"
    token = catalog["sendgrid"]["credentialsSchema"]["properties"]["token"]
    assert token.get("writeOnly") is True


async def test_a_viewer_cannot_see_connections_and_an_editor_cannot_create_them(
    app_client: ClientFactory,
) -> None:
    async with app_client() as owner:
        viewer = await owner.post("/api/v1/principals", json={"name": "v", "role": "viewer"})
        editor = await owner.post("/api/v1/principals", json={"name": "e", "role": "editor"})
        keys = {}
        for who in (viewer.json(), editor.json()):
            key = await owner.post(
                "/api/v1/api-keys", json={"name": who["name"], "principalId": who["id"]}
            )
            keys[who["name"]] = key.json()["key"]
    settings = make_settings()
    async with app_client(settings, auth=False) as anonymous:
        as_viewer = {"Authorization": f"Bearer {keys['v']}"}
        as_editor = {"Authorization": f"Bearer {keys['e']}"}
        assert (await anonymous.get("/api/v1/connections", headers=as_viewer)).status_code == 403
        assert (await anonymous.get("/api/v1/connections", headers=as_editor)).status_code == 200
        refused = await anonymous.post("/api/v1/connections", json=sendgrid(), headers=as_editor)
        assert refused.status_code == 403
