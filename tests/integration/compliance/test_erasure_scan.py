"""The issue's test: after an erasure, no table of PostgreSQL and no key of Redis holds the
person's email, phone or name — not in the clear, and not inside a sealed value either (every
sealed value is opened with the test's key ring and its plaintext scanned too).

The person is built the way the product builds one: events through the real Redis stream bus
and the router (one routed and left unacknowledged, one never consumed), an execution waiting,
one completed with a message step whose output names them, one failed into the dead-letter
queue; then rows the other privacy features write (consent, processing log, a CRM sync link,
a delivery) are inserted as those features would. The same scan first finds the person (so it
reads what it should), and another person's data is still there afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from campaignflow.bus.redis_streams import RedisStreamBus
from campaignflow.compliance.erasure import ErasureRunner, RedisStreamCleaner
from campaignflow.domain.actions import builtin_catalog
from campaignflow.domain.events import Event
from campaignflow.engine.actions import ActionCall, ActionFailed, ExecutorRegistry
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.runtime import Engine
from campaignflow.engine.worker import Worker
from campaignflow.security.contact_fields import (
    ContactCipher,
    contact_context,
    snapshot_context,
)
from campaignflow.security.sealed_records import event_context
from campaignflow.services.erasures import ErasureRequest, ErasureService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.erasure import ErasureStore, erasure_context
from campaignflow.store.ids import new_id
from campaignflow.store.secrets import secret_context
from campaignflow.triggers.router import EventRouter
from tests._support.ciphers import contact_cipher

pytestmark = [pytest.mark.postgres_only]

WORKSPACE = "acme"
START = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
SHARDS = 2


@dataclass(frozen=True)
class Someone:
    user_id: str
    email: str
    phone: str
    name: str

    @classmethod
    def new(cls, label: str) -> Someone:
        tag = secrets.token_hex(4)
        return cls(
            user_id=f"{label}-{tag}",
            email=f"{label}.{tag}@example.com",
            phone=f"+44 20 7946 {secrets.randbelow(9000) + 1000}",
            name=f"{label.title()} Q{tag}",
        )

    @property
    def needles(self) -> list[str]:
        return [self.email, self.phone, self.name]


class MailExecutor:
    """Stands in for an email provider (nothing real can be sent to from this test): its
    output repeats the recipient, as a provider's answer often does."""

    async def execute(self, call: ActionCall) -> Any:
        return {"accepted": call.params.get("to"), "messageId": new_id()}


class BrokenExecutor:
    async def execute(self, call: ActionCall) -> Any:
        raise ActionFailed(f"rejected {call.params.get('to')}", retryable=False)


def _workflows() -> list[dict[str, Any]]:
    def flow(workflow_id: str, event: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "workflowId": workflow_id,
            "name": workflow_id,
            "triggers": [{"type": "behavior", "event": event}],
            "errorHandling": {"retryPolicy": "none", "maxRetries": 0},
            "nodes": nodes,
        }

    def send(action: str) -> dict[str, Any]:
        params = {"to": "{{ contact.email }}", "text": "Hi {{ contact.name }}"}
        config = {"action": action, "connection": "mail", "params": params}
        return {"id": "send", "type": "action", "config": config}

    return [
        flow(
            "nurture",
            "signed_up",
            [
                {"id": "wait", "type": "delay", "config": {"duration": "P1D"}, "next": "done"},
                {"id": "done", "type": "end"},
            ],
        ),
        flow(
            "receipt",
            "ordered",
            [{**send("mail.send"), "next": "done"}, {"id": "done", "type": "end"}],
        ),
        flow(
            "broken",
            "complained",
            [{**send("mail.broken"), "next": "done"}, {"id": "done", "type": "end"}],
        ),
    ]


@dataclass
class World:
    database: Database
    engine: Engine
    redis: Redis
    prefix: str
    router: EventRouter
    worker: Worker
    cipher: ContactCipher

    def event(self, who: Someone, name: str, kind: str = "track", **extra: Any) -> Event:
        return Event(
            workspace_id=WORKSPACE,
            message_id=new_id(),
            type=kind,  # type: ignore[arg-type]
            name=name if kind == "track" else None,
            user_id=who.user_id,
            timestamp=START,
            received_at=START,
            **extra,
        )

    async def publish(self, *events: Event) -> None:
        await self.engine.ingest().accept(list(events))

    async def route_all(self) -> None:
        while (await self.router.run_once()).events:
            pass
        while await self.worker.run_once():
            pass


