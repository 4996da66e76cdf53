"""API latency under a steady offered load of mixed reads and writes (DESIGN.md §9, `api`).

Starts `campaignflow serve` as its own process on a fresh database, seeds workflows, then offers
requests on an open-loop schedule (request i is due at start + i / rate, whether or not earlier
ones have answered) so a slow server cannot hide its queueing from the figures. Latency is
measured from each request's due time.

    python bench/api.py [--seconds 20] [--rate 500] [--database-url URL]

Mix: 50% GET /workflows/{id}, 30% GET /workflows?limit=20, 15% PUT (new version), 5% POST.
Database: --database-url, else CAMPAIGNFLOW_TEST_DATABASE_URL (a fresh database is created on
that server and dropped afterwards), else a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from _common import BENCH_MASTER_KEY, emit, fresh_database, percentile, start_server

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = orjson.loads((REPO / "examples" / "workflows" / "welcome-series.json").read_bytes())
TOKEN = "bench-" + secrets.token_urlsafe(24)
SEED_WORKFLOWS = 100


def definition(workflow_id: str, revision: int) -> dict[str, Any]:
    document = copy.deepcopy(TEMPLATE)
    document["workflowId"] = workflow_id
    document["name"] = f"Bench {workflow_id} r{revision}"
    return document


class Mix:
    """The request mix, as a pure function of a seeded random generator."""

    def __init__(self, rng: random.Random, label: str) -> None:
        self.rng = rng
        self.label = label
        self.ids = [f"bench-{i}" for i in range(SEED_WORKFLOWS)]
        self.created = 0
        self.revisions = 0

    def next(self) -> tuple[str, str, dict[str, Any] | None]:
        roll = self.rng.random()
        if roll < 0.50:
            return "GET", f"/api/v1/workflows/{self.rng.choice(self.ids)}", None
        if roll < 0.80:
            return "GET", "/api/v1/workflows?limit=20", None
        if roll < 0.95:
            self.revisions += 1
            workflow_id = self.rng.choice(self.ids)
            return (
                "PUT",
                f"/api/v1/workflows/{workflow_id}",
                definition(workflow_id, self.revisions),
            )
        self.created += 1
        return "POST", "/api/v1/workflows", definition(f"new-{self.label}-{self.created}", 0)


@asynccontextmanager
async def session(base_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=200)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(base_url, connector=connector, headers=headers) as http:
        yield http


async def seed(http: aiohttp.ClientSession) -> None:
    for index in range(SEED_WORKFLOWS):
        body = orjson.dumps(definition(f"bench-{index}", 0))
        headers = {"Content-Type": "application/json"}
        async with http.post("/api/v1/workflows", data=body, headers=headers) as response:
            if response.status != 201:
                raise RuntimeError(f"seeding failed: {response.status} {await response.text()}")


async def one_request(
    http: aiohttp.ClientSession, request: tuple[str, str, dict[str, Any] | None], due: float
) -> tuple[float, int]:
    method, path, body = request
    data = orjson.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else None
    async with http.request(method, path, data=data, headers=headers) as response:
        await response.read()
        return (time.perf_counter() - due) * 1000, response.status


async def offer_load(
    http: aiohttp.ClientSession, rate: float, seconds: float, mix: Mix
) -> tuple[list[float], list[int], float]:
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one_request(http, mix.next(), due)))
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return [r[0] for r in results], [r[1] for r in results], elapsed


async def run(base_url: str, rate: float, seconds: float) -> dict[str, Any]:
    async with session(base_url) as http:
        await seed(http)
        await offer_load(http, rate, min(seconds, 3), Mix(random.Random(1), "warm"))  # warm-up
        latencies, statuses, elapsed = await offer_load(
            http, rate, seconds, Mix(random.Random(2), "run")
        )
    failures = sum(1 for status in statuses if status >= 400)
    return {
        "latencies": latencies,
        "achieved_rps": len(latencies) / elapsed,
        "failures": failures,
        "requests": len(latencies),
    }


@contextmanager
def database_for_bench(explicit: str | None) -> Iterator[tuple[str, str]]:
    server = explicit or os.environ.get("CAMPAIGNFLOW_TEST_DATABASE_URL")
    if server:
        with fresh_database(server) as url:
            yield url, "postgresql"
        return
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{Path(directory) / 'bench.db'}", "sqlite"


def main(argv: list[str] | None = None, report: Callable[[dict[str, Any]], None] = emit) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration")
    parser.add_argument("--rate", type=float, default=500.0, help="offered requests per second")
    parser.add_argument("--database-url", help="PostgreSQL server URL (a database is created)")
    args = parser.parse_args(argv)
    with database_for_bench(args.database_url) as (url, kind):
        subprocess.run(
            [sys.executable, "-m", "campaignflow", "migrate"],
            env={**os.environ, "CAMPAIGNFLOW_DATABASE_URL": url},
            check=True,
            capture_output=True,
        )
        env = {
            **os.environ,
            "CAMPAIGNFLOW_DATABASE_URL": url,
            "CAMPAIGNFLOW_API_TOKEN": TOKEN,
            "CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY": BENCH_MASTER_KEY,
            # One client offers the whole load: lift its per-credential limit.
            "CAMPAIGNFLOW_RATE_LIMIT__REQUESTS_PER_SECOND": "1000000",
            "CAMPAIGNFLOW_RATE_LIMIT__BURST": "1000000",
        }
        with start_server(["serve"], env) as base_url:
            result = asyncio.run(run(base_url, args.rate, args.seconds))
    latencies = result["latencies"]
    common = {
        "bench": "api",
        "database": kind,
        "offered_rps": args.rate,
        "seconds": args.seconds,
        "requests": result["requests"],
        "failures": result["failures"],
    }
    for name, q in (("api_p50_ms", 50), ("api_p95_ms", 95), ("api_p99_ms", 99)):
        report(
            {**common, "figure": name, "value": round(percentile(latencies, q), 2), "unit": "ms"}
        )
    report(
        {
            **common,
            "figure": "api_achieved_rps",
            "value": round(result["achieved_rps"], 1),
            "unit": "1/s",
        }
    )


if __name__ == "__main__":
    main()
