"""The erasure store and runner on SQLite and PostgreSQL: bounded batches that a resumed job
finishes without counting anything twice, the lease that keeps a presumed-dead worker from
writing, a worker whose execution vanished under it, and the ingestion and send-time stops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from campaignflow.bus.in_process import InProcessBus
from campaignflow.compliance.erasure import ErasureOptions, ErasureRunner, NoStream
from campaignflow.domain.contacts import NewContact
from campaignflow.domain.events import Event, decode_events
from campaignflow.engine.clock import ManualClock
from campaignflow.errors import LeaseLost
from campaignflow.services.erasures import ErasureRequest, ErasureService
from campaignflow.services.ingest import IngestService
from campaignflow.store import personal_data as pd
from campaignflow.store.contacts import ContactStore
from campaignflow.store.database import Database
from campaignflow.store.erasure import ErasedIdentities, ErasureJob, ErasureStore
from campaignflow.store.ids import new_id
from campaignflow.store.suppressions import SuppressionStore
from campaignflow.store.tables import contacts, erased_identities, events
from tests._support.ciphers import contact_cipher
from tests.integration.engine import conftest as engine
from tests.integration.engine.conftest import WORKSPACE, Harness, workflow

# The engine suite's ``harness`` fixture (a worker, a queue, a sink), registered here too.
engine_harness = engine.harness

NOW = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
LEASE = timedelta(minutes=1)


@pytest.fixture
async def store(database: Database) -> ErasureStore:
    return ErasureStore(database, contact_cipher())


async def _person_with_events(database: Database, count: int) -> str:
    contact = await ContactStore(database, contact_cipher()).create(
        NewContact(WORKSPACE, user_id="ann", email="ann@example.com"), NOW
    )
    rows = [
        {
            "workspace_id": WORKSPACE,
            "message_id": f"m-{n}",
            "type": "track",
            "name": "viewed",
            "contact_id": contact.id,
            "user_id": "ann",
            "anonymous_id": None,
            "payload": {"n": n},
            "timestamp": NOW,
            "received_at": NOW,
        }
        for n in range(count)
    ]
    other = {**rows[0], "message_id": "bob-1", "contact_id": "bob", "user_id": "bob"}
    async with database.transaction() as connection:
        await connection.execute(events.insert(), [*rows, other])
    return contact.id


async def _ask(store: ErasureStore, **subject: Any) -> ErasureJob:
    return await ErasureService(store, clock=lambda: NOW).request(
        WORKSPACE, ErasureRequest(**subject), requested_by="test"
    )


async def _count(database: Database, table: Any) -> int:
    async with database.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar())


class KilledAfter(ErasureStore):
    """Fault injection (nothing real can kill a worker at an exact point): the worker 'dies'
    inside its ``writes``-th write to the job, so that transaction is rolled back and the
    ones before it stay committed."""

    def __init__(self, database: Database, writes: int) -> None:
        super().__init__(database, contact_cipher())
        self.left = writes

    async def _hold(self, *args: Any, **kwargs: Any) -> None:
        self.left -= 1
        if self.left <= 0:
            raise RuntimeError("killed")
        await super()._hold(*args, **kwargs)


async def test_a_job_resumed_after_its_worker_died_finishes_and_counts_each_row_once(
    database: Database, store: ErasureStore
) -> None:
    contact_id = await _person_with_events(database, 23)
    job = await _ask(store, contact_id=contact_id)
    # Writes: the resolution, then one per batch of 5 events; it dies in the third batch.
    dying = KilledAfter(database, writes=4)
    claimed = await dying.claim("w1", NOW, LEASE, max_attempts=3)
    assert claimed is not None
    small = ErasureOptions(batch=5)
    with pytest.raises(RuntimeError, match="killed"):
        await ErasureRunner(dying, NoStream(), None, "w1", lambda: NOW, small).run(claimed)
    partway = await store.get(WORKSPACE, job.id)
    assert partway.status == "running"
    assert partway.contact_ids == [contact_id]
    assert partway.stats["events"] == 10
    assert await _count(database, events) == 1 + 13  # bob's, and ann's not yet erased
    assert await _count(database, contacts) == 1  # the contact goes last

    assert await store.claim("w2", NOW, LEASE, max_attempts=3) is None  # w1's lease holds
    later = NOW + LEASE + timedelta(seconds=1)
    resumed = await store.claim("w2", later, LEASE, max_attempts=3)
    assert resumed is not None
    assert resumed.attempts == 2
    done = await ErasureRunner(store, NoStream(), None, "w2", lambda: later, small).run(resumed)

    assert done.status == "succeeded"
    assert done.stats["events"] == 23
    assert done.stats["contacts"] == 1
    assert await _count(database, events) == 1  # bob's
    assert "sealed" not in done.subject  # identities dropped once final


async def test_deletes_come_in_bounded_batches(database: Database, store: ErasureStore) -> None:
    contact_id = await _person_with_events(database, 23)
    person = pd.Person(WORKSPACE, contact_ids=(contact_id,))
    async with database.transaction() as connection:
        first = await connection.execute(pd.delete_batch(pd.PERSON_TABLES[1], person, 10))
    assert first.rowcount == 10
    assert await _count(database, events) == 14


async def test_a_worker_that_lost_its_lease_deletes_nothing(
    database: Database, store: ErasureStore
) -> None:
    contact_id = await _person_with_events(database, 3)
    await _ask(store, contact_id=contact_id)
    first = await store.claim("w1", NOW, LEASE, max_attempts=3)
    assert first is not None
    first = await store.resolve(first, "w1")
    later = NOW + LEASE * 2
    assert await store.claim("w2", later, LEASE, max_attempts=3) is not None

    with pytest.raises(LeaseLost):
        await store.erase(first, "w1", store.person(first), later, batch=10)
    assert await _count(database, events) == 4  # w1's batch was rolled back


async def test_an_erased_person_is_dropped_at_ingestion_and_refused_at_send_time(
    database: Database, store: ErasureStore
) -> None:
    job = await _ask(store, email="Ann@Example.com")
    claimed = await store.claim("w1", NOW, LEASE, max_attempts=3)
    assert claimed is not None
    assert claimed.id == job.id
    await ErasureRunner(store, NoStream(), None, "w1", lambda: NOW).run(claimed)
    bus = InProcessBus()
    check = ErasedIdentities(database, contact_cipher(), cache_seconds=0)
    ingest = IngestService(bus, ManualClock(NOW), erased=check)

    def event(**fields: Any) -> Event:
        return Event(
            workspace_id=WORKSPACE,
            message_id=new_id(),
            type="track",
            name="x",
            timestamp=NOW,
            received_at=NOW,
            **fields,
        )

    named = [
        event(user_id="u", context={"traits": {"email": " ANN@example.com"}}),
        event(anonymous_id="a", traits={"email": "ann@example.com"}),
    ]
    publishing = asyncio.create_task(ingest.accept([*named, event(user_id="someone-else")]))
    deliveries = await bus.consume("router", count=10, block_ms=2000)
    await bus.ack("router", deliveries)
    await publishing  # in-process, publish returns once a consumer acknowledged

    assert ingest.dropped_erased == 2
    published = [e for d in deliveries for e in decode_events(d.payload)]
    assert [e.user_id for e in published] == ["someone-else"]
    suppressions = SuppressionStore(database, contact_cipher())
    refused = await suppressions.suppressed(WORKSPACE, ["ann@example.com", "bob@example.com"])
    assert refused == {"ann@example.com"}
    assert await suppressions.suppressed("globex", ["ann@example.com"]) == set()


async def test_whether_a_workspace_erased_anyone_is_remembered_for_the_cache_time(
    database: Database,
) -> None:
    check = ErasedIdentities(database, contact_cipher(), cache_seconds=60)
    digest = check.digest("user_id", "u")
    assert await check.erased(WORKSPACE, [("user_id", digest)]) == set()
    async with database.transaction() as connection:  # an erasure elsewhere, unseen for 60 s
        row = {"workspace_id": WORKSPACE, "kind": "user_id", "digest": digest}
        await connection.execute(
            erased_identities.insert(), [{**row, "erasure_id": "e", "created_at": NOW}]
        )
    assert await check.erased(WORKSPACE, [("user_id", digest)]) == set()  # cached "none"
    fresh = ErasedIdentities(database, contact_cipher(), cache_seconds=60)
    assert await fresh.erased(WORKSPACE, [("user_id", digest)]) == {digest}


async def test_a_worker_holding_an_erased_execution_neither_crashes_nor_resurrects_it(
    engine_harness: Harness,
) -> None:
    harness = engine_harness
    definition = workflow(
        "calling",
        [
            {
                "id": "call",
                "type": "action",
                "config": {"action": "http", "params": {"url": f"{harness.sink.url}/ok"}},
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition), subject="contact-9")
    tasks = await harness.queue.claim(
        "w1", harness.clock.now(), lease=timedelta(minutes=1), limit=10
    )
    loaded = await harness.queue.load([(WORKSPACE, execution_id)])
    store = ErasureStore(harness.database, contact_cipher())
    job = await _ask(store, user_id="contact-9")  # started by API for that subject
    claimed = await store.claim("eraser", NOW, LEASE, max_attempts=3)
    assert claimed is not None
    assert claimed.id == job.id
    done = await ErasureRunner(store, NoStream(), None, "eraser", lambda: NOW).run(claimed)
    assert done.stats["executions"] == 1
    assert done.stats["executionsCancelled"] == 1

    compiled = await harness.service.compiled.get(WORKSPACE, "calling", 1)
    outcome = await harness.worker.interpreter.advance(
        loaded[(WORKSPACE, execution_id)], compiled, tasks, harness.clock.now()
    )
    revisions = {key: record.revision for key, record in loaded.items()}
    conflicts = await harness.queue.commit([outcome], revisions, "w1", harness.clock.now())

    assert conflicts == [(WORKSPACE, execution_id)]
    assert await harness.steps(execution_id) == []
    assert await harness.drain() == 0  # nothing left to run, nothing crashes
    with pytest.raises(Exception, match=r"does not exist|not found"):
        await harness.execution(execution_id)
