"""A GraphQL client (gql) against a real server: create, activate and execute a workflow, read
the execution with its steps, and receive its step events by subscription."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from gql import Client
from gql.transport.exceptions import TransportQueryError

from tests.integration.api.conftest import TOKEN, workflow
from tests.integration.graphql.conftest import Served, request, ws_transport

CREATE = """
mutation Create($definition: JSON!) {
  createWorkflow(definition: $definition) { workflowId status version etag }
}"""
ACTIVATE = "mutation Activate($id: ID!) { activateWorkflow(id: $id) { status } }"
EXECUTE = """
mutation Execute($id: ID!, $subject: String!, $input: JSON) {
  executeWorkflow(workflowId: $id, subject: $subject, input: $input) { id status workflowVersion }
}"""
EXECUTION = """
query Execution($id: ID!) {
  execution(id: $id) {
    status subject input
    steps { seq nodeId nodeType status output attempt }
  }
}"""
EVENTS = """
subscription Events($workflowIds: [String!]) {
  executionEvents(workflowIds: $workflowIds) {
    kind executionId workflowId status seq nodeId nodeType
  }
}"""
TWO_STEPS = [
    {
        "id": "greet",
        "type": "action",
        "config": {"action": "log", "params": {"message": "Hello {{ input.name }}"}},
        "next": "done",
    },
    {"id": "done", "type": "end"},
]


async def deploy(served: Served, workflow_id: str = "welcome") -> None:
    created = await served.run(CREATE, definition=workflow(workflow_id, nodes=TWO_STEPS))
    assert created["createWorkflow"] == {
        "workflowId": workflow_id,
        "status": "DRAFT",
        "version": 1,
        "etag": '"v1"',
    }
    activated = await served.run(ACTIVATE, id=workflow_id)
    assert activated["activateWorkflow"]["status"] == "ACTIVE"


async def execute(served: Served, workflow_id: str = "welcome") -> str:
    started = await served.run(EXECUTE, id=workflow_id, subject="c-1", input={"name": "Ada"})
    assert started["executeWorkflow"]["status"] == "PENDING"
    execution_id: str = started["executeWorkflow"]["id"]
    return execution_id


async def test_a_client_creates_executes_and_reads_an_execution_with_its_steps(
    served: Served,
) -> None:
    await deploy(served)
    execution_id = await execute(served)
    await served.drain()

    detail = (await served.run(EXECUTION, id=execution_id))["execution"]

    assert detail["status"] == "COMPLETED"
    assert detail["subject"] == "c-1"
    assert detail["input"] == {"name": "Ada"}
    assert [(s["seq"], s["nodeId"], s["status"]) for s in detail["steps"]] == [
        (1, "greet", "COMPLETED"),
        (2, "done", "COMPLETED"),
    ]
    assert detail["steps"][0]["output"]["message"] == "Hello Ada"


async def _collect(client: Client, until_kind: str, into: list[dict[str, Any]]) -> None:
    async with client as session:
        async for result in session.subscribe(request(EVENTS, workflowIds=["welcome"])):
            into.append(result["executionEvents"])
            if result["executionEvents"]["kind"] == until_kind:
                return


@pytest.mark.parametrize("legacy", [False, True], ids=["graphql-transport-ws", "graphql-ws"])
async def test_a_client_runs_a_workflow_and_receives_its_step_events_by_subscription(
    served: Served, legacy: bool
) -> None:
    await deploy(served)
    await deploy(served, "other")  # its events are filtered out
    events: list[dict[str, Any]] = []
    listening = asyncio.create_task(
        _collect(Client(transport=ws_transport(served, legacy=legacy)), "execution", events)
    )
    await asyncio.sleep(0.5)  # subscribed before anything runs: the feed is live, not a log

    await execute(served, "other")
    execution_id = await execute(served)
    await served.drain()
    await asyncio.wait_for(listening, timeout=10)

    assert {event["executionId"] for event in events} == {execution_id}
    assert [(e["kind"], e["seq"], e["nodeId"], e["status"]) for e in events] == [
        ("step", 1, "greet", "completed"),
        ("step", 2, "done", "completed"),
        ("execution", None, None, "completed"),
    ]
    assert events[0]["nodeType"] == "action"


async def test_a_definition_with_problems_is_bad_user_input_with_pointers(served: Served) -> None:
    broken = workflow("broken", nodes=[{"id": "a", "type": "action", "next": "nowhere"}])

    with pytest.raises(TransportQueryError) as raised:
        await served.run(CREATE, definition=broken)

    (error,) = raised.value.errors or []
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    pointers = {problem["pointer"] for problem in error["extensions"]["problems"]}
    assert "/nodes/0/next" in pointers or any(p.startswith("/nodes/0") for p in pointers)
    assert "Traceback" not in str(error)


async def test_a_stale_expected_version_is_precondition_failed(served: Served) -> None:
    await deploy(served)
    update = """
    mutation Update($definition: JSON!, $v: Int) {
      updateWorkflow(id: "welcome", definition: $definition, expectedVersion: $v) { version }
    }"""
    renamed = workflow("welcome", name="Renamed", nodes=TWO_STEPS)
    assert (await served.run(update, definition=renamed, v=1))["updateWorkflow"]["version"] == 2

    with pytest.raises(TransportQueryError) as raised:
        await served.run(update, definition=workflow("welcome", name="Again", nodes=TWO_STEPS), v=1)

    assert raised.value.errors[0]["extensions"]["code"] == "PRECONDITION_FAILED"  # type: ignore[index]


async def test_workflows_page_with_a_cursor_and_versions_nest(served: Served) -> None:
    for name in ("a", "b", "c"):
        await served.run(CREATE, definition=workflow(name, nodes=TWO_STEPS))
    page = """
    query Page($after: String) {
      workflows(first: 2, after: $after) {
        items { workflowId definition versions { items { version } } }
        nextCursor
      }
    }"""
    first = (await served.run(page))["workflows"]
    second = (await served.run(page, after=first["nextCursor"]))["workflows"]

    assert [w["workflowId"] for w in first["items"] + second["items"]] == ["a", "b", "c"]
    assert second["nextCursor"] is None
    assert first["items"][0]["definition"]["workflowId"] == "a"
    assert first["items"][0]["versions"]["items"] == [{"version": 1}]


async def test_the_summary_counts_a_finished_execution(served: Served) -> None:
    await deploy(served)
    await execute(served)
    await served.drain()
    summary = """
    query S { workflowSummary(workflowId: "welcome", window: "PT1H") {
      started completed failed successRate waitingAt { nodeId } } }"""

    assert (await served.run(summary))["workflowSummary"] == {
        "started": 1,
        "completed": 1,
        "failed": 0,
        "successRate": 1.0,
        "waitingAt": [],
    }


async def test_mutations_and_personal_reads_are_audited_with_the_operation(served: Served) -> None:
    await deploy(served)
    execution_id = await execute(served)
    await served.run(EXECUTION, id=execution_id)
    await served.run("query Names { workflows { items { name } } }")

    async with httpx.AsyncClient(
        base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        log = (await http.get("/api/v1/audit-log", params={"limit": 50})).json()["items"]
    graphql = [e for e in log if e["path"] == "/graphql"]
    actions = sorted((e["action"], e["resourceId"], e["outcome"]) for e in graphql)

    assert actions == [
        ("graphql.activateWorkflow", "welcome", "success"),
        ("graphql.createWorkflow", None, "success"),
        ("graphql.executeWorkflow", "welcome", "success"),
        ("graphql.execution", execution_id, "success"),
    ], "every mutation and the read of an execution; not the list of workflow names"
    operations = {e["action"]: e["details"]["operation"] for e in graphql}
    assert operations["graphql.executeWorkflow"] == "Execute"
