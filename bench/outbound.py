"""Outbound actions through the connector framework (DESIGN.md §9, `outbound`).

Each execution runs one connector action, `http.request` (the generic connector) through a
connection whose baseUrl is the local sink (`tests/_support/sink.py`, in its own process so
that its CPU is not the worker's), then ends. Real `campaignflow worker` processes run them on
PostgreSQL with Redis, so the account's rate limit and breaker are the shared Redis guards, as
in production: every action reserves a slot, asks the breaker and reports back to it.

`unthrottled` → `actions_per_s`: --actions executions are inserted in one transaction once
--workers (1) worker processes are running and warm (one warm-up action each); the figure is
actions / time from that commit to the last completed execution. The connection's limit
(1,000,000/min, the most a connection may set) is far above what a worker reaches, so the
limiter is asked for every action but never makes one wait.

`throttled` → `throttled_rate_ratio`: the connection is limited to --rate-per-minute (burst
--burst), two worker processes share its bucket through Redis, and the sink's request count is
sampled every 0.1 s; the rate over the steady window (from 10 % to 90 % of the requests, which
leaves out the initial burst and the tail) over the configured rate must be 1 ± 0.05. The rate
is chosen well below what two workers can do here, so that the limiter, not the machine, is
what holds it.

`unshared` → `unshared_rate_ratio` (the control): the same without Redis, so each worker keeps
its own bucket; about 2 shows that both workers send, and that sharing is what holds the rate.

`baseline` → `builtin_http_actions_per_s` (on request): the same request by the engine's
built-in `http` action (no connection, guards or operation model), to tell the connector
framework's cost from the engine's.

    python bench/outbound.py [--actions 20000] [--workers 1] [--rate-per-minute 12000]
        [--throttled-actions 8000] [--burst 20] [--phases unthrottled,throttled,unshared]

PostgreSQL and Redis: --database-url / --redis-url, else CAMPAIGNFLOW_TEST_DATABASE_URL /
CAMPAIGNFLOW_TEST_REDIS_URL, else throwaway servers from the installed binaries.

Fairness on 2 cores: the worker is one process (one core at most); the sink, PostgreSQL, Redis
and this script share the other. The sink answers from memory and records no bodies, and
progress is read from the sink's counters rather than by querying the database, so what the
figure measures is the worker and the database work each action needs. A second worker does
not help on 2 cores: the machine, not the worker, is then the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from _common import (
    BENCH_MASTER_KEY,
    REPO,
    emit,
    free_port,
    fresh_database,
    postgres_server,
    throwaway_redis,
)
from campaignflow.config import Settings
from campaignflow.integrations.guards import LocalGuards
from campaignflow.integrations.runtime import open_integrations
from campaignflow.security.contact_fields import contact_cipher_from
from campaignflow.services.connections import ConnectionRequest, ConnectionService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.executions import ExecutionStore, NewExecution
from campaignflow.store.migrate import upgrade
from campaignflow.store.tables import executions
from campaignflow.store.workflows import WorkflowStore

WORKSPACE = "default"
UNTHROTTLED_PER_MINUTE = 1_000_000  # the most a connection may set
SAMPLE_S = 0.1
TOLERANCE = 0.05


def connector_call(connection: str) -> dict[str, Any]:
    """The measured action: the generic connector through a connection."""
    return {
        "action": "http.request",
        "connection": connection,
        "params": {"method": "POST", "path": "/ok", "body": {"n": "{{ input.n }}"}},
    }


def builtin_call(sink_url: str) -> dict[str, Any]:
    """The baseline: the same request by the engine's built-in ``http`` action, which has no
    connection, guards or operation model (``--phases baseline``)."""
    return {"action": "http", "params": {"url": f"{sink_url}/ok", "body": {"n": "{{ input.n }}"}}}


def workflow(call: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflowId": "bench-outbound",
        "name": "Bench: one action",
        "triggers": [{"type": "api"}],
        "errorHandling": {"maxRetries": 5, "initialInterval": "PT1S", "jitter": 0},
        "nodes": [
            {"id": "send", "type": "action", "config": call, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }


def bench_settings(url: str) -> Settings:
    return Settings(database_url=url, encryption={"master_key": BENCH_MASTER_KEY})


async def prepare(
    database: Database,
    url: str,
    sink_url: str,
    *,
    per_minute: int,
    burst: int,
    builtin: bool = False,
) -> str:
    """Schema, workspace, the sink's connection (credentials in the secret store, as the API
    would write them) and the active workflow; returns the workflow id."""
    await upgrade(database)
    store = WorkflowStore(database)
    await store.ensure_workspace(WORKSPACE, "Bench")
    settings = bench_settings(url)
    links = open_integrations(
        database, settings, contact_cipher_from(settings), guards=LocalGuards()
    )
    try:
        connections = ConnectionService(
            links.connections, links.secrets, links.connectors, links.resolver, links.executor
        )
        request = ConnectionRequest(
            name="sink",
            provider="http",
            description="the bench's local sink",
            credentials={"scheme": "none"},
            settings={"baseUrl": sink_url, "requestsPerMinute": per_minute, "burstLimit": burst},
        )
        await connections.create(WORKSPACE, None, request)
    finally:
        await links.aclose()
    service = WorkflowService(store)
    call = builtin_call(sink_url) if builtin else connector_call("sink")
    record = await service.create(WORKSPACE, workflow(call))
    await service.activate(WORKSPACE, record.id)
    return record.id


def news(workflow_id: str, count: int, start: int = 0) -> list[NewExecution]:
    return [
        NewExecution(WORKSPACE, workflow_id, 1, f"c{n}", "bench", {"n": n}, {}, "send")
        for n in range(start, start + count)
    ]


async def completed(database: Database) -> int:
    async with database.read() as connection:
        statement = select(func.count()).where(executions.c.status == "completed")
        return int((await connection.execute(statement)).scalar_one())


async def sink_stats(session: aiohttp.ClientSession, sink_url: str) -> dict[str, Any]:
    async with session.get(f"{sink_url}/_stats") as response:
        stats: dict[str, Any] = await response.json()
        return stats


async def wait_for_sink(sink_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                await sink_stats(session, sink_url)
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the sink did not start")


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    child = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        child.terminate()
        child.wait(timeout=30)


@contextmanager
def workers(count: int, env: dict[str, str]) -> Iterator[list[Path]]:
    """``count`` worker processes; yields their log files (standard error)."""
    with tempfile.TemporaryDirectory() as directory, ExitStack() as stack:
        logs = [Path(directory) / f"worker-{n}.log" for n in range(count)]
        for log in logs:
            with log.open("wb") as sink:
                child = subprocess.Popen(
                    [sys.executable, "-m", "campaignflow", "worker"],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=sink,
                )
            stack.callback(child.wait, 30)
            stack.callback(child.terminate)
        yield logs


async def warmed_up(
    database: Database, store: ExecutionStore, workflow_id: str, logs: list[Path]
) -> int:
    """Wait until every worker has imported and started (it logs its schema check) and one
    warm-up action per worker has completed (the connection, the HTTP pool and the compiled
    workflow are cached); returns the completed count. Start-up takes seconds on a busy
    machine, and must not be counted as throughput."""
    deadline = time.monotonic() + 120
    while not all(log.stat().st_size > 0 for log in logs):
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not start within 120 s")
        await asyncio.sleep(0.1)
    await store.start_many(news(workflow_id, len(logs), start=-len(logs)), datetime.now(UTC))
    while await completed(database) < len(logs):  # noqa: ASYNC110 - polls the database
        await asyncio.sleep(0.05)
    return len(logs)


@contextmanager
def redis_server(configured: str | None) -> Iterator[str]:
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory() as directory, throwaway_redis(Path(directory)) as url:
        yield url


async def unthrottled(
    database: Database,
    workflow_id: str,
    actions: int,
    env: dict[str, str],
    *,
    sink_url: str,
    worker_count: int,
) -> float:
    """Workers started and warm first; actions per second from the backlog's commit to the
    last completion. Progress is read from the sink (cheap) until every action arrived, then
    from the database until every execution is complete, so that polling does not load it."""
    store = ExecutionStore(database, contact_cipher_from(bench_settings("unused")))
    async with aiohttp.ClientSession() as session:
        with workers(worker_count, env) as logs:
            warm = await warmed_up(database, store, workflow_id, logs)
            before = int((await sink_stats(session, sink_url))["requests"])
            await store.start_many(news(workflow_id, actions), datetime.now(UTC))
            began = time.perf_counter()
            while (await sink_stats(session, sink_url))["requests"] - before < actions:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            while await completed(database) < warm + actions:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            return actions / (time.perf_counter() - began)


async def throttled(
    database: Database, workflow_id: str, actions: int, env: dict[str, str], sink_url: str
) -> list[tuple[float, int]]:
    """Two workers; (seconds, requests the sink has seen) every SAMPLE_S until all are done."""
    store = ExecutionStore(database, contact_cipher_from(bench_settings("unused")))
    samples: list[tuple[float, int]] = []
    async with aiohttp.ClientSession() as session:
        with workers(2, env) as logs:
            warm = await warmed_up(database, store, workflow_id, logs)
            before = int((await sink_stats(session, sink_url))["requests"])
            await store.start_many(news(workflow_id, actions), datetime.now(UTC))
            began = time.perf_counter()
            while not samples or samples[-1][1] < actions:
                seen = int((await sink_stats(session, sink_url))["requests"]) - before
                samples.append((time.perf_counter() - began, seen))
                await asyncio.sleep(SAMPLE_S)
            while await completed(database) < warm + actions:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    return samples


def steady_rate(samples: list[tuple[float, int]], total: int) -> tuple[float, float]:
    """Requests per second between the samples at 10 % and 90 % of ``total``, and the
    window's length in seconds."""
    start = next(sample for sample in samples if sample[1] >= total * 0.1)
    end = [sample for sample in samples if sample[1] <= total * 0.9][-1]
    window = end[0] - start[0]
    return (end[1] - start[1]) / window, window


