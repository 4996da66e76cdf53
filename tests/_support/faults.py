"""A local HTTP server that misbehaves on cue, for tests of retries, breakers and dead letters.

Each path has a script: the behaviours its next requests get, in order, then a default::

    async with fault_server() as server:
        server.script("/v3/mail/send", Respond(500), Respond(500), Respond(202))
        server.script("/slow", Slow(2.0), then=Respond(200))
        ...
        [request.json for request in server.received("/v3/mail/send")]

Behaviours: :class:`Respond` (any status, JSON body, headers; :func:`retry_after` builds a 429
with ``Retry-After``), :class:`Slow` (answers after a delay longer than the client's timeout),
:class:`Reset` (reads the request, then resets the TCP connection without a response: the
client sees a connection error, not a status). Every request is recorded, whatever it got —
method, path, query, lower-cased headers, raw and parsed body, the behaviour applied, and the
time on the test's clock — so tests can check what each attempt carried (the same idempotency
key on every retry) and when it came (backoff on a virtual clock).

Unlike ``sink.py`` (a fast, well-behaved provider that applies each idempotency key once), this
server does exactly what it is told, request by request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer with ``status``, ``json`` as the body (none when None) and ``headers``."""

    status: int = 200
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        if self.json is None:
            return web.Response(status=self.status, headers=dict(self.headers))
        return web.Response(
            status=self.status,
            body=orjson.dumps(self.json),
            content_type="application/json",
            headers=dict(self.headers),
        )


@dataclass(frozen=True, slots=True)
class Slow:
    """Answer ``then`` after ``seconds`` (the server stops waiting when it shuts down)."""

    seconds: float
    then: Respond = field(default_factory=lambda: Respond(200))


@dataclass(frozen=True, slots=True)
class Reset:
    """Read the request, then reset the connection (RST) without answering."""


Behaviour = Respond | Slow | Reset


def retry_after(seconds: int, status: int = 429) -> Respond:
    return Respond(status, {"error": "slow down"}, {"Retry-After": str(seconds)})


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    json: Any  # the body parsed as JSON, None when empty or not JSON
    behaviour: Behaviour
    at: datetime | None  # the test's clock when the request arrived, if one was given


class FaultServer:
    """The server's state; serve it with :func:`fault_server`."""

    def __init__(
        self,
        default: Behaviour = Respond(200, {"ok": True}),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.url = ""
        self.default = default
        self._clock = clock
        self._scripts: dict[str, deque[Behaviour]] = {}
        self._defaults: dict[str, Behaviour] = {}
        self._received: list[Received] = []
        self._closing = asyncio.Event()

    def script(self, path: str, *behaviours: Behaviour, then: Behaviour | None = None) -> None:
        """``path``'s next requests get ``behaviours`` in order, the later ones ``then`` (by
        default, what they got before: the server's default unless scripted)."""
        self._scripts[path] = deque(behaviours)
        if then is not None:
            self._defaults[path] = then

    def received(self, path: str | None = None) -> list[Received]:
        """Requests in the order they arrived (to ``path`` only, if given)."""
        return [r for r in self._received if path is None or r.path == path]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def close(self) -> None:
        self._closing.set()

    def _next(self, path: str) -> Behaviour:
        queued = self._scripts.get(path)
        if queued:
            return queued.popleft()
        return self._defaults.get(path, self.default)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        behaviour = self._next(request.path)
        self._received.append(self._record(request, body, behaviour))
        if isinstance(behaviour, Reset):
            _reset(request)
            raise asyncio.CancelledError  # aiohttp's way to end a handler that will not answer
        if isinstance(behaviour, Slow):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), behaviour.seconds)
            return behaviour.then.response()
        return behaviour.response()

    def _record(self, request: web.Request, body: bytes, behaviour: Behaviour) -> Received:
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        return Received(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
            json=parsed,
            behaviour=behaviour,
            at=self._clock() if self._clock is not None else None,
        )


def _reset(request: web.Request) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of a FIN."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@contextlib.asynccontextmanager
async def fault_server(
    default: Behaviour = Respond(200, {"ok": True}),
    *,
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[FaultServer]:
    """Serve a fresh :class:`FaultServer` on 127.0.0.1 (a free port) for the ``with`` block."""
    server = FaultServer(default, clock)
    runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield server
    finally:
        server.close()
        await runner.cleanup()
