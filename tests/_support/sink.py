"""A local HTTP sink that injects faults and applies each Idempotency-Key once, like a careful
provider would.

In-process (async tests)::

    async with running_sink() as sink:
        ...  # send requests to f"{sink.url}/ok"; inspect sink.requests, sink.effects

As a process (crash tests, benchmarks)::

    python -m tests._support.sink --port 0 [--host 127.0.0.1] [--stats-file stats.json]

The process prints its base URL (``http://127.0.0.1:PORT``) as its first line of standard output,
serves until SIGTERM or SIGINT, records no request bodies (only counters) and, with
``--stats-file``, rewrites that file (atomically) with the ``/_stats`` document at most every
0.2 s while it changes, and once more on shutdown.

Routes (any method): ``/ok`` → 200 ``{"ok": true, "key": KEY}``; ``/status/{code}`` → that
status with ``{"status": code}``; query ``retry_after``, ``set_cookie`` and ``location`` set the
Retry-After, Set-Cookie and Location headers, ``body`` (and ``content_type``, default text/plain)
replace the body; ``/flaky/{n}`` → 503 for the first n requests of each key, then 200;
``/slow/{ms}`` → 200 after sleeping; ``/reset`` → the connection is dropped without a response;
``/echo`` → 200 ``{"method", "path", "query", "headers", "json"}`` of the request (header names
lower-cased, repeated headers joined with ", "). ``GET /_stats`` → ``{"requests", "applied",
"duplicates", "keys": {KEY: applied count}}`` (``/_stats`` itself is not counted).

Idempotency: the first request of a key that gets a 2xx answer is *applied* (counted in
``effects``/``keys`` and ``applied``) and its response stored; later requests with that key get the
stored response (header ``Idempotent-Replayed: true``) and count as duplicates. Failures are not
stored, so a retry runs the route again. Requests of one key are served one at a time (a retry that
arrives while the first attempt still runs waits for it). Requests without a key are applied each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import orjson
from aiohttp import web

KEY_HEADER = "Idempotency-Key"
STATS_INTERVAL_S = 0.2
_HEADER_PARAMS = {"retry_after": "Retry-After", "set_cookie": "Set-Cookie", "location": "Location"}


class RecordedRequest(TypedDict):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    json: Any  # the parsed JSON body, None when absent or not JSON
    peer_port: int | None  # the client's port: one value per connection


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, orjson.dumps(payload), headers=headers or {})

    def response(self, *, replayed: bool = False) -> web.Response:
        headers = {**self.headers, **({"Idempotent-Replayed": "true"} if replayed else {})}
        if self.body is None:
            return web.Response(status=self.status, headers=headers)
        return web.Response(
            status=self.status, body=self.body, content_type=self.content_type, headers=headers
        )


class DropConnection(Exception):
    """Raised by a route to close the connection without answering."""


Route = Callable[[web.Request, RecordedRequest, "str | None"], Awaitable[Reply]]


@dataclass(eq=False)
class Sink:
    """The sink's state; the routes are its ``_route_*`` methods."""

    record: bool = True
    url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    effects: dict[str, int] = field(default_factory=dict)
    total: int = 0
    applied: int = 0
    duplicates: int = 0
    _stored: dict[str, Reply] = field(default_factory=dict)
    _in_flight: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    _flaky: dict[str, int] = field(default_factory=dict)
    #: ``/switch`` answers 503 while this is true: a provider that is down until a test says.
    down: bool = False

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.total,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "keys": dict(self.effects),
        }

    def app(self) -> web.Application:
        app = web.Application()
        routes: dict[str, Route] = {
            "/ok": self._route_ok,
            "/status/{code}": self._route_status,
            "/flaky/{n}": self._route_flaky,
            "/slow/{ms}": self._route_slow,
            "/reset": self._route_reset,
            "/echo": self._route_echo,
            "/switch": self._route_switch,
        }
        app.router.add_get("/_stats", self._serve_stats)
        for path, route in routes.items():
            app.router.add_route("*", path, functools.partial(self._serve, route))
        return app

    async def _serve_stats(self, request: web.Request) -> web.Response:
        return Reply.json(200, self.stats()).response()

    async def _serve(self, route: Route, request: web.Request) -> web.StreamResponse:
        self.total += 1
        recorded = await _record(request)
        if self.record:
            self.requests.append(recorded)
        key = request.headers.get(KEY_HEADER)
        try:
            reply, replayed = await self._once_per_key(route, request, recorded, key)
        except DropConnection:
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError from None
        return reply.response(replayed=replayed)

    async def _once_per_key(
        self, route: Route, request: web.Request, recorded: RecordedRequest, key: str | None
    ) -> tuple[Reply, bool]:
        if key is None:
            reply = await route(request, recorded, key)
            self.applied += 200 <= reply.status < 300
            return reply, False
        while (running := self._in_flight.get(key)) is not None:
            await asyncio.shield(running)
        if (stored := self._stored.get(key)) is not None:
            self.duplicates += 1
            return stored, True
        done = self._in_flight[key] = asyncio.get_running_loop().create_future()
        try:
            reply = await route(request, recorded, key)
        finally:
            del self._in_flight[key]
            done.set_result(None)
        if 200 <= reply.status < 300:
            self._stored[key] = reply
            self.effects[key] = self.effects.get(key, 0) + 1
            self.applied += 1
        return reply, False

    async def _route_ok(
        self, request: web.Request, recorded: RecordedRequest, key: str | None
    ) -> Reply:
        return Reply.json(200, {"ok": True, "key": key})

    async def _route_status(
        self, request: web.Request, recorded: RecordedRequest, key: str | None
    ) -> Reply:
        code = int(request.match_info["code"])
        if not 200 <= code <= 599:
            return Reply.json(400, {"error": "status must be 200-599"})
        query = request.query
        headers = {name: query[param] for param, name in _HEADER_PARAMS.items() if param in query}
        if code in (204, 304):
            return Reply(code, headers=headers)
        if "body" in query:
            content_type = query.get("content_type", "text/plain")
            return Reply(code, query["body"].encode(), content_type, headers)
        return Reply.json(code, {"status": code}, headers)

    async def _route_switch(
        self, request: web.Request, recorded: RecordedRequest, key: str | None
    ) -> Reply:
        if self.down:
            return Reply.json(503, {"error": "down"})
        return Reply.json(200, {"ok": True})

    async def _route_flaky(
        self, request: web.Request, recorded: RecordedRequest, key: str | None
    ) -> Reply:
        failures = int(request.match_info["n"])
        attempt = self._flaky[key or ""] = self._flaky.get(key or "", 0) + 1
        if attempt <= failures:
            return Reply.json(503, {"error": "flaky", "attempt": attempt})
        return Reply.json(200, {"ok": True, "attempt": attempt})

    async def _route_slow(
        self, request: web.Request, recorded: RecordedRequest, key: str | None
    ) -> Reply:
        ms = int(request.match_info["ms"])
        await asyncio.sleep(ms / 1000)
        return Reply.json(200, {"ok": True, "slept_ms": ms})

    async def _route_reset(
        self, request: web.Request, recorded: RecordedRequest, key: str | None
    ) -> Reply:
        raise DropConnection

    async def _route_echo(
        self, request: web.Request, recorded: RecordedRequest, key: str | None
    ) -> Reply:
        echoed = {name: recorded[name] for name in ("method", "path", "query", "headers", "json")}
        return Reply.json(200, echoed)


