"""Trigger processing end to end (DESIGN.md §9, `events`): HTTP batch ingestion → Redis Streams
→ the router matching 1,000 active behavior triggers → executions created, on PostgreSQL.

Real processes: `campaignflow serve` (--api, the ingestion endpoint), `campaignflow worker`
(--workers: router + engine), Redis, PostgreSQL; this process only sends.

The catalog: --triggers workflows, one behavior trigger each, over --names event names, each
condition `event.properties.plan == "pN" && event.properties.total > T`. Every event names one
of the event names and one of the plans at random, so exactly one trigger's plan matches and
`total` decides: --match is the fraction of events that start an execution.

Phase 1, throughput: --events events in batches of --batch, sent by --senders concurrent
clients; events/s = events / time from the first request until every event is stored and every
matching execution created.
Phase 2, latency at a steady --rate events/s for --seconds (batches of 10 every 10 ms): from the
event's acceptance (`events.received_at`) to the execution's creation, and to its first step
(the worker starting it).

    python bench/events.py [--events 200000] [--rate 1000] [--seconds 10]

PostgreSQL and Redis: --database-url / --redis-url, else CAMPAIGNFLOW_TEST_DATABASE_URL /
CAMPAIGNFLOW_TEST_REDIS_URL, else throwaway servers from the installed binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from sqlalchemy import text

from _common import (
    BENCH_MASTER_KEY,
    REPO,
    emit,
    fresh_database,
    percentile,
    postgres_server,
    start_server,
    throwaway_redis,
)
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.migrate import upgrade
from campaignflow.store.workflows import WorkflowStore

WORKSPACE = "default"
TOKEN = "bench-token-0123456789abcdef"
PLANS = 10


def workflow(index: int, names: int, threshold: int) -> dict[str, Any]:
    return {
        "workflowId": f"w{index}",
        "name": f"Bench {index}",
        "triggers": [
            {
                "type": "behavior",
                "event": f"ev_{index % names}",
                "condition": f'event.properties.plan == "p{(index // names) % PLANS}" '
                f"&& event.properties.total > {threshold}",
            }
        ],
        "entry": {"reentry": "always", "allowConcurrent": True},
        "errorHandling": {},
        "nodes": [{"id": "done", "type": "end"}],
    }


async def prepare(url: str, *, triggers: int, names: int, threshold: int) -> None:
    database = Database.from_url(url)
    try:
        await upgrade(database)
        store = WorkflowStore(database)
        await store.ensure_workspace(WORKSPACE, "Bench")
        service = WorkflowService(store)
        for index in range(triggers):
            record = await service.create(WORKSPACE, workflow(index, names, threshold))
            await service.activate(WORKSPACE, record.id)
    finally:
        await database.dispose()


def make_event(
    n: int, rng: random.Random, *, names: int, contacts: int, tag: str, identify: float = 0.0
) -> dict[str, Any]:
    """A track event, or (a share ``identify`` of them) an identify call carrying an email and
    a phone number, the sensitive fields that are sealed at rest."""
    if rng.random() < identify:
        user = rng.randrange(contacts)
        return {
            "type": "identify",
            "userId": f"user-{user}",
            "messageId": f"{tag}-{n}",
            "traits": {
                "email": f"user-{user}-{n}@example.com",
                "phone": f"+1415555{n % 10_000:04d}",
                "plan": f"p{rng.randrange(PLANS)}",
            },
        }
    return {
        "event": f"ev_{rng.randrange(names)}",
        "userId": f"user-{rng.randrange(contacts)}",
        "messageId": f"{tag}-{n}",
        "properties": {
            "plan": f"p{rng.randrange(PLANS)}",
            "total": rng.randrange(1000),
            "sku": f"sku-{rng.randrange(5000)}",
        },
    }


def bodies(
    count: int, batch: int, *, names: int, contacts: int, tag: str, identify: float = 0.0
) -> list[bytes]:
    rng = random.Random(7)
    events = [
        make_event(n, rng, names=names, contacts=contacts, tag=tag, identify=identify)
        for n in range(count)
    ]
    return [orjson.dumps({"events": events[i : i + batch]}) for i in range(0, count, batch)]


def expected_matches(payloads: list[bytes], threshold: int) -> int:
    return sum(
        1
        for body in payloads
        for event in orjson.loads(body)["events"]
        if event.get("type") != "identify" and event["properties"]["total"] > threshold
    )


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    """Send until accepted: a 429 (backpressure) is waited out as its Retry-After says."""
    while True:
        async with session.post(f"{url}/api/v1/events/batch", data=body) as response:
            if response.status == 202:
                return
            if response.status == 429:
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            raise RuntimeError(f"ingestion answered {response.status}: {await response.text()}")


async def counts(database: Database, tag: str) -> tuple[int, int]:
    async with database.read() as connection:
        stored = (
            await connection.execute(
                text("SELECT count(*) FROM events WHERE message_id LIKE :tag"), {"tag": f"{tag}-%"}
            )
        ).scalar_one()
        started = (await connection.execute(text("SELECT count(*) FROM executions"))).scalar_one()
    return int(stored), int(started)


def session_for(senders: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        connector=aiohttp.TCPConnector(limit=senders),
    )


async def throughput(
    database: Database, urls: list[str], payloads: list[bytes], *, senders: int, expected: int
) -> tuple[float, int, int]:
    total = sum(len(orjson.loads(body)["events"]) for body in payloads)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in payloads:
        queue.put_nowait(body)

    async def sender(index: int, session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            await post(session, urls[index % len(urls)], queue.get_nowait())

    async with session_for(senders) as session:
        began = time.perf_counter()
        await asyncio.gather(*(sender(i, session) for i in range(senders)))
        sent = time.perf_counter() - began
        stored, started = await counts(database, "tp")
        deadline = time.perf_counter() + 300
        while (stored < total or started < expected) and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
            stored, started = await counts(database, "tp")
        elapsed = time.perf_counter() - began
    print(f"# sent in {sent:.1f}s, routed in {elapsed:.1f}s", file=sys.stderr)
    return total / elapsed, stored, started


async def latency(
    database: Database, urls: list[str], *, rate: int, seconds: float, names: int, contacts: int
) -> tuple[list[float], list[float]]:
    rng = random.Random(11)
    per_tick, interval = 10, 10 / rate
    ticks = int(seconds * rate / per_tick)
    async with session_for(8) as session:
        pending: list[asyncio.Task[None]] = []
        began = time.perf_counter()
        for tick in range(ticks):
            await asyncio.sleep(max(0.0, began + tick * interval - time.perf_counter()))
            events = [
                make_event(tick * per_tick + i, rng, names=names, contacts=contacts, tag="lat")
                for i in range(per_tick)
            ]
            body = orjson.dumps({"events": events})
            pending.append(asyncio.create_task(post(session, urls[tick % len(urls)], body)))
        await asyncio.gather(*pending)
    await asyncio.sleep(3)  # let the last ones be routed and started
    query = text(
        """
        SELECT e.received_at, x.created_at,
               (SELECT min(s.started_at) FROM execution_steps s
                 WHERE s.workspace_id = x.workspace_id AND s.execution_id = x.id) AS first_step
        FROM executions x
        JOIN events e ON e.workspace_id = x.workspace_id
                     AND e.message_id = x.state -> 'event' ->> 'messageId'
        WHERE e.message_id LIKE 'lat-%'
        """
    )
    async with database.read() as connection:
        rows = (await connection.execute(query)).all()
    created = [(row.created_at - row.received_at).total_seconds() * 1000 for row in rows]
    started = [
        (row.first_step - row.received_at).total_seconds() * 1000
        for row in rows
        if row.first_step is not None
    ]
    return created, started


@contextmanager
def redis_server(configured: str | None) -> Iterator[str]:
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory() as directory, throwaway_redis(Path(directory)) as url:
        yield url


@contextmanager
def platform(url: str, redis_url: str, *, apis: int, workers: int) -> Iterator[list[str]]:
    """`serve` processes (their URLs) and `worker` processes on one database and stream."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNFLOW_")},
        "CAMPAIGNFLOW_DATABASE_URL": url,
        "CAMPAIGNFLOW_REDIS_URL": redis_url,
        "CAMPAIGNFLOW_API_TOKEN": TOKEN,
        "CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY": BENCH_MASTER_KEY,
        "CAMPAIGNFLOW_EVENTS__STREAM_PREFIX": f"cf-bench-{secrets.token_hex(4)}",
        "CAMPAIGNFLOW_ACCESS_LOG": "false",
    }
    with ExitStack() as stack:
        urls = [stack.enter_context(start_server(["serve"], env)) for _ in range(apis)]
        for _ in range(workers):
            stack.enter_context(worker_process(env))
        time.sleep(3)  # workers imported and idle
        yield urls


