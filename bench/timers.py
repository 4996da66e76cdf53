"""Timers: a million executions waiting on delays; memory and firing rate (DESIGN.md §9, `timers`).

--waiting executions (default 1,000,000) sit at a `delay` node of a delay → end workflow, each
with its timer task, loaded with COPY. Then --due of them are made due at --rate per second,
starting eight seconds ahead (marking them due takes seconds on a million rows), while --workers
`campaignflow worker` processes run. Figures: the firing rate (timers that fired / time from
the first due instant to the last firing), lateness (step finished_at minus the timer's due
time) and the workers' peak resident memory. The bar: at 5,000 due per second, fired within 1 s.

    python bench/timers.py [--waiting 1000000] [--due 60000] [--rate 6000] [--workers 2]

PostgreSQL: --database-url, else CAMPAIGNFLOW_TEST_DATABASE_URL, else a throwaway server from the
installed binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg

from _common import BENCH_MASTER_KEY, REPO, emit, fresh_database, percentile, postgres_server
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.migrate import upgrade
from campaignflow.store.workflows import WorkflowStore

WORKSPACE = "default"
LEAD_SECONDS = 8
WORKFLOW = {
    "workflowId": "bench-timers",
    "name": "Bench: delay then end",
    "triggers": [{"type": "api"}],
    "errorHandling": {},
    "nodes": [
        {"id": "wait", "type": "delay", "config": {"duration": "P1D"}, "next": "done"},
        {"id": "done", "type": "end"},
    ],
}


async def prepare(url: str) -> None:
    database = Database.from_url(url)
    try:
        await upgrade(database)
        store = WorkflowStore(database)
        await store.ensure_workspace(WORKSPACE, "Bench")
        service = WorkflowService(store)
        record = await service.create(WORKSPACE, WORKFLOW)
        await service.activate(WORKSPACE, record.id)
    finally:
        await database.dispose()


def load(dsn: str, waiting: int) -> None:
    """COPY ``waiting`` executions, each parked on its delay's timer (due in a year)."""
    now = datetime.now(UTC)
    far = now + timedelta(days=365)
    state = orjson.dumps({"live": 1, "seq": 0}).decode()
    payload = orjson.dumps({"since": now.isoformat(), "due": far.isoformat()}).decode()
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        ids = [new_id() for _ in range(waiting)]
        with cursor.copy(
            "COPY executions (workspace_id, id, workflow_id, workflow_version, subject_id, status,"
            " trigger, input, contact, state, revision, created_at, updated_at) FROM STDIN"
        ) as copy:
            for n, execution_id in enumerate(ids):
                copy.write_row(
                    (
                        WORKSPACE,
                        execution_id,
                        "bench-timers",
                        1,
                        f"c{n}",
                        "waiting",
                        "bench",
                        "{}",
                        "{}",
                        state,
                        0,
                        now,
                        now,
                    )
                )
        with cursor.copy(
            "COPY tasks (workspace_id, execution_id, node_id, token, kind, attempt, run_at,"
            " payload, created_at) FROM STDIN"
        ) as copy:
            for execution_id in ids:
                copy.write_row((WORKSPACE, execution_id, "wait", "", "timer", 1, far, payload, now))
        connection.commit()
        cursor.execute("ANALYZE executions")
        cursor.execute("ANALYZE tasks")
        connection.commit()


def make_due(dsn: str, due: int, rate: int, start: datetime) -> None:
    """Give ``due`` timers due times ``start + i / rate`` (the payload says when, for lateness)."""
    with psycopg.connect(dsn) as connection:
        connection.execute(
            """
            WITH chosen AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM tasks
                            ORDER BY id LIMIT %(due)s)
            UPDATE tasks SET
              run_at = %(start)s + chosen.i * (interval '1 second' / %(rate)s),
              payload = jsonb_build_object('since', tasks.created_at,
                'due', %(start)s + chosen.i * (interval '1 second' / %(rate)s))
            FROM chosen WHERE tasks.id = chosen.id
            """,
            {"due": due, "start": start, "rate": rate},
        )
        connection.commit()


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def fired(dsn: str) -> int:
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            "SELECT count(*) FROM executions WHERE status = 'completed'"
        ).fetchone()
        return int(row[0]) if row else 0


def lateness(dsn: str, start: datetime) -> tuple[list[float], float]:
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT extract(epoch FROM finished_at - (output->>'until')::timestamptz),"
            " finished_at FROM execution_steps WHERE node_id = 'wait'"
        ).fetchall()
    late = [float(row[0]) * 1000 for row in rows]
    last = max(row[1] for row in rows)
    return late, (last - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=60_000)
    parser.add_argument("--rate", type=int, default=6_000, help="timers falling due per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("CAMPAIGNFLOW_TEST_DATABASE_URL"))
    args = parser.parse_args()
    with postgres_server(args.database_url) as server, fresh_database(server) as url:
        asyncio.run(prepare(url))
        load(url, args.waiting)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNFLOW_")}
        env["CAMPAIGNFLOW_DATABASE_URL"] = url
        env["CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY"] = BENCH_MASTER_KEY
        env["CAMPAIGNFLOW_WORKER__BATCH_SIZE"] = "1000"
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "campaignflow", "worker"],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]
        peak = 0.0
        try:
            time.sleep(3)  # workers started, idle over a million waiting timers
            start = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
            make_due(url, args.due, args.rate, start)
            deadline = time.monotonic() + args.due / args.rate + 120
            while fired(url) < args.due and time.monotonic() < deadline:
                peak = max([peak, *(rss_mb(worker.pid) for worker in workers)])
                time.sleep(0.2)
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
        late, span = lateness(url, start)
    common = {
        "waiting": args.waiting,
        "due": args.due,
        "offered_rate": args.rate,
        "workers": args.workers,
    }
    emit(
        {
            "bench": "timers",
            "figure": "timers_fired_per_s",
            "value": round(len(late) / span),
            "unit": "1/s",
            **common,
        }
    )
    emit(
        {
            "bench": "timers",
            "figure": "worker_rss_mb",
            "value": round(peak, 1),
            "unit": "MB",
            **common,
        }
    )
    for q in (50, 99):
        emit(
            {
                "bench": "timers",
                "figure": f"timer_lateness_p{q}_ms",
                "value": round(percentile(late, q), 1),
                "unit": "ms",
                **common,
            }
        )


if __name__ == "__main__":
    main()