async def _record(request: web.Request) -> RecordedRequest:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        lowered = name.lower()
        headers[lowered] = f"{headers[lowered]}, {value}" if lowered in headers else value
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=headers,
        json=body,
        peer_port=peer[1] if peer else None,
    )


@contextlib.asynccontextmanager
async def running_sink(
    port: int = 0, *, host: str = "127.0.0.1", record: bool = True
) -> AsyncIterator[Sink]:
    """Serve a fresh :class:`Sink` on ``host:port`` (0: a free port) for the ``with`` block."""
    sink = Sink(record=record)
    runner = web.AppRunner(sink.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        sink.url = f"http://{host}:{bound_port}"
        yield sink
    finally:
        await runner.cleanup()


async def _write_stats(sink: Sink, path: Path) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(sink.stats()))
    os.replace(temporary, path)


async def _keep_stats_written(sink: Sink, path: Path) -> None:
    written = -1
    while True:
        if sink.total != written:
            written = sink.total
            await _write_stats(sink, path)
        await asyncio.sleep(STATS_INTERVAL_S)


async def serve(host: str, port: int, stats_file: Path | None) -> None:
    """Run the sink until SIGTERM or SIGINT; print its URL first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_sink(port, host=host, record=False) as sink:
        print(sink.url, flush=True)
        writer = asyncio.create_task(_keep_stats_written(sink, stats_file)) if stats_file else None
        await stop.wait()
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
    if stats_file is not None:
        await _write_stats(sink, stats_file)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests._support.sink",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--stats-file", type=Path, help="keep the /_stats document here")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.host, args.port, args.stats_file))


if __name__ == "__main__":
    main()