@contextmanager
def worker_process(env: dict[str, str]) -> Iterator[None]:
    child = subprocess.Popen(
        [sys.executable, "-m", "campaignflow", "worker"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=None,
    )
    try:
        yield
    finally:
        child.terminate()
        child.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--senders", type=int, default=8, help="concurrent requests")
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--names", type=int, default=100)
    parser.add_argument("--match", type=float, default=0.1, help="fraction starting one")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument(
        "--identify",
        type=float,
        default=0.1,
        help="fraction of identify calls with an email and a phone (sealed at rest)",
    )
    parser.add_argument("--apis", type=int, default=1, help="`serve` processes")
    parser.add_argument("--workers", type=int, default=1, help="`worker` processes")
    parser.add_argument("--rate", type=int, default=1000, help="events/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database-url", default=os.environ.get("CAMPAIGNFLOW_TEST_DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("CAMPAIGNFLOW_TEST_REDIS_URL"))
    args = parser.parse_args()
    threshold = int(1000 * (1 - args.match))
    common = {
        "bench": "events",
        "triggers": args.triggers,
        "event_names": args.names,
        "apis": args.apis,
        "workers": args.workers,
        "identify_share": args.identify,
    }
    payloads = bodies(
        args.events,
        args.batch,
        names=args.names,
        contacts=args.contacts,
        tag="tp",
        identify=args.identify,
    )
    expected = expected_matches(payloads, threshold)
    with (
        postgres_server(args.database_url) as server,
        redis_server(args.redis_url) as redis_url,
        fresh_database(server) as url,
    ):
        await prepare(url, triggers=args.triggers, names=args.names, threshold=threshold)
        database = Database.from_url(url)
        try:
            with platform(url, redis_url, apis=args.apis, workers=args.workers) as urls:
                per_s, stored, started = await throughput(
                    database, urls, payloads, senders=args.senders, expected=expected
                )
                emit(
                    {
                        **common,
                        "figure": "events_per_s",
                        "value": round(per_s),
                        "unit": "1/s",
                        "events": stored,
                        "executions": started,
                        "expected_executions": expected,
                        "batch": args.batch,
                    }
                )
                created, first_step = await latency(
                    database,
                    urls,
                    rate=args.rate,
                    seconds=args.seconds,
                    names=args.names,
                    contacts=args.contacts,
                )
        finally:
            await database.dispose()
    extra = {**common, "rate": args.rate, "samples": len(first_step)}
    emit(
        {
            **extra,
            "figure": "trigger_latency_p99_ms",
            "value": round(percentile(first_step, 99), 1),
            "unit": "ms",
            "p50_ms": round(percentile(first_step, 50), 1),
            "created_p50_ms": round(percentile(created, 50), 1),
            "created_p99_ms": round(percentile(created, 99), 1),
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
