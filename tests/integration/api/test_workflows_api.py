"""The workflows resource as a client sees it, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from campaignflow.store.database import Database
from campaignflow.store.migrate import downgrade, upgrade
from tests.integration.api.conftest import ClientFactory, make_settings, workflow

PROBLEM = "application/problem+json"


async def create(client: httpx.AsyncClient, **kwargs: object) -> httpx.Response:
    response = await client.post("/api/v1/workflows", json=workflow(**kwargs))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    return response


async def test_create_then_get_returns_the_definition_with_its_version(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client)

    assert created.headers["location"] == "/api/v1/workflows/welcome"
    assert created.headers["etag"] == '"v1"'
    body = created.json()
    assert body["workflowId"] == "welcome"
    assert body["status"] == "draft"
    assert body["version"] == 1
    assert body["definition"]["nodes"][0]["id"] == "greet"
    assert body["definition"]["version"] == 1

    fetched = await client.get("/api/v1/workflows/welcome")
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"v1"'
    assert fetched.json() == body


async def test_creating_an_existing_id_is_a_conflict(client: httpx.AsyncClient) -> None:
    await create(client)
    response = await client.post("/api/v1/workflows", json=workflow(name="Other"))

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:campaignflow:problem:already-exists"


async def test_an_invalid_definition_reports_every_problem_with_a_pointer(
    client: httpx.AsyncClient,
) -> None:
    document = workflow()
    document["nodes"][0]["next"] = "nowhere"
    document["nodes"].append({"id": "wait", "type": "delay", "config": {"duration": "two days"}})
    document["triggers"] = [{"type": "behavior", "event": "x", "condition": "event.total >"}]

    response = await client.post("/api/v1/workflows", json=document)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    pointers = {error["pointer"] for error in problem["errors"]}
    assert "/nodes/0/next" in pointers
    assert "/nodes/2/config/duration" in pointers
    assert "/triggers/0/condition" in pointers
    assert problem["status"] == 422
    assert (await client.get("/api/v1/workflows/welcome")).status_code == 404


@pytest.mark.parametrize(
    ("content", "content_type", "status", "slug"),
    [
        (b'{"workflowId": "x",', "application/json", 400, "malformed-json"),
        (b"", "application/json", 400, "malformed-json"),
        (b"workflowId: x", "text/yaml", 415, "unsupported-media-type"),
        (b"[1, 2]", "application/json", 422, "invalid-definition"),
    ],
)
async def test_bad_bodies_get_precise_problems(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int, slug: str
) -> None:
    response = await client.post(
        "/api/v1/workflows", content=content, headers={"content-type": content_type}
    )

    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith(slug)


async def test_malformed_json_says_where(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/workflows",
        content=b'{\n  "name": oops\n}',
        headers={"content-type": "application/json"},
    )

    error = response.json()["errors"][0]
    assert error["line"] == 2
    assert error["pointer"] == ""


async def test_an_oversized_body_is_refused(app_client: ClientFactory) -> None:
    settings = make_settings(api={"max_body_bytes": 2048})
    async with app_client(settings) as client:
        document = workflow(description="x" * 4000)
        response = await client.post("/api/v1/workflows", json=document)

    assert response.status_code == 413
    assert response.json()["type"].endswith("body-too-large")


async def test_every_api_route_needs_the_token(app_client: ClientFactory) -> None:
    async with app_client(auth=False) as client:
        missing = await client.get("/api/v1/workflows")
        wrong = await client.get(
            "/api/v1/workflows", headers={"Authorization": "Bearer not-the-token-at-all"}
        )
        health = await client.get("/healthz")
        ready = await client.get("/readyz")

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


async def test_put_publishes_a_new_version_and_guards_with_if_match(
    client: httpx.AsyncClient,
) -> None:
    await create(client)

    updated = await client.put(
        "/api/v1/workflows/welcome", json=workflow(name="Welcome v2"), headers={"If-Match": '"v1"'}
    )
    assert updated.status_code == 200
    assert updated.headers["etag"] == '"v2"'
    assert updated.json()["name"] == "Welcome v2"

    stale = await client.put(
        "/api/v1/workflows/welcome", json=workflow(name="Lost update"), headers={"If-Match": '"v1"'}
    )
    assert stale.status_code == 412
    assert (await client.get("/api/v1/workflows/welcome")).json()["name"] == "Welcome v2"

    versions = (await client.get("/api/v1/workflows/welcome/versions")).json()["items"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["definition"]["name"] == "Welcome"


async def test_put_of_an_unchanged_definition_creates_no_version(
    client: httpx.AsyncClient,
) -> None:
    await create(client)

    again = await client.put("/api/v1/workflows/welcome", json=workflow())

    assert again.status_code == 200
    assert again.json()["version"] == 1


async def test_put_cannot_change_the_workflow_id(client: httpx.AsyncClient) -> None:
    await create(client)

    response = await client.put("/api/v1/workflows/welcome", json=workflow("other-id"))

    assert response.status_code == 422
    assert {e["pointer"] for e in response.json()["errors"]} == {"/workflowId"}


async def test_put_to_an_unknown_workflow_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/workflows/ghost", json=workflow("ghost"))

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_if_none_match_returns_not_modified(client: httpx.AsyncClient) -> None:
    await create(client)

    response = await client.get("/api/v1/workflows/welcome", headers={"If-None-Match": '"v1"'})

    assert response.status_code == 304
    assert response.content == b""


async def test_list_pages_with_a_cursor_and_filters(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await create(client, workflow_id=f"flow-{index}", name=f"Flow {index}")
    await create(client, workflow_id="promo", name="Black Friday 50%_off")

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/workflows", params=params)).json()
        seen += [item["workflowId"] for item in page["items"]]
        cursor = page.get("nextCursor")
        if cursor is None:
            break

    assert seen == ["flow-0", "flow-1", "flow-2", "flow-3", "flow-4", "promo"]
    by_name = (await client.get("/api/v1/workflows", params={"name": "friday 50%_"})).json()
    assert [i["workflowId"] for i in by_name["items"]] == ["promo"]
    wildcard = (await client.get("/api/v1/workflows", params={"name": "%"})).json()
    assert [i["workflowId"] for i in wildcard["items"]] == ["promo"]


async def test_a_forged_cursor_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/workflows", params={"cursor": "not-a-cursor"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "cursor"


async def test_status_transitions(client: httpx.AsyncClient) -> None:
    await create(client)

    paused_draft = await client.post("/api/v1/workflows/welcome/pause")
    assert paused_draft.status_code == 409

    activated = await client.post("/api/v1/workflows/welcome/activate")
    assert activated.json()["status"] == "active"
    assert (await client.post("/api/v1/workflows/welcome/activate")).status_code == 200

    paused = await client.post("/api/v1/workflows/welcome/pause")
    assert paused.json()["status"] == "paused"
    active = (await client.get("/api/v1/workflows", params={"status": "active"})).json()
    assert active["items"] == []
    paused_list = (await client.get("/api/v1/workflows", params={"status": "paused"})).json()
    assert [i["workflowId"] for i in paused_list["items"]] == ["welcome"]


async def test_archive_keeps_the_record_but_freezes_it(client: httpx.AsyncClient) -> None:
    await create(client)

    assert (await client.delete("/api/v1/workflows/welcome")).status_code == 204
    assert (await client.delete("/api/v1/workflows/welcome")).status_code == 204

    fetched = (await client.get("/api/v1/workflows/welcome")).json()
    assert fetched["status"] == "archived"
    assert fetched["archivedAt"] is not None
    assert (await client.get("/api/v1/workflows")).json()["items"] == []
    archived = (await client.get("/api/v1/workflows", params={"status": "archived"})).json()
    assert [i["workflowId"] for i in archived["items"]] == ["welcome"]
    assert (
        await client.put("/api/v1/workflows/welcome", json=workflow(name="x"))
    ).status_code == 409
    assert (await client.post("/api/v1/workflows/welcome/activate")).status_code == 409
    assert (await client.post("/api/v1/workflows", json=workflow())).status_code == 409


async def test_workspaces_do_not_see_each_other(app_client: ClientFactory) -> None:
    async with app_client() as client:
        await create(client)
    async with app_client(make_settings(workspace_id="other")) as other:
        assert (await other.get("/api/v1/workflows/welcome")).status_code == 404
        assert (await other.get("/api/v1/workflows")).json()["items"] == []
        put = await other.put("/api/v1/workflows/welcome", json=workflow(name="Hijack"))
        assert put.status_code == 404
        assert (await other.delete("/api/v1/workflows/welcome")).status_code == 404
        assert (await other.get("/api/v1/workflows/welcome/versions")).status_code == 404
        assert (await other.post("/api/v1/workflows/welcome/activate")).status_code == 404


async def test_unknown_routes_and_methods_answer_with_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    wrong_method = await client.patch("/api/v1/workflows")

    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == PROBLEM


async def test_bad_query_parameters_name_the_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/workflows", params={"limit": 0, "status": "nope"})

    assert response.status_code == 400
    parameters = {error["parameter"] for error in response.json()["errors"]}
    assert parameters == {"limit", "status"}


async def test_a_bad_body_is_reported_before_a_bad_if_match(client: httpx.AsyncClient) -> None:
    await create(client)
    broken = workflow()
    broken["nodes"][0]["next"] = "nowhere"

    invalid = await client.put(
        "/api/v1/workflows/welcome", json=broken, headers={"If-Match": "null"}
    )
    foreign = await client.put(
        "/api/v1/workflows/welcome", json=workflow(name="x"), headers={"If-Match": "null"}
    )

    assert invalid.status_code == 422
    assert foreign.status_code == 412
    assert (await client.get("/api/v1/workflows/welcome")).json()["version"] == 1


async def test_readiness_fails_until_the_schema_is_migrated(
    client: httpx.AsyncClient, database: Database
) -> None:
    await downgrade(database, "base")

    not_ready = await client.get("/readyz")
    await upgrade(database)
    ready = await client.get("/readyz")

    assert not_ready.status_code == 503
    assert "campaignflow migrate" in not_ready.json()["checks"]["database"]
    assert ready.status_code == 200
