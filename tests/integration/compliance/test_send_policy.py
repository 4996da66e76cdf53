"""The send-time policy end to end: workflows whose message steps run through the connector
executor and the gate, against the local sink, on SQLite and PostgreSQL.

The message connectors here are declared in the test (an e-mail one and an SMS one that post to
the sink's ``/echo``), because the built-in providers' paths are not routes of the sink; they go
through the same connector framework, executor, connections and gate as every provider. The
engine, its worker and task queue, the contact store and the ledger are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import Field
from sqlalchemy import select

from campaignflow.bus.wakeup import InProcessWakeup
from campaignflow.compliance.send_gate import SendGate, SendPolicies
from campaignflow.config import Settings
from campaignflow.domain.contacts import NewContact
from campaignflow.domain.send_policy import ALLOW, Defer, Recipient, SendPolicy, Verdict, decide
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.engine.interpreter import Interpreter
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.worker import Worker
from campaignflow.integrations.catalog import catalog_for
from campaignflow.integrations.connector import (
    Connector,
    ConnectorModel,
    NoAuth,
    Operation,
    OutboundRequest,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.executor import ConnectorExecutor
from campaignflow.integrations.guards import LocalGuards
from campaignflow.integrations.providers import builtin_connectors
from campaignflow.integrations.runtime import Integrations, open_integrations
from campaignflow.services.connections import ConnectionRequest, ConnectionService
from campaignflow.services.executions import ExecutionService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.contacts import ContactStore
from campaignflow.store.database import Database
from campaignflow.store.dead_letters import DeadLetterStore
from campaignflow.store.executions import ExecutionStore, StepRecord
from campaignflow.store.send_policy import SendPolicyStore
from campaignflow.store.tables import tasks
from campaignflow.store.task_queue import TaskQueue
from campaignflow.store.workflows import WorkflowStore
from tests._support.ciphers import contact_cipher
from tests._support.consent import set_consent
from tests._support.sink import Sink, running_sink

WORKSPACE = "default"


def _utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class MessageParams(ConnectorModel):
    to: str
    text: str = "Hello"
    path: str = Field("/echo", pattern=r"^/[a-z0-9/]*$")


def _message(params: MessageParams, _context: RequestContext) -> OutboundRequest:
    return OutboundRequest("POST", path=params.path, json={"to": params.to, "text": params.text})


def _connector(provider: str, category: Any, channel: str) -> Connector:
    send = Operation(
        name="send",
        summary="Send a message.",
        params=MessageParams,
        request=_message,
        recipients=lambda params: [params.to],
        channel=channel,
    )
    return Connector(
        provider=provider,
        title=provider,
        category=category,
        description="A message connector posting to the test sink.",
        base_url="http://127.0.0.1:9",
        auth=NoAuth(),
        operations=operations(send),
        rate_limits=RateLimits(100_000, 10_000),
    )


CONNECTORS = {
    **builtin_connectors(),
    "testmail": _connector("testmail", "email", "email"),
    "testsms": _connector("testsms", "messaging", "sms"),
}


def journey(workflow_id: str, action: str, *, purpose: str = "marketing") -> dict[str, Any]:
    channel = "mail" if action.startswith("testmail") else "sms"
    return {
        "workflowId": workflow_id,
        "name": workflow_id,
        "triggers": [{"type": "api"}],
        "errorHandling": {"retryPolicy": "none"},
        "nodes": [
            {
                "id": "send",
                "type": "action",
                "config": {
                    "action": action,
                    "connection": channel,
                    "purpose": purpose,
                    "params": {"to": "{{ contact.email }}", "text": "News"},
                },
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    }


@dataclass
class Platform:
    database: Database
    clock: ManualClock
    links: Integrations
    sink: Sink
    workflows: WorkflowService
    service: ExecutionService
    executions: ExecutionStore
    contacts: ContactStore
    policies: SendPolicies
    workers: list[Worker] = field(default_factory=list)
    emails: dict[str, str] = field(default_factory=dict)

    async def contact(self, email: str, *, timezone: str | None = None) -> str:
        new = NewContact(WORKSPACE, email=email, timezone=timezone)
        contact_id = (await self.contacts.create(new, self.clock.now())).id
        self.emails[contact_id] = email
        return contact_id

    async def deploy(self, definition: dict[str, Any]) -> None:
        record = await self.workflows.create(WORKSPACE, definition)
        await self.workflows.activate(WORKSPACE, record.id)

    async def start(self, workflow_id: str, contact_id: str) -> str:
        email = self.emails.get(contact_id, "nobody@example.com")
        record, _ = await self.service.execute(
            WORKSPACE, workflow_id, subject_id=contact_id, input={}, contact={"email": email}
        )
        return record.id

    async def drain(self, worker: Worker | None = None) -> None:
        worker = worker or self.workers[0]
        for _ in range(1000):
            if await worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")

    async def steps(self, execution_id: str) -> list[StepRecord]:
        return await self.executions.steps(WORKSPACE, execution_id)

    async def run_at(self, execution_id: str) -> list[datetime]:
        query = select(tasks.c.run_at).where(
            tasks.c.workspace_id == WORKSPACE, tasks.c.execution_id == execution_id
        )
        async with self.database.read() as connection:
            return list((await connection.execute(query)).scalars())

    def sent_to(self) -> list[str]:
        return [request["json"]["to"] for request in self.sink.requests]


def engine_worker(
    platform_db: Database, clock: ManualClock, registry: ExecutorRegistry, name: str
) -> Worker:
    workflow_store = WorkflowStore(platform_db, clock=clock.now)

    async def load(workspace: str, workflow: str, version: int) -> dict[str, Any]:
        return (await workflow_store.get_version(workspace, workflow, version)).definition

    return Worker(
        TaskQueue(platform_db, contact_cipher()),
        CompiledWorkflows(load),
        Interpreter(registry),
        InProcessWakeup(),
        clock,
        options=WorkerOptions(batch_size=2, lanes=1),
        name=name,
    )


@pytest.fixture
async def platform(database: Database) -> AsyncIterator[Platform]:
    clock = ManualClock(datetime(2026, 6, 10, 10, 0, tzinfo=UTC))
    store = WorkflowStore(database, clock=clock.now)
    await store.ensure_workspace(WORKSPACE, "Default")
    links = open_integrations(
        database, Settings(), contact_cipher(), guards=LocalGuards(), connectors=CONNECTORS
    )
    # The runtime's gate and executor read the wall clock; these read the test's clock (the
    # same classes, wired as ``open_integrations`` wires them), so quiet hours can be reached.
    policies = SendPolicies(SendPolicyStore(database))
    gate = SendGate(policies, now=clock.now)
    executor = ConnectorExecutor(
        CONNECTORS,
        links.resolver,
        links.guards,
        links.http,
        links.tokens,
        send_gate=gate,
        now=clock.now,
    )
    registry = ExecutorRegistry()
    for action in ("testmail.send", "testsms.send"):
        registry = registry.with_executor(action, executor)
    executions = ExecutionStore(database, contact_cipher())

    async def load(workspace: str, workflow: str, version: int) -> dict[str, Any]:
        return (await store.get_version(workspace, workflow, version)).definition

    service = ExecutionService(
        store,
        executions,
        DeadLetterStore(database),
        CompiledWorkflows(load),
        InProcessWakeup(),
        clock,
    )
    connections = ConnectionService(
        links.connections, links.secrets, links.connectors, links.resolver, links.executor
    )
    try:
        async with running_sink() as sink:
            for name, provider in (("mail", "testmail"), ("sms", "testsms")):
                request = ConnectionRequest(name, provider, None, {}, {"baseUrl": sink.url})
                await connections.create(WORKSPACE, None, request)
            yield Platform(
                database,
                clock,
                links,
                sink,
                WorkflowService(store, catalog_for(CONNECTORS)),
                service,
                executions,
                ContactStore(database, contact_cipher()),
                policies,
                [engine_worker(database, clock, registry, f"w{n}") for n in range(4)],
            )
    finally:
        await links.aclose()


# ------------------------------------------------------------------------------------ consent


async def test_a_marketing_message_to_a_contact_without_consent_is_never_sent(
    platform: Platform,
) -> None:
    """Through the runtime's own executors (``open_integrations``): the gate is wired in."""
    worker = engine_worker(platform.database, platform.clock, platform.links.executors(), "rt")
    await platform.deploy(journey("news", "testmail.send"))
    ann = await platform.contact("ann@example.com")
    bo = await platform.contact("bo@example.com")
    await set_consent(platform.database, bo, "email_marketing")
    await set_consent(platform.database, ann, "email_marketing", granted=False)  # withdrawn

    to_ann = await platform.start("news", ann)
    to_bo = await platform.start("news", bo)
    to_nobody = await platform.start("news", "not-a-contact")
    await platform.drain(worker)

    assert platform.sent_to() == ["bo@example.com"]  # what reached the "provider"
    (skipped,) = [s for s in await platform.steps(to_ann) if s.node_id == "send"]
    assert skipped.status == "completed"
    assert skipped.output["sent"] is False
    assert skipped.output["skipped"] == "consent"
    assert "email_marketing" in skipped.output["reason"]
    (stranger,) = [s for s in await platform.steps(to_nobody) if s.node_id == "send"]
    assert stranger.output["skipped"] == "consent"
    assert "not a known contact" in stranger.output["reason"]
    (sent,) = [s for s in await platform.steps(to_bo) if s.node_id == "send"]
    assert sent.output["status"] == 200