@pytest.fixture
async def world(postgres_database: Database, redis_url: str) -> AsyncIterator[World]:
    prefix = f"erasure-{secrets.token_hex(4)}"
    redis = Redis.from_url(redis_url)
    bus = RedisStreamBus(redis, shards=SHARDS, prefix=prefix, lease_ms=300)
    engine = Engine.on(
        postgres_database, contact_cipher=contact_cipher(), bus=bus, clock=ManualClock(START)
    )
    await engine.workflows.ensure_workspace(WORKSPACE, "Acme")
    service = WorkflowService(engine.workflows, catalog=builtin_catalog())  # mail.* unchecked
    for definition in _workflows():
        record = await service.create(WORKSPACE, definition)
        await service.activate(WORKSPACE, record.id)
    executors = (
        ExecutorRegistry()
        .with_executor("mail.send", MailExecutor())
        .with_executor("mail.broken", BrokenExecutor())
    )
    router = engine.router("router-1")
    await router.refresh(force=True)
    worker = engine.worker(executors, WorkerOptions(batch_size=50, lanes=1))
    yield World(postgres_database, engine, redis, prefix, router, worker, engine.contacts.cipher)
    await bus.close()
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def _route(world: World, who: Someone) -> str:
    """The person's events, routed: a contact, executions, a dead letter; their contact id."""
    traits = {"email": who.email, "phone": who.phone, "name": who.name}
    await world.publish(
        world.event(who, "", kind="identify", traits=traits),
        world.event(who, "signed_up", properties={"plan": "pro"}),
        world.event(who, "ordered", properties={"note": f"for {who.name}"}),
        world.event(who, "complained", context={"traits": {"email": who.email}}),
    )
    await world.route_all()
    (contact,) = await world.engine.contacts.list(WORKSPACE, user_id=who.user_id)
    await _insert_privacy_rows(world, who, contact.id)
    return contact.id


async def _leave_in_stream(world: World, *people: Someone) -> None:
    """One event each delivered to a router and never acknowledged (pending in the consumer
    group), then one each never consumed at all."""
    await world.publish(*(world.event(w, "browsed", properties={"phone": w.phone}) for w in people))
    pending = await world.engine.bus.consume("router-1", count=10, block_ms=500)
    assert len(pending) >= 1
    await world.publish(*(world.event(w, "browsed", traits={"email": w.email}) for w in people))


async def _insert_privacy_rows(world: World, who: Someone, contact_id: str) -> None:
    """Rows the consent, processing-log, delivery and CRM-sync features write."""
    now = START
    execution_id = await _execution_of(world, contact_id, "receipt")
    connection_id = new_id()
    statements = [
        (
            "INSERT INTO consent_records VALUES (:w, :id, :c, 'email_marketing', true, 'api', "
            ":proof, :now, :now)",
            {"proof": orjson.dumps({"ip": "203.0.113.9", "form": who.email}).decode()},
        ),
        (
            "INSERT INTO processing_log VALUES (:w, :id, :c, :now, 'message.sent', 'marketing', "
            "'consent', 'sendgrid', :details)",
            {"details": orjson.dumps({"to": who.email}).decode()},
        ),
        (
            "INSERT INTO frequency_ledger VALUES (:w, :id, :c, 'email', :now)",
            {},
        ),
        (
            "INSERT INTO message_deliveries VALUES (:w, :id, :x, 'send', '', :conn, 'sendgrid', "
            "'pm-1', 'delivered', '[]', :now, :now)",
            {"x": execution_id, "conn": connection_id},
        ),
        (
            "INSERT INTO sync_links VALUES (:w, :conn, :c, :remote, '{}', :now, false, 0)",
            {"conn": connection_id, "remote": f"remote-{who.user_id}"},
        ),
        (
            "INSERT INTO sync_run_errors VALUES (:w, :id, :c, 'push', :msg, false, :now)",
            {"msg": f"duplicate email {who.email}"},
        ),
        (
            "INSERT INTO trigger_dedup VALUES (:w, 'manual', :key, :later)",
            {"key": who.email, "later": now + timedelta(days=1)},
        ),
    ]
    async with world.database.transaction() as connection:
        for sql, extra in statements:
            params = {"w": WORKSPACE, "id": new_id(), "c": contact_id, "now": now, **extra}
            await connection.execute(text(sql), params)


async def _execution_of(world: World, contact_id: str, workflow_id: str) -> str:
    async with world.database.read() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT id FROM executions WHERE workspace_id = :w AND subject_id = :s "
                    "AND workflow_id = :f"
                ),
                {"w": WORKSPACE, "s": contact_id, "f": workflow_id},
            )
        ).one()
    return str(row[0])


