"""The CLI and the server as a user runs them: real subprocesses on free local ports."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis import Redis

from tests._support.servers import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-token-0123456789abcdefghij"
STARTUP_SECONDS = 30


# The key-encryption key production processes are given (base64 of 32 bytes); tests only.
TEST_MASTER_KEY = "dGVzdC1vbmx5LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE="


_OWNER_KEY = re.compile(r"cf_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}")


def owner_key_in(banner: str) -> str:
    """The API key `up` printed at its first start (run it with PYTHONUNBUFFERED=1 to read the
    banner while it serves)."""
    match = _OWNER_KEY.search(banner)
    assert match, f"no API key in the banner:\n{banner}"
    return match.group(0)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: none of ours from the caller, the test encryption
    key (which ``serve`` and ``worker`` require), then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNFLOW_")}
    env["CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY"] = TEST_MASTER_KEY
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "campaignflow", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`campaignflow worker` in the background, appending its output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "campaignflow", "worker"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        """Stop the server and return everything it printed."""
        self.process.terminate()
        self.process.wait(timeout=10)
        return self.log.read_text(encoding="utf-8", errors="replace")


def wait_until_healthy(url: str, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"server did not answer /healthz within {STARTUP_SECONDS}s")


@contextmanager
def start_server(args: list[str], env: dict[str, str], log: Path) -> Iterator[Server]:
    """Run the CLI as a server; its output goes to ``log`` (a pipe nobody drains would fill up
    and block the server)."""
    port = free_port()
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaignflow", *args, "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield Server(url, process, log)
    finally:
        stop_process(process)


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """`campaignflow serve` on a fresh, migrated database."""
    env = cli_env(CAMPAIGNFLOW_DATABASE_URL=database_url, CAMPAIGNFLOW_API_TOKEN=TOKEN)
    with start_server(["serve"], env, tmp_path / "server.log") as server:
        yield server


@pytest.fixture
def stream_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own for the event bus; its keys are deleted after."""
    prefix = f"cf-e2e-{secrets.token_hex(4)}"
    yield prefix
    client = Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def bus_env(database_url: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """``serve`` and ``worker`` on PostgreSQL and the Redis bus, with the bootstrap token."""
    return cli_env(
        CAMPAIGNFLOW_DATABASE_URL=database_url,
        CAMPAIGNFLOW_REDIS_URL=redis_url,
        CAMPAIGNFLOW_API_TOKEN=TOKEN,
        CAMPAIGNFLOW_EVENTS__STREAM_PREFIX=prefix,
        **extra,
    )