async def test_a_withdrawal_takes_effect_on_the_next_message(platform: Platform) -> None:
    await platform.deploy(journey("news", "testmail.send"))
    ann = await platform.contact("ann@example.com")
    await set_consent(platform.database, ann, "email_marketing")
    await platform.drain(await _started(platform, "news", ann))
    await set_consent(platform.database, ann, "email_marketing", granted=False)
    await platform.drain(await _started(platform, "news", ann))

    assert platform.sent_to() == ["ann@example.com"]


async def test_transactional_messages_and_switched_off_consent_go_without_consent(
    platform: Platform,
) -> None:
    await platform.deploy(journey("receipt", "testmail.send", purpose="transactional"))
    await platform.deploy(journey("text", "testsms.send"))
    ann = await platform.contact("ann@example.com")
    await platform.start("receipt", ann)
    await platform.start("text", ann)
    await platform.drain()
    assert platform.sent_to() == ["ann@example.com"]  # the receipt; the SMS needs consent

    await platform.policies.put(
        WORKSPACE, SendPolicy.model_validate({"consent": {"sms": None}}), None
    )  # an opt-out regime for SMS: the write takes effect at once in this process
    await platform.start("text", ann)
    await platform.drain()
    assert platform.sent_to() == ["ann@example.com", "ann@example.com"]