def worker_env(url: str, redis_url: str, args: argparse.Namespace) -> dict[str, str]:
    run = secrets.token_hex(4)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNFLOW_")},
        "CAMPAIGNFLOW_DATABASE_URL": url,
        "CAMPAIGNFLOW_REDIS_URL": redis_url,
        "CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY": BENCH_MASTER_KEY,
        "CAMPAIGNFLOW_EVENTS__STREAM_PREFIX": f"cf-bench-{run}",
        "CAMPAIGNFLOW_INTEGRATIONS__KEY_PREFIX": f"cf-bench-{run}:outbound",
        "CAMPAIGNFLOW_WORKER__LANES": str(args.lanes),
        "CAMPAIGNFLOW_WORKER__BATCH_SIZE": str(args.batch_size),
    }


async def run_phase(
    phase: str, server: str, redis_url: str, sink_url: str, args: argparse.Namespace
) -> None:
    with fresh_database(server) as url:
        database = Database.from_url(url)
        try:
            env = worker_env(url, redis_url, args)
            if phase in ("throttled", "unshared"):
                shared = phase == "throttled"
                if not shared:  # no Redis: each worker keeps its own bucket
                    del env["CAMPAIGNFLOW_REDIS_URL"]
                await throttled_phase(database, url, env, sink_url, args, shared=shared)
            else:
                await unthrottled_phase(
                    database, url, env, sink_url, args, builtin=phase == "baseline"
                )
        finally:
            await database.dispose()


