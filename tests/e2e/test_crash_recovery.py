"""A worker killed with SIGKILL in the middle of a load loses nothing and repeats no effect.

Real processes throughout: PostgreSQL, two ``campaignflow worker`` processes one after the other,
and the HTTP sink in its own process counting applied effects per idempotency key.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.executions import ExecutionStore, NewExecution
from campaignflow.store.tables import execution_steps, executions, tasks
from campaignflow.store.workflows import WorkflowStore
from tests._support.ciphers import master_key_cipher
from tests._support.load import four_node_workflow
from tests._support.servers import free_port
from tests.e2e.conftest import REPO, TEST_MASTER_KEY, cli_env, spawn_worker

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

WORKSPACE = "default"
LOAD = 600


@pytest.fixture
def sink_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests._support.sink", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/_stats", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _prepare(url: str, sink_url: str) -> None:
    database = Database.from_url(url)
    try:
        store = WorkflowStore(database)
        await store.ensure_workspace(WORKSPACE, "Default")
        service = WorkflowService(store)
        record = await service.create(
            WORKSPACE, four_node_workflow("crash-load", f"{sink_url}/slow/30")
        )
        await service.activate(WORKSPACE, record.id)
        news = [
            NewExecution(WORKSPACE, record.id, 1, f"c{n}", "test", {"n": n}, {}, "check")
            for n in range(LOAD)
        ]
        cipher = master_key_cipher(TEST_MASTER_KEY)  # what the worker subprocesses open with
        await ExecutionStore(database, cipher).start_many(news, datetime.now(UTC))
    finally:
        await database.dispose()


async def _counts(url: str) -> tuple[int, list[tuple[int, int, int]]]:
    """Completed executions, and (steps, min seq, max seq) per execution."""
    database = Database.from_url(url)
    try:
        async with database.read() as connection:
            done = (
                await connection.execute(
                    select(func.count()).where(executions.c.status == "completed")
                )
            ).scalar_one()
            per_execution = (
                await connection.execute(
                    select(
                        func.count(),
                        func.min(execution_steps.c.seq),
                        func.max(execution_steps.c.seq),
                    ).group_by(execution_steps.c.execution_id)
                )
            ).all()
        return done, [tuple(row) for row in per_execution]  # type: ignore[misc]
    finally:
        await database.dispose()


def _worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = cli_env(
        CAMPAIGNFLOW_DATABASE_URL=url,
        CAMPAIGNFLOW_WORKER__LEASE_SECONDS="5",
        CAMPAIGNFLOW_WORKER__BATCH_SIZE="25",
        CAMPAIGNFLOW_WORKER__LANES="2",
    )
    return spawn_worker(env, log)


def _wait_for(url: str, predicate: object, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = asyncio.run(_counts(url))
        if predicate(done):  # type: ignore[operator]
            return done
        time.sleep(0.05)
    raise AssertionError(f"timed out; {done} of {LOAD} completed")


@pytest.mark.timeout(180)
def test_a_killed_worker_loses_no_step_and_repeats_no_effect(
    postgres_database_url: str, sink_url: str, tmp_path: Path
) -> None:
    asyncio.run(_prepare(postgres_database_url, sink_url))
    log = tmp_path / "workers.log"

    first = _worker(postgres_database_url, log)
    done_at_kill = _wait_for(postgres_database_url, lambda done: done >= LOAD // 10, 60)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert done_at_kill < LOAD, "the kill came after the load was over"

    second = _worker(postgres_database_url, log)
    try:
        _wait_for(postgres_database_url, lambda done: done == LOAD, 120)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, log.read_text(errors="replace")

    _, per_execution = asyncio.run(_counts(postgres_database_url))
    assert len(per_execution) == LOAD
    assert set(per_execution) == {(4, 1, 4)}  # every step logged once, none lost
    stats = httpx.get(f"{sink_url}/_stats").json()
    assert stats["applied"] == LOAD  # each action's effect happened once …
    assert len(stats["keys"]) == LOAD
    assert set(stats["keys"].values()) == {1}
    assert stats["requests"] >= LOAD  # … even where the call itself was repeated


async def _leased(url: str) -> int:
    database = Database.from_url(url)
    try:
        async with database.read() as connection:
            statement = select(func.count()).where(tasks.c.lease_owner.is_not(None))
            return int((await connection.execute(statement)).scalar_one())
    finally:
        await database.dispose()


@pytest.mark.timeout(180)
def test_sigterm_finishes_the_batch_in_hand_and_leaves_no_lease(
    postgres_database_url: str, sink_url: str, tmp_path: Path
) -> None:
    asyncio.run(_prepare(postgres_database_url, sink_url))
    log = tmp_path / "worker.log"

    worker = _worker(postgres_database_url, log)
    done_at_stop = _wait_for(postgres_database_url, lambda done: done >= LOAD // 10, 60)
    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=30) == 0, log.read_text(errors="replace")
    assert done_at_stop < LOAD
    assert asyncio.run(_leased(postgres_database_url)) == 0  # nothing waits for a lease to expire
    done, per_execution = asyncio.run(_counts(postgres_database_url))
    assert done < LOAD  # it stopped rather than draining the queue
    assert all(steps == maximum for steps, _, maximum in per_execution)  # no half-logged batch