async def _started(platform: Platform, workflow_id: str, contact_id: str) -> Worker:
    await platform.start(workflow_id, contact_id)
    return platform.workers[0]


# -------------------------------------------------------------------------------- quiet hours


@pytest.mark.parametrize(
    ("zone", "evening", "morning"),
    [
        # Berlin springs forward on 2026-03-29: 23:30 CET, then 08:00 CEST = 06:00 UTC.
        ("Europe/Berlin", _utc(2026, 3, 28, 22, 30), _utc(2026, 3, 29, 6)),
        # New York falls back on 2026-11-01: 23:00 EDT, then 08:00 EST = 13:00 UTC.
        ("America/New_York", _utc(2026, 11, 1, 3), _utc(2026, 11, 1, 13)),
    ],
)
async def test_quiet_hours_defer_to_the_local_morning_across_a_daylight_saving_change(
    platform: Platform, zone: str, evening: datetime, morning: datetime
) -> None:
    platform.clock.set(evening)
    await platform.policies.put(
        WORKSPACE,
        SendPolicy.model_validate(
            {"quietHours": {"start": "21:00", "end": "08:00", "timezone": "UTC"}}
        ),
        None,
    )
    await platform.deploy(journey("news", "testsms.send"))
    ann = await platform.contact("ann@example.com", timezone=zone)
    await set_consent(platform.database, ann, "sms_marketing")

    execution = await platform.start("news", ann)
    await platform.drain()

    (deferred,) = await platform.steps(execution)
    assert deferred.status == "deferred", deferred.error
    assert deferred.error is not None
    assert deferred.error["policy"]["rule"] == "quiet_hours"
    assert datetime.fromisoformat(deferred.error["policy"]["until"]) == morning
    assert zone in deferred.error["policy"]["reason"]
    assert await platform.run_at(execution) == [morning]
    assert platform.sink.requests == []

    platform.clock.set(morning - timedelta(seconds=1))
    await platform.drain()
    assert platform.sink.requests == []
    platform.clock.set(morning)
    await platform.drain()
    assert platform.sent_to() == ["ann@example.com"]
    assert [s.status for s in await platform.steps(execution)] == [
        "deferred",
        "completed",
        "completed",
    ]


