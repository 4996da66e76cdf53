"""Shared by the benchmarks: the output line, percentiles, a fresh database, a server process."""

from __future__ import annotations

import math
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.error import URLError

import orjson
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
# The key-encryption key the benchmarked processes run with (base64 of 32 bytes); bench only.
BENCH_MASTER_KEY = "YmVuY2gtb25seS1rZXktMDEyMzQ1Njc4OWFiY2RlZjA="
sys.path.insert(0, str(REPO))  # the benchmarks share the tests' load and servers

from tests._support.load import four_node_workflow  # noqa: E402
from tests._support.servers import throwaway_postgres, throwaway_redis  # noqa: E402

__all__ = [
    "REPO",
    "emit",
    "four_node_workflow",
    "fresh_database",
    "percentile",
    "postgres_server",
    "throwaway_redis",
]


def emit(line: dict[str, Any]) -> None:
    """One JSON object per figure, on its own line (DESIGN.md §9)."""
    sys.stdout.write(orjson.dumps(line).decode() + "\n")
    sys.stdout.flush()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; ``nan`` for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _admin_dsn(server_url: str, database: str) -> str:
    url = make_url(server_url).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on ``server_url``'s server, dropped afterwards."""
    name = f"cf_bench_{secrets.token_hex(4)}"
    admin = _admin_dsn(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _admin_dsn(server_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(drop.format(sql.Identifier(name)))


@contextmanager
def postgres_server(configured: str | None) -> Iterator[str]:
    """``configured`` (a server where databases may be created), else a throwaway server
    started from the installed binaries, as the test suite does (it runs with fsync off, so
    its figures flatter durable commits; the bench line says which was used)."""
    if configured:
        yield configured
        return
    with throwaway_postgres() as url:
        yield url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError("server did not become healthy within 30 s")


@contextmanager
def start_server(args: list[str], env: dict[str, str]) -> Iterator[str]:
    """Run ``campaignflow ARGS --port P`` with access logs off; yield its base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "campaignflow", *args, "--port", str(port)],
                cwd=REPO,
                env={**env, "CAMPAIGNFLOW_ACCESS_LOG": "false"},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=15)