# --------------------------------------------------------------------------- the scan


# The event log's monthly partitions hold the rows their parent, events, lists already.
NOT_A_PARTITION = "AND table_name NOT IN (SELECT relname FROM pg_class WHERE relispartition)"


async def _database_text(world: World) -> str:
    """Every row of every table the catalog lists, cast to text; and the plaintext of every
    sealed value, opened with the test's keys."""
    async with world.database.read() as connection:
        tables = (
            await connection.execute(
                text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                    f"current_schema() AND table_type = 'BASE TABLE' {NOT_A_PARTITION} "
                    "ORDER BY table_name"
                )
            )
        ).scalars()
        parts: list[str] = []
        for table in list(tables):
            rows = await connection.execute(text(f'SELECT t::text FROM "{table}" t'))
            parts.extend(row[0] for row in rows)
        parts.extend(await _opened(world, connection))
    return "\n".join(parts)


async def _opened(world: World, connection: Any) -> list[str]:
    sealed_columns = (
        await connection.execute(
            text(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = "
                f"current_schema() AND column_name = 'sealed' {NOT_A_PARTITION} "
                "ORDER BY table_name"
            )
        )
    ).scalars()
    contexts = {
        "contacts": ("SELECT workspace_id, id, sealed FROM contacts", contact_context),
        "executions": ("SELECT workspace_id, id, sealed FROM executions", snapshot_context),
        "events": ("SELECT workspace_id, message_id, sealed FROM events", event_context),
        "secrets": ("SELECT workspace_id, id, sealed FROM secrets", secret_context),
    }
    opened: list[str] = []
    for table in list(sealed_columns):
        assert table in contexts, f"the scan cannot open {table}.sealed: teach it the context"
        query, context = contexts[table]
        for workspace, key, sealed in (await connection.execute(text(query))).all():
            if sealed is not None:
                plain = world.cipher.sealer.open(sealed, context=context(workspace, key))
                opened.append(plain.decode("utf-8", "replace"))
    jobs = await connection.execute(
        text("SELECT workspace_id, id, subject->>'sealed' FROM erasure_jobs")
    )
    for workspace, job_id, sealed in jobs.all():
        if sealed is not None:
            plain = world.cipher.sealer.open(sealed, context=erasure_context(workspace, job_id))
            opened.append(plain.decode("utf-8", "replace"))
    return opened


async def _redis_text(world: World) -> str:
    """Every value of every key of the test, read by type."""
    redis = world.redis
    parts: list[str] = []
    async for key in redis.scan_iter(match=f"{world.prefix}:*"):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            value: Any = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1)
        elif kind == "stream":
            value = await redis.xrange(key)
        else:
            raise AssertionError(f"the scan cannot read a {kind} key")
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)


def _found(haystack: str, who: Someone) -> list[str]:
    return [needle for needle in who.needles if needle in haystack]


async def test_after_an_erasure_no_table_or_redis_key_holds_the_person(world: World) -> None:
    ann, bob = Someone.new("ann"), Someone.new("bob")
    ann_id = await _route(world, ann)
    await _route(world, bob)
    await _leave_in_stream(world, ann, bob)

    stored, cached = await _database_text(world), await _redis_text(world)
    assert _found(stored, ann) == ann.needles  # the scan reads the data, sealed or not
    assert _found(cached, ann) == [ann.email, ann.phone]  # the stream entries hold them

    store = ErasureStore(world.database, world.cipher)
    job = await ErasureService(store).request(
        WORKSPACE, ErasureRequest(contact_id=ann_id), requested_by="test"
    )
    cleaner = RedisStreamCleaner(world.redis, prefix=world.prefix, shards=SHARDS)
    runner = ErasureRunner(store, cleaner, None, "eraser", lambda: START)
    claimed = await store.claim("eraser", START, timedelta(minutes=1), max_attempts=3)
    assert claimed is not None
    assert claimed.id == job.id
    done = await runner.run(claimed)

    assert done.status == "succeeded"
    stored, cached = await _database_text(world), await _redis_text(world)
    assert _found(stored, ann) == []
    assert _found(cached, ann) == []
    assert ann.user_id not in stored
    assert _found(stored, bob) == bob.needles  # the other person is untouched
    assert bob.email in cached
    assert done.stats["events"] >= 4
    assert done.stats["executions"] == 3
    assert done.stats["executionsCancelled"] == 1
    assert done.stats["streamEvents"] == 2
