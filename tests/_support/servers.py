"""Throwaway PostgreSQL and Redis servers, started from installed binaries for one test session.

PostgreSQL refuses to run as root; when the tests run as root, the server runs as the
``postgres`` OS user in a temporary directory that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POSTGRES_INSTALL_HINT = (
    "Install PostgreSQL (`sudo apt-get install postgresql` on Debian/Ubuntu, "
    "`brew install postgresql@16` on macOS) or set CAMPAIGNFLOW_TEST_DATABASE_URL to a server "
    "where the tests may CREATE DATABASE, e.g. postgresql://postgres@127.0.0.1:5432/postgres."
)
REDIS_INSTALL_HINT = (
    "Install Redis (`sudo apt-get install redis-server` on Debian/Ubuntu, `brew install redis` "
    "on macOS) or set CAMPAIGNFLOW_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379/15."
)

# Durability is worthless for a server that lives as long as a test session.
# No autovacuum: its workers would connect to the template database that tests clone.
_FAST_UNSAFE = (
    "-F", "-c", "full_page_writes=off", "-c", "synchronous_commit=off", "-c", "autovacuum=off",
)  # fmt: skip
_BINDIR_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)


class ServerUnavailable(Exception):
    """A throwaway server cannot be started; the message says what to install or set."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _fast_tempdir() -> str | None:
    """A RAM-backed directory if there is one (Linux): creating a database copies files, which
    is several times faster on tmpfs than on a disk or an overlay file system."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then the usual places."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    candidates = sorted(
        (Path(path) for pattern in _BINDIR_GLOBS for path in glob.glob(pattern)),
        key=lambda path: _version_key(path.parent.name),
    )
    usable = [path for path in candidates if (path / "pg_ctl").exists()]
    return usable[-1] if usable else None


def _version_key(name: str) -> tuple[int, ...]:
    digits = "".join(ch if ch.isdigit() else " " for ch in name).split()
    return tuple(int(part) for part in digits)


@dataclass
class _RunAs:
    """Who runs the server: ourselves, or the ``postgres`` user when we are root."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def for_postgres(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls()
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable(
                "Running as root, and PostgreSQL refuses to run as root: create a `postgres` "
                "user (`useradd --system postgres`) or run the tests as another user. "
                + POSTGRES_INSTALL_HINT
            ) from None
        return cls(user.pw_uid, user.pw_gid)

    def popen_kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only."""

    bindir: Path
    run_as: _RunAs
    root: Path = field(init=False)
    port: int = 0

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="campaignflow-pg-", dir=_fast_tempdir()))
        self.root.chmod(0o700)
        self.run_as.own(self.root)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run(
            "initdb",
            "-D",
            "data",
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        for _attempt in range(3):
            self.port = free_port()
            with contextlib.suppress(ServerUnavailable):
                self._pg_ctl_start()
                return
        raise ServerUnavailable(f"PostgreSQL did not start: {self._log_tail()}")

    def stop(self) -> None:
        with contextlib.suppress(ServerUnavailable):
            self._run("pg_ctl", "-D", "data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl_start(self) -> None:
        options = ["-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.root), *_FAST_UNSAFE]
        self._run(
            "pg_ctl", "-D", "data", "-l", "server.log", "-w", "-t", "30", "-o",
            " ".join(options), "start",
        )  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bindir / program), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            **self.run_as.popen_kwargs(),
        )
        if result.returncode != 0:
            raise ServerUnavailable(f"{program} {' '.join(args)} failed: {result.stderr.strip()}")

    def _log_tail(self) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no server log)"


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Yield the URL of a fresh PostgreSQL server; stop and delete it afterwards."""
    bindir = postgres_bindir()
    if bindir is None:
        raise ServerUnavailable(
            f"PostgreSQL binaries (initdb, pg_ctl) not found. {POSTGRES_INSTALL_HINT}"
        )
    server = PostgresServer(bindir, _RunAs.for_postgres())
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def throwaway_redis(directory: Path) -> Iterator[str]:
    """Yield the URL of a fresh, non-persistent Redis server; stop it afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable(f"redis-server not found. {REDIS_INSTALL_HINT}")
    port = free_port()
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(directory), "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_redis(port, process, directory / "redis.log")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(process)
        if process.stderr is not None:
            process.stderr.close()


def stop_process(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_redis(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.02)
    detail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise ServerUnavailable(f"redis-server did not start on port {port}: {detail}")
