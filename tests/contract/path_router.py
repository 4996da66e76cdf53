"""A path-routing proxy in front of Prism mocks, so requests keep their production paths.

Prism ignores a spec's server base path (NOTES.md §3 quirk 1): Pipedrive's v2 spec is served at
``/persons``, not ``/api/v2/persons``. Pointing a connection at one Prism would therefore test
paths Pipedrive never serves, and a builder that dropped or doubled the version prefix would
pass. The router takes the production path: a request under a known prefix goes to that spec's
Prism with the prefix stripped, anything else is a 404, so a wrong prefix fails the test.

Everything else passes through unchanged in both directions: method, the raw (still encoded)
path and query, headers and body bytes; status, headers (``sl-violations`` among them) and body.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web
from yarl import URL

# Pipedrive serves API v2 under /api/v2 and v1 under /v1 on one host.
PIPEDRIVE_SPECS: Mapping[str, str] = {
    "pipedrive_v1": "pipedrive/openapi-v1.yaml",
    "pipedrive_v2": "pipedrive/openapi-v2.yaml",
}
PIPEDRIVE_PREFIXES: Mapping[str, str] = {"/api/v2": "pipedrive_v2", "/v1": "pipedrive_v1"}

# Hop-by-hop headers (RFC 9110 §7.6.1) and those aiohttp recomputes for the bytes it sends.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


def routes_for(prefixes: Mapping[str, str], servers: Mapping[str, str]) -> dict[str, str]:
    """Prefix → upstream base URL, from prefix → server name and server name → base URL."""
    return {prefix: servers[name].rstrip("/") for prefix, name in prefixes.items()}


def route(raw_path: str, routes: Mapping[str, str]) -> str | None:
    """The upstream URL for ``raw_path`` (path and query, still percent-encoded), or None.

    A prefix matches whole segments only (``/api/v2x/…`` is not under ``/api/v2``); the longest
    matching prefix wins.
    """
    path, _, query = raw_path.partition("?")
    for prefix in sorted(routes, key=len, reverse=True):
        if path.startswith(prefix + "/"):
            rest = path[len(prefix) :]
            return routes[prefix] + rest + (f"?{query}" if query else "")
    return None


def _forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in _NOT_FORWARDED}


def router_app(routes: Mapping[str, str], session: aiohttp.ClientSession) -> web.Application:
    async def forward(request: web.Request) -> web.Response:
        upstream = route(request.raw_path, routes)
        if upstream is None:
            message = f"no route for {request.path}; known prefixes: {', '.join(sorted(routes))}"
            return web.json_response({"error": message}, status=404)
        async with session.request(
            request.method,
            URL(upstream, encoded=True),
            headers=_forwarded(request.headers),
            data=await request.read() if request.can_read_body else None,
            allow_redirects=False,
            skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
        ) as answer:
            body = await answer.read()
            return web.Response(status=answer.status, headers=_forwarded(answer.headers), body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


@contextlib.asynccontextmanager
async def running_router(routes: Mapping[str, str]) -> AsyncIterator[str]:
    """Serve the router on a free local port for the ``with`` block; yields its base URL."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        runner = web.AppRunner(router_app(routes, session), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()
