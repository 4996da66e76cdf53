"""Connector actions against a provider that fails on cue (``tests/_support/faults.py``), run by
the real worker on each database, with the engine, the guards and the fault server's log on
one virtual clock (no sleeping: the test jumps the clock to the next due task).

The workflow sends one ``sendgrid.send_email`` through a connection whose ``baseUrl`` is the
fault server. SendGrid takes no idempotency header; the step's key travels in the message's
``custom_args.cf_send`` (the tracking its webhooks echo back), so that is where the tests look
for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaignflow.bus.wakeup import InProcessWakeup
from campaignflow.config import Settings
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.engine.interpreter import Interpreter
from campaignflow.engine.model import ExecutionRecord
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.worker import Worker
from campaignflow.integrations.guards import LocalGuards
from campaignflow.integrations.runtime import Integrations, open_integrations
from campaignflow.services.connections import ConnectionRequest, ConnectionService
from campaignflow.services.executions import ExecutionService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.dead_letters import DeadLetterStore
from campaignflow.store.executions import ExecutionStore
from campaignflow.store.task_queue import TaskQueue
from campaignflow.store.workflows import WorkflowStore
from tests._support.ciphers import contact_cipher
from tests._support.faults import FaultServer, Received, Reset, Respond, Slow, fault_server
from tests._support.faults import retry_after as too_many_requests

WORKSPACE = "acme"
START = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
SEND = "/v3/mail/send"
ACCEPTED = Respond(202)
CLIENT_TIMEOUT_S = 0.3


@dataclass
class Outbound:
    clock: ManualClock
    server: FaultServer
    guards: LocalGuards
    workflows: WorkflowService
    executions: ExecutionStore
    queue: TaskQueue
    service: ExecutionService
    connections: ConnectionService
    worker: Worker

    async def connect(self, **settings: Any) -> str:
        """The connection ``mail`` to the fault server; returns its id (the guards' key)."""
        record = await self.connections.create(
            WORKSPACE,
            None,
            ConnectionRequest(
                name="mail",
                provider="sendgrid",
                description=None,
                credentials={"token": "SG.test-key"},
                settings={"baseUrl": self.server.url, **settings},
            ),
        )
        return record.id

    async def deploy(self, error_handling: dict[str, Any], *, on_error: bool = False) -> str:
        record = await self.workflows.create(WORKSPACE, sending(error_handling, on_error))
        await self.workflows.activate(WORKSPACE, record.id)
        return record.id

    async def start(self, workflow_id: str, subject: str = "contact-1") -> str:
        record, _ = await self.service.execute(WORKSPACE, workflow_id, subject_id=subject, input={})
        return record.id

    async def drain(self) -> None:
        for _ in range(1000):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")

    async def next_due(self) -> datetime | None:
        due = await self.queue.next_due()
        return None if due is None else due.astimezone(UTC)

    async def step_to_next_due(self) -> datetime:
        """Move the clock to the earliest due task and run what is due then."""
        due = await self.next_due()
        assert due is not None, "nothing is scheduled"
        self.clock.set(max(due, self.clock.now()))
        await self.drain()
        return due

    async def run_until_idle(self, limit: timedelta = timedelta(hours=1)) -> None:
        await self.drain()
        while (due := await self.next_due()) is not None and due <= START + limit:
            await self.step_to_next_due()

    async def execution(self, execution_id: str) -> ExecutionRecord:
        return await self.executions.get(WORKSPACE, execution_id)

    async def path(self, execution_id: str) -> list[tuple[str, str, int]]:
        steps = await self.executions.steps(WORKSPACE, execution_id)
        return [(step.node_id, step.status, step.attempt) for step in steps]

    def sent(self) -> list[Received]:
        return self.server.received(SEND)

    def seconds(self) -> list[float]:
        """When each request arrived, in seconds since the test began (virtual time)."""
        return [(r.at - START).total_seconds() for r in self.sent() if r.at is not None]


def sending(error_handling: dict[str, Any], on_error: bool) -> dict[str, Any]:
    send: dict[str, Any] = {
        "id": "send",
        "type": "action",
        "config": {
            "action": "sendgrid.send_email",
            "connection": "mail",
            # About the provider's failures, not the send-time policy: a transactional message
            # meets only the suppression list (its subject is no contact with consent).
            "purpose": "transactional",
            "params": {
                "to": "ada@example.com",
                "from": "news@example.com",
                "subject": "Welcome",
                "text": "Hello, Ada.",
            },
        },
        "next": "done",
    }
    nodes = [send, {"id": "done", "type": "end"}]
    if on_error:
        send["onError"] = "fallback"
        nodes.append({"id": "fallback", "type": "end"})
    return {
        "workflowId": "welcome-mail",
        "name": "Welcome mail",
        "triggers": [{"type": "api"}],
        "errorHandling": error_handling,
        "nodes": nodes,
    }


def key_of(request: Received) -> str:
    """The step's idempotency key as SendGrid receives it (its tracking ``cf_send``)."""
    key: str = request.json["personalizations"][0]["custom_args"]["cf_send"]
    return key


def settings() -> Settings:
    """Steps never wait for the rate limit here (a real sleep would not move the virtual
    clock): any wait defers them. A short client timeout makes ``Slow`` a timeout."""
    return Settings(
        integrations={
            "timeout_seconds": CLIENT_TIMEOUT_S,
            "max_rate_wait_seconds": 0,
            "connection_cache_seconds": 300,
        }
    )


@pytest.fixture
async def outbound(database: Database) -> AsyncIterator[Outbound]:
    clock = ManualClock(START)
    store = WorkflowStore(database, clock=clock.now)
    await store.ensure_workspace(WORKSPACE, "Acme")
    executions = ExecutionStore(database, contact_cipher())
    queue = TaskQueue(database, contact_cipher())

    async def load(workspace: str, workflow: str, version: int) -> dict[str, Any]:
        return (await store.get_version(workspace, workflow, version)).definition

    compiled = CompiledWorkflows(load)
    wakeup = InProcessWakeup()
    guards = LocalGuards(clock=lambda: clock.now().timestamp())
    links = open_integrations(database, settings(), contact_cipher(), guards=guards)
    worker = Worker(
        queue,
        compiled,
        Interpreter(links.executors()),
        wakeup,
        clock,
        options=WorkerOptions(batch_size=50, lanes=1),
        name="test-worker",
    )
    service = ExecutionService(
        store, executions, DeadLetterStore(database), compiled, wakeup, clock
    )
    try:
        async with fault_server(ACCEPTED, clock=clock.now) as server:
            yield Outbound(
                clock,
                server,
                guards,
                WorkflowService(store),
                executions,
                queue,
                service,
                _connections(links),
                worker,
            )
    finally:
        await links.aclose()


def _connections(links: Integrations) -> ConnectionService:
    return ConnectionService(
        links.connections, links.secrets, links.connectors, links.resolver, links.executor
    )


# ------------------------------------------------------------------------------------ tests


async def test_server_errors_are_retried_with_growing_backoff_and_the_same_key(
    outbound: Outbound,
) -> None:
    await outbound.connect()
    outbound.server.script(SEND, Respond(500), Respond(500), ACCEPTED)
    policy = {"retryPolicy": "exponential", "maxRetries": 3, "initialInterval": "PT10S"}
    execution_id = await outbound.start(await outbound.deploy({**policy, "jitter": 0}))

    await outbound.run_until_idle()

    assert (await outbound.execution(execution_id)).status == "completed"
    assert outbound.seconds() == [0, 10, 30]  # waits of 10 s, then 20 s
    assert await outbound.path(execution_id) == [
        ("send", "retrying", 1),
        ("send", "retrying", 2),
        ("send", "completed", 3),
        ("done", "completed", 1),
    ]
    keys = {key_of(request) for request in outbound.sent()}
    assert len(keys) == 1  # one intent, one key, on every attempt
    assert all(r.headers["authorization"] == "Bearer SG.test-key" for r in outbound.sent())


async def test_retry_after_on_a_429_is_honoured(outbound: Outbound) -> None:
    connection_id = await outbound.connect()
    outbound.server.script(SEND, too_many_requests(7), ACCEPTED)
    policy = {"maxRetries": 2, "initialInterval": "PT1S", "maxInterval": "PT1S", "jitter": 0}
    execution_id = await outbound.start(await outbound.deploy(policy))

    await outbound.drain()
    due = await outbound.next_due()
    await outbound.run_until_idle()

    assert due == START + timedelta(seconds=7)  # not after the policy's 1 s
    assert outbound.seconds() == [0, 7]
    assert (await outbound.execution(execution_id)).status == "completed"
    first = (await outbound.executions.steps(WORKSPACE, execution_id))[0]
    assert first.error is not None
    assert first.error["details"]["status"] == 429
    assert outbound.guards.breaker(connection_id).failures == 0  # pacing is not ill health


async def test_a_client_error_is_not_retried_and_takes_the_error_branch_at_once(
    outbound: Outbound,
) -> None:
    await outbound.connect()
    outbound.server.script(SEND, Respond(400, {"errors": [{"message": "bad"}]}))
    policy = {"maxRetries": 5, "initialInterval": "PT1S"}
    execution_id = await outbound.start(await outbound.deploy(policy, on_error=True))

    await outbound.drain()

    assert len(outbound.sent()) == 1
    assert await outbound.path(execution_id) == [
        ("send", "failed", 1),
        ("fallback", "completed", 1),
    ]
    assert (await outbound.execution(execution_id)).status == "completed"
    assert await outbound.next_due() is None


async def test_a_client_error_without_an_error_branch_goes_to_the_dead_letters_at_once(
    outbound: Outbound,
) -> None:
    await outbound.connect()
    outbound.server.script(SEND, Respond(400))
    execution_id = await outbound.start(await outbound.deploy({"maxRetries": 5}))

    await outbound.drain()

    assert len(outbound.sent()) == 1
    assert (await outbound.execution(execution_id)).status == "failed"
    (letter,) = await outbound.service.dead_letters(WORKSPACE)
    assert (letter.execution_id, letter.attempts) == (execution_id, 1)
    assert not letter.errors[0]["retryable"]


@pytest.mark.parametrize(
    ("fault", "message"),
    [(Slow(CLIENT_TIMEOUT_S * 5), "no response"), (Reset(), "connection to")],
    ids=["slow", "reset"],
)
async def test_timeouts_and_connection_resets_are_retried(
    outbound: Outbound, fault: Slow | Reset, message: str
) -> None:
    await outbound.connect()
    outbound.server.script(SEND, fault, ACCEPTED)
    policy = {"maxRetries": 2, "initialInterval": "PT5S", "jitter": 0}
    execution_id = await outbound.start(await outbound.deploy(policy))

    await outbound.run_until_idle()

    assert (await outbound.execution(execution_id)).status == "completed"
    assert outbound.seconds() == [0, 5]
    first, second = outbound.sent()
    assert key_of(first) == key_of(second)
    failed = (await outbound.executions.steps(WORKSPACE, execution_id))[0]
    assert failed.error is not None
    assert message in failed.error["message"]
    assert failed.error["retryable"]


async def test_repeated_server_errors_open_the_breaker_and_a_probe_closes_it(
    outbound: Outbound,
) -> None:
    """SendGrid's breaker: 5 failures in a row open it for 30 s, then one probe at a time.
    The probe's answer takes a moment, so every other step due then asks while it is out."""
    connection_id = await outbound.connect()
    probe = Slow(CLIENT_TIMEOUT_S / 2, ACCEPTED)
    outbound.server.script(SEND, *[Respond(503)] * 5, probe, then=ACCEPTED)
    policy = {"retryPolicy": "linear", "maxRetries": 5, "initialInterval": "PT10S", "jitter": 0}
    workflow_id = await outbound.deploy(policy)
    failing = [await outbound.start(workflow_id, f"c{n}") for n in range(5)]
    await outbound.drain()
    assert outbound.guards.breaker(connection_id).mode == "open"

    late = await outbound.start(workflow_id, "c-late")  # refused without a request
    await outbound.drain()
    while (await outbound.next_due() or START) < START + timedelta(seconds=30):
        await outbound.step_to_next_due()  # the retries due at 10 s are refused too
    assert len(outbound.sent()) == 5
    assert outbound.guards.breaker(connection_id).mode == "open"

    await outbound.step_to_next_due()  # 30 s: half-open, one probe goes through and succeeds
    assert outbound.seconds() == [0] * 5 + [30]  # the other five were refused meanwhile
    assert outbound.guards.breaker(connection_id).mode == "closed"
    await outbound.run_until_idle()

    assert [(await outbound.execution(e)).status for e in [*failing, late]] == ["completed"] * 6
    assert outbound.seconds()[6:] == [60] * 5  # the others, refused during the probe
    (late_refusal, *_) = await outbound.executions.steps(WORKSPACE, late)
    assert late_refusal.error is not None
    assert "circuit breaker open" in late_refusal.error["message"]


async def test_exhausted_retries_dead_letter_the_step_and_a_replay_sends_with_a_new_key(
    outbound: Outbound,
) -> None:
    await outbound.connect()
    outbound.server.script(SEND, then=Respond(500))
    policy = {"retryPolicy": "linear", "maxRetries": 2, "initialInterval": "PT1M", "jitter": 0}
    execution_id = await outbound.start(await outbound.deploy(policy))
    await outbound.run_until_idle()

    assert (await outbound.execution(execution_id)).status == "failed"
    (letter,) = await outbound.service.dead_letters(WORKSPACE, status="open")
    assert (letter.node_id, letter.attempts) == ("send", 3)
    assert [error["details"]["status"] for error in letter.errors] == [500, 500, 500]
    assert outbound.seconds() == [0, 60, 180]
    assert len({key_of(request) for request in outbound.sent()}) == 1

    outbound.server.script(SEND, then=ACCEPTED)  # the provider is fixed
    await outbound.service.replay(WORKSPACE, letter.id)
    await outbound.run_until_idle()

    assert (await outbound.execution(execution_id)).status == "completed"
    *failed, replayed = outbound.sent()
    assert len(failed) == 3
    assert key_of(replayed) != key_of(failed[0])  # a replay is a new intent
    assert await outbound.service.dead_letters(WORKSPACE, status="open") == []


async def test_steps_beyond_the_rate_limit_are_deferred_without_using_attempts(
    outbound: Outbound,
) -> None:
    await outbound.connect(requestsPerMinute=6, burstLimit=1)  # one every 10 s
    workflow_id = await outbound.deploy({"retryPolicy": "none"})  # a used attempt would fail
    started = [await outbound.start(workflow_id, f"c{n}") for n in range(3)]

    await outbound.run_until_idle()

    assert outbound.seconds() == [0, 10, 20]
    for execution_id in started:
        assert (await outbound.execution(execution_id)).status == "completed"
        assert await outbound.path(execution_id) == [
            ("send", "completed", 1),
            ("done", "completed", 1),
        ]
    assert await outbound.service.dead_letters(WORKSPACE) == []