# ----------------------------------------------------------------------------- frequency caps


async def test_a_frequency_cap_holds_under_concurrent_executions(platform: Platform) -> None:
    await platform.policies.put(
        WORKSPACE,
        SendPolicy.model_validate(
            {"frequencyCaps": [{"channel": "sms", "max": 3, "window": "P1D"}]}
        ),
        None,
    )
    await platform.deploy(journey("news", "testsms.send"))
    ann = await platform.contact("ann@example.com")
    await set_consent(platform.database, ann, "sms_marketing")
    started = [await platform.start("news", ann) for _ in range(20)]

    await asyncio.gather(*(platform.drain(worker) for worker in platform.workers))

    assert len(platform.sink.requests) == 3
    deferred = 0
    for execution in started:
        (step, *_) = await platform.steps(execution)
        if step.status == "deferred":
            deferred += 1
            assert step.error is not None
            assert step.error["policy"]["rule"] == "frequency_cap"
            until = datetime.fromisoformat(step.error["policy"]["until"])
            assert until == platform.clock.now() + timedelta(days=1)
            assert await platform.run_at(execution) == [until]
        else:
            assert step.status == "completed"
    assert deferred == 17


async def test_the_ledger_counts_a_retried_send_once_and_a_release_frees_the_slot(
    platform: Platform,
) -> None:
    store = SendPolicyStore(platform.database)
    policy = SendPolicy.model_validate(
        {"frequencyCaps": [{"channel": "sms", "max": 1, "window": "PT1H"}]}
    )
    consented = Recipient(known=True, consent={"sms_marketing": {"granted": True}})
    now = platform.clock.now()
    hour_ago = now - timedelta(hours=1)

    async def reserve(send_id: str) -> tuple[Verdict, bool]:
        def verdict(sends: Sequence[datetime]) -> Verdict:
            return decide(policy, "sms", consented, sends, now)

        return await store.reserve(
            WORKSPACE, "c1", "sms", send_id, now=now, since=hour_ago, decide=verdict
        )

    assert await reserve("first") == (ALLOW, True)
    assert await reserve("first") == (ALLOW, False)  # a retry: allowed, not counted again
    assert await store.sends(WORKSPACE, "c1", "sms", since=hour_ago) == [now]
    full, reserved = await reserve("second")
    assert isinstance(full, Defer)
    assert (full.until, reserved) == (now + timedelta(hours=1), False)
    assert await store.release(WORKSPACE, "first") is True
    assert await reserve("second") == (ALLOW, True)
    assert await store.purge(WORKSPACE, now + timedelta(seconds=1)) == 1
    assert await store.sends(WORKSPACE, "c1", "sms", since=hour_ago) == []


async def test_a_send_the_provider_refuses_gives_its_slot_back(platform: Platform) -> None:
    await platform.policies.put(
        WORKSPACE,
        SendPolicy.model_validate(
            {"frequencyCaps": [{"channel": "sms", "max": 1, "window": "P1D"}]}
        ),
        None,
    )
    refused = journey("refused", "testsms.send")
    refused["nodes"][0]["config"]["params"]["path"] = "/status/400"
    await platform.deploy(refused)
    await platform.deploy(journey("news", "testsms.send"))
    ann = await platform.contact("ann@example.com")
    await set_consent(platform.database, ann, "sms_marketing")

    failed = await platform.start("refused", ann)
    await platform.drain()
    sent = await platform.start("news", ann)
    await platform.drain()

    assert next(s.status for s in await platform.steps(failed)) == "failed"
    assert next(s.status for s in await platform.steps(sent)) == "completed"
    assert [r["path"] for r in platform.sink.requests] == ["/status/400", "/echo"]
