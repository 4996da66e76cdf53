"""The task queue: leases, reclaims after a crash, and wake-ups instead of polling."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from campaignflow.bus.wakeup import InProcessWakeup, PostgresWakeup
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.clock import SystemClock
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.runtime import Engine
from campaignflow.store.database import Database
from tests._support.ciphers import contact_cipher
from tests.integration.engine.conftest import WORKSPACE, Harness, workflow

ONE_NODE = workflow("one", [{"id": "done", "type": "end"}])


async def test_a_leased_task_is_not_claimed_twice_until_its_lease_expires(
    harness: Harness,
) -> None:
    await harness.start(await harness.deploy(ONE_NODE))
    lease = timedelta(seconds=30)
    store = harness.queue

    first = await store.claim("w1", harness.clock.now(), lease=lease, limit=10)
    assert len(first) == 1
    assert await store.claim("w2", harness.clock.now(), lease=lease, limit=10) == []
    assert await store.next_due() == harness.clock.now() + lease  # due again when the lease ends

    harness.clock.advance(lease)
    reclaimed = await store.claim("w2", harness.clock.now(), lease=lease, limit=10)

    assert [task.id for task in reclaimed] == [first[0].id]


async def test_a_worker_that_died_mid_batch_loses_nothing(harness: Harness) -> None:
    """Claimed by a worker that never commits: after the lease, another worker finishes it."""
    execution_id = await harness.start(await harness.deploy(ONE_NODE))
    await harness.queue.claim("dead", harness.clock.now(), lease=timedelta(minutes=1), limit=10)

    assert await harness.drain() == 0  # leased: nothing to do yet
    await harness.advance(timedelta(minutes=1))

    assert (await harness.execution(execution_id)).status == "completed"
    assert await harness.path(execution_id) == [("done", "completed")]


async def test_claims_are_batched_and_oldest_first(harness: Harness) -> None:
    workflow_id = await harness.deploy(ONE_NODE)
    ids = []
    for _ in range(5):
        ids.append(await harness.start(workflow_id))
        harness.clock.advance(timedelta(seconds=1))

    claimed = await harness.queue.claim(
        "w", harness.clock.now(), lease=timedelta(minutes=1), limit=3
    )

    assert [task.execution_id for task in claimed] == ids[:3]


async def _idle_worker_picks_up(database: Database, engine: Engine, writer: Engine) -> float:
    """Seconds from starting an execution (through ``writer``) to its completion by a worker
    of ``engine`` that has gone idle with a 30 s ceiling on its sleep."""
    options = WorkerOptions(batch_size=10, lanes=1, max_idle=timedelta(seconds=30))
    worker = engine.worker(ExecutorRegistry(), options)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.3)  # the worker found nothing and sleeps
        service = writer.service()
        workflow_id = "one"
        record, _ = await service.execute(WORKSPACE, workflow_id, subject_id="c", input={})
        loop = asyncio.get_running_loop()
        began = loop.time()
        while (await writer.executions.get(WORKSPACE, record.id)).status != "completed":
            assert loop.time() - began < 10, "the idle worker was not woken"
            await asyncio.sleep(0.01)
        return loop.time() - began
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)


async def _deploy_one(engine: Engine) -> None:
    from campaignflow.services.workflows import WorkflowService

    await engine.workflows.ensure_workspace(WORKSPACE, "Acme")
    service = WorkflowService(engine.workflows)
    await service.create(WORKSPACE, ONE_NODE)
    await service.activate(WORKSPACE, "one")


async def test_an_in_process_signal_wakes_an_idle_worker(database: Database) -> None:
    engine = Engine.on(
        database, clock=SystemClock(), wakeup=InProcessWakeup(), contact_cipher=contact_cipher()
    )
    await _deploy_one(engine)

    elapsed = await _idle_worker_picks_up(database, engine, engine)

    assert elapsed < 5  # far below the 30 s it would otherwise sleep


@pytest.mark.postgres_only
async def test_notify_wakes_a_worker_in_another_process(postgres_database_url: str) -> None:
    """Two Database objects stand for two processes: the writer's NOTIFY (sent by the store at
    commit) reaches the worker's LISTEN connection; they share no in-process object."""
    worker_db = Database.from_url(postgres_database_url)
    writer_db = Database.from_url(postgres_database_url)
    worker_engine = Engine.on(
        worker_db, wakeup=PostgresWakeup(worker_db), contact_cipher=contact_cipher()
    )
    writer_engine = Engine.on(writer_db, wakeup=InProcessWakeup(), contact_cipher=contact_cipher())
    try:
        await _deploy_one(writer_engine)
        elapsed = await _idle_worker_picks_up(worker_db, worker_engine, writer_engine)
        assert elapsed < 5
    finally:
        await worker_engine.wakeup.aclose()
        await worker_db.dispose()
        await writer_db.dispose()
