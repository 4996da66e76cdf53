"""Stoplight Prism as a validating mock of the providers' own API specs.

One ``prism mock <spec> --errors`` process per spec file, all started at once (each takes
2 to 8 s to load its spec) and stopped by pid. Prism's verdict on a request is its status and its
violations: the ``sl-violations`` header when the spec defines the error response, else the
``validation`` list of Prism's own ``application/problem+json`` 422 (NOTES.md mentions only the
header; both happen, so both are read).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from campaignflow.integrations.prepare import PreparedRequest
from tests._support.servers import free_port

ROOT = Path(__file__).parents[2]
PRISM = ROOT / "node_modules" / ".bin" / "prism"
# The providers' specs, gzipped in the repository (see specs/README.md for their origin).
SPECS = Path(__file__).parent / "specs"
INSTALL_HINT = (
    "Stoplight Prism is not installed ({path} is missing). Install it from package-lock.json "
    "with `npm ci --no-audit --no-fund` in the repository root (or `make install`)."
)
# Five Prisms loading at once on a busy 2-core machine (a CI run) took over 40 s.
START_TIMEOUT_S = 180.0


class PrismUnavailable(Exception):
    """A Prism server did not start; the message says why and where its log is."""


@dataclass
class PrismServer:
    spec: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
            return True
        return False


def unpacked(relative: str, directory: Path) -> Path:
    """The spec ``relative`` (e.g. ``sendgrid/tsg_mail_v3.json``) written into ``directory``,
    checked against its recorded sha256."""
    expected = dict(
        reversed(line.split(maxsplit=1))  # type: ignore[misc]
        for line in (SPECS / "SHA256SUMS").read_text().splitlines()
        if line.strip()
    )
    content = gzip.decompress((SPECS / f"{relative}.gz").read_bytes())
    if hashlib.sha256(content).hexdigest() != expected.get(relative):
        raise PrismUnavailable(f"{relative}: its sha256 does not match specs/SHA256SUMS")
    target = directory / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return target


@contextlib.contextmanager
def prism_servers(specs: Mapping[str, str], work_dir: Path) -> Iterator[dict[str, str]]:
    """Name → base URL of a Prism mock for each spec (a path under ``specs/``, unpacked into
    ``work_dir``, where the logs go too), until the block ends."""
    if not PRISM.exists():
        raise PrismUnavailable(INSTALL_HINT.format(path=PRISM))
    servers: dict[str, PrismServer] = {}
    try:
        for name, relative in specs.items():
            spec = unpacked(relative, work_dir / "specs")
            servers[name] = _start(spec, work_dir / f"prism-{name}.log")
        _wait(servers.values())
        yield {name: server.url for name, server in servers.items()}
    finally:
        for server in servers.values():
            _stop(server)


def _start(spec: Path, log: Path) -> PrismServer:
    port = free_port()
    command = [str(PRISM), "mock", str(spec), "-p", str(port), "-h", "127.0.0.1", "--errors"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    return PrismServer(spec, port, log, process)


def _wait(servers: Any) -> None:
    pending = list(servers)
    deadline = time.monotonic() + START_TIMEOUT_S
    while pending:
        for server in list(pending):
            if server.process.poll() is not None:
                raise PrismUnavailable(f"prism exited for {server.spec.name}: {_tail(server.log)}")
            if server.answers():
                pending.remove(server)
        if pending and time.monotonic() > deadline:
            names = ", ".join(server.spec.name for server in pending)
            raise PrismUnavailable(f"prism did not answer within {START_TIMEOUT_S:g} s: {names}")
        time.sleep(0.1)


def _stop(server: PrismServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


# ---------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """Prism's answer to one request."""

    status: int
    violations: list[dict[str, Any]]
    body: Any

    @property
    def accepted(self) -> bool:
        """2xx and nothing reported: the request satisfies the provider's spec."""
        return 200 <= self.status < 300 and not self.violations

    def messages(self) -> list[str]:
        return [str(violation.get("message")) for violation in self.violations]


async def send(session: aiohttp.ClientSession, prepared: PreparedRequest) -> Verdict:
    """Send exactly what the executor would send; collect Prism's verdict."""
    async with session.request(
        prepared.method,
        prepared.url,
        headers=prepared.headers,
        data=prepared.body,
        skip_auto_headers=("Content-Type",),
    ) as response:
        raw = await response.read()
        body = _parsed(raw)
        violations = json.loads(response.headers.get("sl-violations", "[]"))
        if response.content_type == "application/problem+json" and isinstance(body, dict):
            violations += body.get("validation", [])
        return Verdict(response.status, violations, body)


def _parsed(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")
