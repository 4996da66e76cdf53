"""The triggers resource as a client sees it, on SQLite and PostgreSQL: stored triggers and the
read-only ones declared in definitions, and a stored behavior trigger routing real events."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import ClientFactory, make_settings, workflow

PROBLEM = "application/problem+json"
SIGNED_UP = {
    "type": "behavior",
    "name": "pro-signup",
    "event": "signed_up",
    "condition": "event.properties.plan == 'pro'",
}
_messages = itertools.count()


async def deploy(
    client: httpx.AsyncClient, workflow_id: str = "welcome", *, active: bool = False, **changes: Any
) -> None:
    created = await client.post("/api/v1/workflows", json=workflow(workflow_id, **changes))
    assert created.status_code == 201, created.text
    if active:
        activated = await client.post(f"/api/v1/workflows/{workflow_id}/activate")
        assert activated.status_code == 200, activated.text


async def create_trigger(
    client: httpx.AsyncClient,
    workflow_id: str = "welcome",
    trigger: dict[str, Any] | None = None,
    **body: Any,
) -> dict[str, Any]:
    document = {"workflowId": workflow_id, "trigger": trigger or SIGNED_UP, **body}
    response = await client.post("/api/v1/triggers", json=document)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def errors_of(response: httpx.Response, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


# ---------------------------------------------------------------------- create and read


async def test_create_then_get_returns_the_trigger_with_its_etag(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client)
    response = await client.post(
        "/api/v1/triggers", json={"workflowId": "welcome", "trigger": SIGNED_UP}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/triggers/{body['id']}"
    assert response.headers["etag"] == body["etag"] == '"v1"'
    assert body["workflowId"] == "welcome"
    assert (body["source"], body["enabled"]) == ("api", True)
    assert body["trigger"] == SIGNED_UP
    assert body["createdAt"] == body["updatedAt"]

    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"v1"'
    assert fetched.json() == body
    again = await client.get(response.headers["location"], headers={"If-None-Match": '"v1"'})
    assert again.status_code == 304


async def test_the_trigger_is_stored_in_the_workflow_format_with_defaults(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client)
    cron = await create_trigger(client, trigger={"type": "time", "cron": "0 9 * * *"})
    api = await create_trigger(client, trigger={"type": "api"}, enabled=False)

    assert cron["trigger"] == {"type": "time", "cron": "0 9 * * *", "timezone": "UTC"}
    assert (api["trigger"], api["enabled"]) == ({"type": "api"}, False)


async def test_a_trigger_needs_a_workflow_of_this_workspace(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/triggers", json={"workflowId": "missing", "trigger": SIGNED_UP}
    )

    (error,) = await errors_of(response, 404)
    assert (error["pointer"], error["code"]) == ("/workflowId", "unknown_workflow")
    assert "missing" in response.json()["detail"]


async def test_an_archived_workflow_takes_no_trigger(client: httpx.AsyncClient) -> None:
    await deploy(client)
    trigger = await create_trigger(client)
    assert (await client.delete("/api/v1/workflows/welcome")).status_code == 204

    created = await client.post(
        "/api/v1/triggers", json={"workflowId": "welcome", "trigger": SIGNED_UP}
    )
    (error,) = await errors_of(created, 409)
    assert (error["pointer"], error["code"]) == ("/workflowId", "archived_workflow")
    replaced = await client.put(
        f"/api/v1/triggers/{trigger['id']}", json={"workflowId": "welcome", "trigger": SIGNED_UP}
    )
    assert (await errors_of(replaced, 409))[0]["pointer"] == "/workflowId"
    assert (await client.delete(f"/api/v1/triggers/{trigger['id']}")).status_code == 204


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"workflowId": "welcome", "trigger": {"type": "behavior"}, "enabled": "yes", "x": 1},
            [("/enabled", "type"), ("/trigger/event", "required"), ("/x", "unknown_field")],
        ),
        (
            {"workflowId": "welcome", "trigger": {"type": "behaviour", "event": "e"}},
            [("/trigger/type", "invalid_value")],
        ),
        (
            {"workflowId": "welcome", "trigger": {"type": "time", "cron": "0 9 * *"}},
            [("/trigger/cron", "invalid_cron")],
        ),
        (
            {"trigger": {"type": "api", "evnt": "e"}},
            [("/trigger/evnt", "unknown_field"), ("/workflowId", "required")],
        ),
        ([{"type": "api"}], [("", "type")]),
    ],
)
async def test_an_invalid_body_reports_every_problem_with_its_pointer(
    client: httpx.AsyncClient, body: object, expected: list[tuple[str, str]]
) -> None:
    await deploy(client)
    response = await client.post("/api/v1/triggers", json=body)

    errors = await errors_of(response, 422)
    assert response.json()["type"].endswith("invalid-definition")
    assert [(error["pointer"], error["code"]) for error in errors] == expected
    assert (await client.get("/api/v1/triggers?source=api")).json()["items"] == []


async def test_cel_problems_point_at_the_expression_with_line_and_column(
    client: httpx.AsyncClient,
) -> None:
    trigger = {
        "type": "behavior",
        "event": "signed_up",
        "condition": "event.properties.plan ==",
        "dedup": {"key": "order.id", "window": "PT1H"},
    }
    response = await client.post(
        "/api/v1/triggers", json={"workflowId": "Not A Slug", "trigger": trigger}
    )

    condition, key, workflow_id = await errors_of(response, 422)
    assert (condition["pointer"], condition["code"]) == ("/trigger/condition", "cel_syntax")
    assert (condition["line"], condition["column"]) == (1, 25)
    assert (key["pointer"], key["code"], key["line"], key["column"]) == (
        "/trigger/dedup/key", "cel_check", 1, 6,
    )  # fmt: skip
    assert workflow_id["pointer"] == "/workflowId"


async def test_a_condition_must_be_boolean(client: httpx.AsyncClient) -> None:
    await deploy(client)
    trigger = {"type": "behavior", "event": "e", "condition": "event.properties.size() + 1"}
    response = await client.post(
        "/api/v1/triggers", json={"workflowId": "welcome", "trigger": trigger}
    )

    (error,) = await errors_of(response, 422)
    assert (error["pointer"], error["code"]) == ("/trigger/condition", "cel_type")


# ---------------------------------------------------------------------- replace and delete


async def test_put_replaces_the_trigger_and_honours_if_match(client: httpx.AsyncClient) -> None:
    await deploy(client)
    await deploy(client, "winback", name="Win back")
    created = await create_trigger(client)
    url = f"/api/v1/triggers/{created['id']}"
    churned = {"type": "behavior", "event": "churned"}

    replaced = await client.put(
        url,
        json={"workflowId": "winback", "trigger": churned, "enabled": False},
        headers={"If-Match": '"v1"'},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["etag"] == '"v2"'
    body = replaced.json()
    assert (body["id"], body["workflowId"], body["enabled"]) == (created["id"], "winback", False)
    assert body["trigger"] == churned
    assert body["createdAt"] == created["createdAt"] < body["updatedAt"]
    assert (await client.get(url)).json() == body

    for stale in ('"v1"', 'W/"v2"', '"something-else"'):
        refused = await client.put(
            url, json={"workflowId": "welcome", "trigger": SIGNED_UP}, headers={"If-Match": stale}
        )
        assert refused.status_code == 412, stale
        assert refused.json()["type"].endswith("precondition-failed")
    for accepted in ('"v1", "v2"', "*"):
        response = await client.put(
            url,
            json={"workflowId": "welcome", "trigger": SIGNED_UP},
            headers={"If-Match": accepted},
        )
        assert response.status_code == 200, accepted
    assert (await client.get(url)).headers["etag"] == '"v4"'


async def test_put_validates_the_body_before_the_precondition(client: httpx.AsyncClient) -> None:
    await deploy(client)
    created = await create_trigger(client)

    response = await client.put(
        f"/api/v1/triggers/{created['id']}",
        json={"workflowId": "welcome", "trigger": {"type": "behavior"}},
        headers={"If-Match": '"v9"'},
    )

    assert [e["pointer"] for e in await errors_of(response, 422)] == ["/trigger/event"]
    moved = await client.put(
        f"/api/v1/triggers/{created['id']}", json={"workflowId": "gone", "trigger": SIGNED_UP}
    )
    assert (await errors_of(moved, 404))[0]["pointer"] == "/workflowId"


async def test_put_or_delete_of_an_unknown_trigger_is_404(client: httpx.AsyncClient) -> None:
    await deploy(client)
    body = {"workflowId": "welcome", "trigger": SIGNED_UP}
    for url in ("/api/v1/triggers/01NOSUCHTRIGGER", "/api/v1/triggers/" + "x" * 80):
        for response in (
            await client.get(url),
            await client.put(url, json=body),
            await client.delete(url),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["type"].endswith("not-found")
            assert "errors" not in response.json()


async def test_delete_removes_the_trigger(client: httpx.AsyncClient) -> None:
    await deploy(client)
    created = await create_trigger(client)
    url = f"/api/v1/triggers/{created['id']}"

    stale = await client.delete(url, headers={"If-Match": '"v7"'})
    assert stale.status_code == 412
    deleted = await client.delete(url, headers={"If-Match": '"v1"'})
    assert deleted.status_code == 204
    assert deleted.content == b""

    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url)).status_code == 404


# ---------------------------------------------------------------------- lists


async def test_list_shows_stored_then_declared_triggers_and_filters_them(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client, active=True, triggers=[{"type": "api"}, SIGNED_UP])
    await deploy(client, "winback", triggers=[{"type": "behavior", "event": "churned"}])
    await deploy(client, "archived", triggers=[{"type": "api"}])
    assert (await client.delete("/api/v1/workflows/archived")).status_code == 204
    stored = await create_trigger(client, "winback")
    off = await create_trigger(client, trigger={"type": "api"}, enabled=False)

    async def ids(query: str = "") -> list[str]:
        response = await client.get(f"/api/v1/triggers{query}")
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    first, second = sorted([stored["id"], off["id"]])
    assert await ids() == [first, second, "welcome#0", "welcome#1", "winback#0"]
    assert await ids("?source=api") == [first, second]
    assert await ids("?source=definition") == ["welcome#0", "welcome#1", "winback#0"]
    assert await ids("?workflowId=winback") == [stored["id"], "winback#0"]
    assert await ids("?type=behavior") == [stored["id"], "welcome#1", "winback#0"]
    assert await ids("?enabled=true") == [stored["id"], "welcome#0", "welcome#1"]
    assert await ids("?enabled=false") == [off["id"], "winback#0"]
    assert await ids("?type=time") == []

    declared = (await client.get("/api/v1/triggers?source=definition&type=behavior")).json()
    welcome = declared["items"][0]
    assert (welcome["workflowId"], welcome["source"], welcome["enabled"]) == (
        "welcome", "definition", True,
    )  # fmt: skip
    assert welcome["trigger"] == SIGNED_UP
    assert welcome["etag"] == '"v1"'


async def test_cursor_paging_visits_every_trigger_of_both_sources_once(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client, "a-flow", triggers=[{"type": "api"}] * 3)
    await deploy(client, "b-flow", triggers=[{"type": "api"}])
    await deploy(client, "c-flow", triggers=[{"type": "api"}] * 2)
    stored = sorted([(await create_trigger(client, "b-flow"))["id"] for _ in range(3)])
    expected = [*stored, "a-flow#0", "a-flow#1", "a-flow#2", "b-flow#0", "c-flow#0", "c-flow#1"]

    for limit in (1, 2, 4, 9):
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(20):
            params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/api/v1/triggers", params=params)).json()
            assert len(page["items"]) <= limit
            seen += [item["id"] for item in page["items"]]
            cursor = page.get("nextCursor")
            if cursor is None:
                break
        assert seen == expected, limit


# ---------------------------------------------------------------------- declared triggers


async def test_a_declared_trigger_is_read_only(client: httpx.AsyncClient) -> None:
    await deploy(client, triggers=[{"type": "api"}, SIGNED_UP])
    url = "/api/v1/triggers/welcome%231"

    fetched = await client.get(url)
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["etag"] == '"v1"'
    body = fetched.json()
    assert (body["id"], body["source"], body["enabled"]) == ("welcome#1", "definition", False)
    assert body["trigger"] == SIGNED_UP

    replaced = await client.put(url, json={"workflowId": "welcome", "trigger": SIGNED_UP})
    assert replaced.status_code == 409
    assert "edit that workflow" in replaced.json()["detail"]
    assert (await client.delete(url)).status_code == 409
    assert (await client.get(url)).json() == body
    for missing in ("welcome%232", "welcome%2301", "nowhere%230", "welcome%23x", "%230"):
        assert (await client.get(f"/api/v1/triggers/{missing}")).status_code == 404, missing
        assert (await client.delete(f"/api/v1/triggers/{missing}")).status_code == 404, missing


async def test_a_declared_trigger_follows_its_workflow(client: httpx.AsyncClient) -> None:
    await deploy(client, triggers=[{"type": "api"}])
    assert (await client.get("/api/v1/triggers/welcome%230")).json()["enabled"] is False

    await client.post("/api/v1/workflows/welcome/activate")
    updated = await client.put(
        "/api/v1/workflows/welcome", json=workflow(triggers=[{"type": "api"}, SIGNED_UP])
    )
    assert updated.status_code == 200, updated.text

    declared = (await client.get("/api/v1/triggers?source=definition")).json()["items"]
    assert [(t["id"], t["enabled"], t["etag"]) for t in declared] == [
        ("welcome#0", True, '"v2"'),
        ("welcome#1", True, '"v2"'),
    ]
    await client.delete("/api/v1/workflows/welcome")
    assert (await client.get("/api/v1/triggers")).json()["items"] == []
    assert (await client.get("/api/v1/triggers/welcome%230")).status_code == 404


# ---------------------------------------------------------------------- requests and tenancy


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/triggers/" + "x" * 81, "trigger_id"),
        ("/api/v1/triggers/a%00b", "trigger_id"),
        ("/api/v1/triggers?workflowId=a%00", "workflowId"),
        ("/api/v1/triggers?workflowId=" + "w" * 65, "workflowId"),
        ("/api/v1/triggers?type=webhook", "type"),
        ("/api/v1/triggers?enabled=maybe", "enabled"),
        ("/api/v1/triggers?source=file", "source"),
        ("/api/v1/triggers?limit=0", "limit"),
        ("/api/v1/triggers?cursor=not-a-cursor", "cursor"),
    ],
)
async def test_bad_parameters_are_400_naming_them(
    client: httpx.AsyncClient, url: str, parameter: str
) -> None:
    response = await client.get(url)

    (error,) = await errors_of(response, 400)
    assert error["parameter"] == parameter


async def test_bad_bodies_get_precise_problems(client: httpx.AsyncClient) -> None:
    for content, content_type, status in [
        (b'{"workflowId": ', "application/json", 400),
        (b"workflowId: x", "text/yaml", 415),
    ]:
        response = await client.post(
            "/api/v1/triggers", content=content, headers={"content-type": content_type}
        )
        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM


async def test_another_workspace_sees_none_of_it(app_client: ClientFactory) -> None:
    """Same database, same workflow ids: another workspace gets 404s and empty lists."""
    async with app_client() as acme, app_client(make_settings("globex")) as globex:
        await deploy(acme, active=True, triggers=[SIGNED_UP])
        created = await create_trigger(acme)
        url = f"/api/v1/triggers/{created['id']}"
        body = {"workflowId": "welcome", "trigger": SIGNED_UP}

        assert (await globex.get(url)).status_code == 404
        assert (await globex.put(url, json=body)).status_code == 404
        assert (await globex.delete(url)).status_code == 404
        assert (await globex.get("/api/v1/triggers/welcome%230")).status_code == 404
        assert (await globex.get("/api/v1/triggers")).json()["items"] == []
        refused = await globex.post("/api/v1/triggers", json=body)
        assert (await errors_of(refused, 404))[0]["pointer"] == "/workflowId"

        await deploy(globex, triggers=[{"type": "api"}])
        mine = await create_trigger(globex)
        assert [t["id"] for t in (await globex.get("/api/v1/triggers")).json()["items"]] == [
            mine["id"],
            "welcome#0",
        ]
        assert (await globex.put(url, json=body)).status_code == 404
        assert (await acme.get(url)).json() == created
        assert (await acme.get(f"/api/v1/triggers/{mine['id']}")).status_code == 404


# ---------------------------------------------------------------------- routing events


async def send(client: httpx.AsyncClient, plan: str, user: str = "alice") -> None:
    """Post a ``signed_up`` event; the in-process bus answers once the router committed it."""
    body = {
        "event": "signed_up",
        "userId": user,
        "properties": {"plan": plan},
        "messageId": f"m-{next(_messages)}",
    }
    response = await client.post("/api/v1/events", json=body)
    assert response.status_code == 202, response.text


async def started(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/api/v1/executions?workflow=welcome")
    return [item["trigger"] for item in response.json()["items"]]


async def test_a_stored_behavior_trigger_starts_executions_until_disabled_or_deleted(
    client: httpx.AsyncClient,
) -> None:
    entry = {"reentry": "always", "allowConcurrent": True}
    await deploy(client, active=True, triggers=[{"type": "api"}], entry=entry)
    await send(client, "pro")
    assert await started(client) == []  # no trigger yet

    created = await create_trigger(client)
    url = f"/api/v1/triggers/{created['id']}"
    await send(client, "pro")
    await send(client, "free")  # the condition is false
    assert await started(client) == ["behavior:pro-signup"]

    off = await client.put(
        url, json={"workflowId": "welcome", "trigger": SIGNED_UP, "enabled": False}
    )
    assert off.status_code == 200, off.text
    await send(client, "pro")
    assert len(await started(client)) == 1

    on = await client.put(url, json={"workflowId": "welcome", "trigger": SIGNED_UP})
    assert on.status_code == 200, on.text
    await send(client, "pro", user="bob")
    assert len(await started(client)) == 2

    assert (await client.delete(url)).status_code == 204
    await send(client, "pro")
    await send(client, "pro", user="carol")
    assert len(await started(client)) == 2
