"""Workflow executions through real workers on PostgreSQL (DESIGN.md §9, `executions`).

The workflow has four nodes: condition → delay PT0S → http POST to a local sink → end. Real
`campaignflow worker` processes run it; the sink runs in its own process and counts effects.

Phase 1, throughput: a backlog of --backlog executions is inserted (batched), then the workers
start; executions per minute = backlog / time until the last one completes.
Phase 2, latency: executions are started at a steady --rate per second for --seconds; start-to-
finish latency is each execution's finished_at - created_at (database clock of the writers).

    python bench/executions.py [--backlog 20000] [--workers 2] [--rate 300] [--seconds 10]

PostgreSQL: --database-url, else CAMPAIGNFLOW_TEST_DATABASE_URL (a fresh database is created on
that server and dropped afterwards), else a throwaway server from the installed binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlalchemy import func, select

from _common import (
    BENCH_MASTER_KEY,
    REPO,
    emit,
    four_node_workflow,
    free_port,
    fresh_database,
    percentile,
    postgres_server,
)
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.key_file import load_blind_index, load_key_ring
from campaignflow.security.settings import EncryptionSettings
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.executions import ExecutionStore, NewExecution
from campaignflow.store.migrate import upgrade
from campaignflow.store.tables import executions
from campaignflow.store.workflows import WorkflowStore

WORKSPACE = "default"


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield child
    finally:
        child.terminate()
        child.wait(timeout=30)


async def wait_for_sink(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/_stats") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the sink did not start")


async def prepare(database: Database, sink_url: str) -> str:
    await upgrade(database)
    store = WorkflowStore(database)
    await store.ensure_workspace(WORKSPACE, "Bench")
    service = WorkflowService(store)
    record = await service.create(
        WORKSPACE, four_node_workflow("bench-four-nodes", f"{sink_url}/ok")
    )
    await service.activate(WORKSPACE, record.id)
    return record.id


def news(workflow_id: str, start: int, count: int) -> list[NewExecution]:
    return [
        NewExecution(WORKSPACE, workflow_id, 1, f"c{n}", "bench", {"n": n}, {}, "check")
        for n in range(start, start + count)
    ]


async def completed(database: Database) -> int:
    async with database.read() as connection:
        statement = select(func.count()).where(executions.c.status == "completed")
        return int((await connection.execute(statement)).scalar_one())


def bench_cipher() -> ContactCipher:
    """The cipher the worker processes build from the bench's master key."""
    encryption = EncryptionSettings.model_validate({"master_key": BENCH_MASTER_KEY})
    return ContactCipher(
        load_key_ring(encryption), load_blind_index(encryption), encryption.sensitive_contact_fields
    )


async def throughput(
    database: Database, workflow_id: str, backlog: int, *, env: dict[str, str], workers: int
) -> float:
    """Workers start and go idle first; the backlog then appears in one transaction, and the
    clock runs from its commit to the last completion (start-up is not counted)."""
    store = ExecutionStore(database, bench_cipher())
    command = [sys.executable, "-m", "campaignflow", "worker"]
    with contextlib_all([process(command, env) for _ in range(workers)]):
        await asyncio.sleep(4)  # imported, schema checked, idle
        await store.start_many(news(workflow_id, 0, backlog), datetime.now(UTC))
        began = time.perf_counter()
        while await completed(database) < backlog:  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - began
    return backlog / elapsed * 60


async def sink_applied(sink_url: str) -> int:
    """How many distinct effects the sink applied (one per execution, by idempotency key)."""
    async with aiohttp.ClientSession() as session, session.get(f"{sink_url}/_stats") as response:
        return int((await response.json())["applied"])


@contextmanager
def contextlib_all(managers: list[Any]) -> Iterator[None]:
    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield


async def latency(
    database: Database,
    workflow_id: str,
    *,
    rate: int,
    seconds: float,
    inserts_per_s: int,
    env: dict[str, str],
    workers: int,
) -> list[float]:
    store = ExecutionStore(database, bench_cipher())
    command = [sys.executable, "-m", "campaignflow", "worker"]
    first = 10_000_000
    with contextlib_all([process(command, env) for _ in range(workers)]):
        await asyncio.sleep(4)  # workers imported, migrated schema checked, idle
        ticks = int(seconds * inserts_per_s)
        per_tick = max(1, rate // inserts_per_s)
        began = time.perf_counter()
        for tick in range(ticks):
            due = began + tick / inserts_per_s
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await store.start_many(
                news(workflow_id, first + tick * per_tick, per_tick), datetime.now(UTC)
            )
        total = ticks * per_tick
        deadline = time.perf_counter() + 60
        while await completed(database) < total and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    async with database.read() as connection:
        rows = (
            await connection.execute(
                select(executions.c.created_at, executions.c.finished_at).where(
                    executions.c.status == "completed"
                )
            )
        ).all()
    return [(row.finished_at - row.created_at).total_seconds() * 1000 for row in rows]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=300, help="executions/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--inserts-per-second", type=int, default=10, help="latency phase: transactions per second"
    )
    parser.add_argument("--lanes", type=int, default=4, help="batches in flight per worker")
    parser.add_argument("--batch-size", type=int, default=256, help="tasks per claim")
    parser.add_argument("--database-url", default=os.environ.get("CAMPAIGNFLOW_TEST_DATABASE_URL"))
    args = parser.parse_args()
    port = free_port()
    sink_url = f"http://127.0.0.1:{port}"
    with (
        postgres_server(args.database_url) as server,
        process([sys.executable, "-m", "tests._support.sink", "--port", str(port)]),
    ):
        await wait_for_sink(sink_url)
        for phase in ("throughput", "latency"):
            with fresh_database(server) as url:
                database = Database.from_url(url)
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNFLOW_")},
                    "CAMPAIGNFLOW_DATABASE_URL": url,
                    "CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY": BENCH_MASTER_KEY,
                    "CAMPAIGNFLOW_WORKER__LANES": str(args.lanes),
                    "CAMPAIGNFLOW_WORKER__BATCH_SIZE": str(args.batch_size),
                }
                try:
                    workflow_id = await prepare(database, sink_url)
                    if phase == "throughput":
                        applied_before = await sink_applied(sink_url)
                        per_min = await throughput(
                            database, workflow_id, args.backlog, env=env, workers=args.workers
                        )
                        emit(
                            {
                                "bench": "executions",
                                "figure": "executions_per_min",
                                "value": round(per_min),
                                "unit": "1/min",
                                "backlog": args.backlog,
                                "workers": args.workers,
                                "sink_effects": await sink_applied(sink_url) - applied_before,
                            }
                        )
                    else:
                        latencies = await latency(
                            database,
                            workflow_id,
                            rate=args.rate,
                            seconds=args.seconds,
                            inserts_per_s=args.inserts_per_second,
                            env=env,
                            workers=args.workers,
                        )
                        for q in (50, 99):
                            emit(
                                {
                                    "bench": "executions",
                                    "figure": f"execution_latency_p{q}_ms",
                                    "value": round(percentile(latencies, q), 2),
                                    "unit": "ms",
                                    "rate": args.rate,
                                    "executions": len(latencies),
                                    "workers": args.workers,
                                }
                            )
                finally:
                    await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
