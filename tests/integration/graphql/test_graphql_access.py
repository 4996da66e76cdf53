"""The same credentials and permission checks as REST: no credential is UNAUTHENTICATED, a
viewer cannot write, a grant raises a role on its workflow only, another workspace's objects
are NOT_FOUND; and the limits refuse deep or costly operations before they run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from gql import Client
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from websockets.exceptions import ConnectionClosed

from campaignflow.security.rbac import Role
from tests.integration.api.conftest import TOKEN, token_for, workflow
from tests.integration.api.test_authorization import make_key
from tests.integration.graphql.conftest import Served, ServeFactory, request, ws_transport

RENAME = """
mutation Rename($id: ID!, $definition: JSON!) {
  updateWorkflow(id: $id, definition: $definition) { version }
}"""
CREATE = "mutation C($d: JSON!) { createWorkflow(definition: $d) { workflowId } }"


async def codes(
    served: Served, document: str, token: str | None = TOKEN, **variables: Any
) -> list[str]:
    with pytest.raises(TransportQueryError) as raised:
        await served.run(document, token, **variables)
    return [error["extensions"]["code"] for error in raised.value.errors or []]


async def key_for(served: Served, role: Role) -> str:
    async with httpx.AsyncClient(
        base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        return await make_key(http, role)


async def test_no_credential_or_a_wrong_one_is_unauthenticated(served: Served) -> None:
    assert await codes(served, "{ workflows { items { workflowId } } }", None) == [
        "UNAUTHENTICATED"
    ]
    assert await codes(served, "{ workflows { items { workflowId } } }", "cf_wrong") == [
        "UNAUTHENTICATED"
    ]


async def _subscribe_once(client: Client) -> None:
    async with client as session:
        async for _ in session.subscribe(request("subscription { executionEvents { id } }")):
            return


async def test_a_websocket_without_a_valid_credential_is_refused(served: Served) -> None:
    client = Client(transport=ws_transport(served, token="cf_wrong"))
    with pytest.raises(TransportConnectionFailed) as raised:
        await _subscribe_once(client)
    closed = raised.value.__cause__
    assert isinstance(closed, ConnectionClosed)
    assert closed.rcvd is not None
    assert closed.rcvd.code == 4403


async def test_a_viewer_reads_but_cannot_write(served: Served) -> None:
    await served.run(CREATE, d=workflow("welcome"))
    viewer = await key_for(served, Role.VIEWER)

    listed = await served.run("{ workflows { items { workflowId } } }", viewer)
    assert listed["workflows"]["items"] == [{"workflowId": "welcome"}]
    assert await codes(served, CREATE, viewer, d=workflow("mine")) == ["FORBIDDEN"]
    assert await codes(served, "{ contacts { items { id } } }", viewer) == ["FORBIDDEN"]
    missing = await served.run("{ workflows { items { workflowId } } }")
    assert [w["workflowId"] for w in missing["workflows"]["items"]] == ["welcome"]


async def test_a_grant_raises_the_role_on_its_workflow_only(served: Served) -> None:
    for workflow_id in ("granted", "other"):
        await served.run(CREATE, d=workflow(workflow_id))
    viewer = await key_for(served, Role.VIEWER)
    async with httpx.AsyncClient(
        base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        people = (await http.get("/api/v1/principals")).json()["items"]
        person = next(p for p in people if p["role"] == "viewer")
        granted = await http.put(
            f"/api/v1/workflows/granted/grants/{person['id']}", json={"role": "editor"}
        )
        assert granted.status_code == 200, granted.text

    renamed = await served.run(
        RENAME, viewer, id="granted", definition=workflow("granted", name="R")
    )
    assert renamed["updateWorkflow"]["version"] == 2
    assert await codes(
        served, RENAME, viewer, id="other", definition=workflow("other", name="R")
    ) == ["FORBIDDEN"]


async def test_another_workspaces_objects_are_not_found(serve: ServeFactory) -> None:
    async with serve() as mine:
        await mine.run(CREATE, d=workflow("welcome"))
    async with serve("acme") as theirs:
        token = token_for("acme")
        assert await codes(theirs, '{ workflow(id: "welcome") { name } }', token) == ["NOT_FOUND"]
        listed = await theirs.run("{ workflows { items { workflowId } } }", token)
        assert listed["workflows"]["items"] == []
        assert await codes(theirs, RENAME, token, id="welcome", definition=workflow("welcome")) == [
            "NOT_FOUND"
        ]


async def test_too_deep_or_too_costly_operations_are_refused_before_they_run(
    served: Served,
) -> None:
    await served.run(CREATE, d=workflow("welcome"))
    costly = (
        """{ workflows(first: 500) { items { versions(first: 500) { items { version } } } } }"""
    )
    assert await codes(served, costly) == ["QUERY_TOO_COMPLEX"]
    deep = "{ workflows { items { versions { items { definition } } } } }"
    assert (await served.run(deep))["workflows"]["items"][0]["versions"]["items"]
    aliased = "{ " + " ".join(f"a{i}: workflows {{ nextCursor }}" for i in range(31)) + " }"
    assert await codes(served, aliased) == ["GRAPHQL_VALIDATION_FAILED"]
    huge = "{ workflows { " + "nextCursor " * 2100 + "} }"
    assert await codes(served, huge) == ["GRAPHQL_VALIDATION_FAILED"]
    assert await codes(served, "{ workflows(first: 0) { nextCursor } }") == ["BAD_USER_INPUT"]
    assert await codes(served, '{ workflows(after: "nope") { nextCursor } }') == ["BAD_USER_INPUT"]