async def unthrottled_phase(
    database: Database,
    url: str,
    env: dict[str, str],
    sink_url: str,
    args: argparse.Namespace,
    *,
    builtin: bool,
) -> None:
    workflow_id = await prepare(
        database,
        url,
        sink_url,
        per_minute=UNTHROTTLED_PER_MINUTE,
        burst=100_000,
        builtin=builtin,
    )
    per_s = await unthrottled(
        database, workflow_id, args.actions, env, sink_url=sink_url, worker_count=args.workers
    )
    emit(
        {
            "bench": "outbound",
            "figure": "builtin_http_actions_per_s" if builtin else "actions_per_s",
            "value": round(per_s),
            "unit": "1/s",
            "actions": args.actions,
            "workers": args.workers,
            "lanes": args.lanes,
            "batch_size": args.batch_size,
            "guards": "none" if builtin else "redis",
        }
    )


async def throttled_phase(
    database: Database,
    url: str,
    env: dict[str, str],
    sink_url: str,
    args: argparse.Namespace,
    *,
    shared: bool,
) -> None:
    """The limit held by two workers. ``shared`` False is the control: without Redis each
    worker paces on its own, so the sink sees about twice the limit — which shows that both
    workers send, and that the shared bucket is what holds the rate."""
    workflow_id = await prepare(
        database, url, sink_url, per_minute=args.rate_per_minute, burst=args.burst
    )
    samples = await throttled(database, workflow_id, args.throttled_actions, env, sink_url)
    configured = args.rate_per_minute / 60
    measured, window = steady_rate(samples, args.throttled_actions)
    ratio = measured / configured
    emit(
        {
            "bench": "outbound",
            "figure": "throttled_rate_ratio" if shared else "unshared_rate_ratio",
            "value": round(ratio, 4),
            "unit": "measured/configured",
            "configured_per_s": round(configured, 2),
            "measured_per_s": round(measured, 2),
            "window_s": round(window, 2),
            "actions": args.throttled_actions,
            "workers": 2,
            "guards": "redis" if shared else "per process",
            **(
                {"within_5_percent": abs(ratio - 1) <= TOLERANCE}
                if shared
                else {"expected": 2.0}  # two buckets of the configured rate
            ),
        }
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1, help="phase 1's worker processes")
    parser.add_argument("--throttled-actions", type=int, default=8_000)
    parser.add_argument("--rate-per-minute", type=int, default=12_000, help="phase 2's limit")
    parser.add_argument("--burst", type=int, default=20, help="phase 2's burst")
    parser.add_argument("--lanes", type=int, default=4, help="batches in flight per worker")
    parser.add_argument("--batch-size", type=int, default=256, help="tasks per claim")
    parser.add_argument(
        "--phases",
        default="unthrottled,throttled,unshared",
        help="comma-separated: unthrottled, throttled, unshared (the control: no Redis), "
        "baseline (the built-in http action instead of the connector)",
    )
    parser.add_argument("--database-url", default=os.environ.get("CAMPAIGNFLOW_TEST_DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("CAMPAIGNFLOW_TEST_REDIS_URL"))
    args = parser.parse_args()
    port = free_port()
    sink_url = f"http://127.0.0.1:{port}"
    with (
        postgres_server(args.database_url) as server,
        redis_server(args.redis_url) as redis_url,
        process([sys.executable, "-m", "tests._support.sink", "--port", str(port)]),
    ):
        await wait_for_sink(sink_url)
        for phase in args.phases.split(","):
            await run_phase(phase, server, redis_url, sink_url, args)


if __name__ == "__main__":
    asyncio.run(main())
