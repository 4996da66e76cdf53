"""The edge of every HTTP exchange: security headers and one request-size cap.

A pure ASGI middleware (like Starlette's own), not ``BaseHTTPMiddleware``: it never buffers a
body, so streaming requests and responses pass through untouched apart from their headers.

- Every response gets ``nosniff``, ``DENY`` framing, ``no-referrer``, a same-origin resource
  policy and a Content-Security-Policy that allows nothing (an API serves no active content).
  The Swagger UI page gets a policy of its own: FastAPI's page loads its script and stylesheet
  from cdn.jsdelivr.net and starts them with an inline script (generated from settings, never
  from a request), so only those are allowed there; offline, that page stays blank either way.
- ``/api/v1`` and ``/oauth`` responses are ``Cache-Control: no-store`` unless the route set a
  policy: they carry tenant data and tokens, which no shared cache may keep.
- ``Strict-Transport-Security`` only on responses to requests that came over TLS (RFC 6797
  §7.2: a host must not send it over plain HTTP).
- Bodies above the largest limit any route accepts are refused with 413: up front from
  ``Content-Length``, or while a chunked body streams in. Routes keep their own, lower limits.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from fastapi import FastAPI, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaignflow.api.problems import problem_response
from campaignflow.config import Settings

API_CSP: Final = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP: Final = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src https://cdn.jsdelivr.net 'unsafe-inline'; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "frame-ancestors 'none'"
)
HSTS: Final = "max-age=31536000"  # a year; subdomains are not ours to decide for
NO_STORE_PREFIXES: Final = ("/api/v1", "/oauth")
_FIXED_HEADERS: Final = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
)


class BodyTooLarge(HTTPException):
    """A body passed the cap while streaming in. An ``HTTPException`` because FastAPI re-raises
    those from its own body parsing (anything else there becomes a 400); the handler that
    :func:`install_edge` registers turns it into the same problem as ``api/body.py``'s 413."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        detail = f"The request body is larger than the limit of {limit} bytes."
        super().__init__(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, detail)

    def response(self, path: str) -> Response:
        status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        response = problem_response(status, "body-too-large", self.detail, instance=path)
        # The unread rest of the body is not drained: closing the connection is cheaper.
        response.headers["connection"] = "close"
        return response


class EdgeMiddleware:
    """Security headers and the global body cap; see the module doc."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        docs_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self, scope, send)
        if _declared_length(Headers(scope=scope)) > self.max_body_bytes:
            refusal = BodyTooLarge(self.max_body_bytes).response(scope["path"])
            await refusal(scope, receive, exchange.send)
            return
        try:
            await self.app(scope, exchange.counting(receive), exchange.send)
        except BodyTooLarge as exc:  # passed where no exception handler runs
            if exchange.started:
                raise
            await exc.response(scope["path"])(scope, receive, exchange.send)

    def headers_for(self, scope: Scope) -> list[tuple[str, str]]:
        """The headers this response gets unless the route already set them."""
        path: str = scope["path"]
        csp = DOCS_CSP if path in self.docs_paths else API_CSP
        extra = [*_FIXED_HEADERS, ("content-security-policy", csp)]
        if path.startswith(NO_STORE_PREFIXES):
            extra.append(("cache-control", "no-store"))
        if scope.get("scheme") == "https":
            extra.append(("strict-transport-security", HSTS))
        return extra


class _Exchange:
    """One request's view of the middleware: counts the body, decorates the response start."""

    def __init__(self, edge: EdgeMiddleware, scope: Scope, send: Send) -> None:
        self._edge = edge
        self._scope = scope
        self._send = send
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            headers = MutableHeaders(scope=message)
            for name, value in self._edge.headers_for(self._scope):
                headers.setdefault(name, value)
        await self._send(message)

    def counting(self, receive: Receive) -> Receive:
        limit = self._edge.max_body_bytes
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return counted


def _declared_length(headers: Headers) -> int:
    """The Content-Length, or 0 when absent or unreadable (the server refuses a malformed one;
    a chunked body is counted as it arrives)."""
    try:
        return int(headers.get("content-length", "0"))
    except ValueError:
        return 0


async def _body_too_large(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyTooLarge)
    return exc.response(request.url.path)


def install_edge(app: FastAPI, settings: Settings) -> None:
    """Add the edge middleware, outermost but for Starlette's error middleware, so even the
    problem documents of failed requests carry the headers."""
    docs = {path for path in (app.docs_url, app.swagger_ui_oauth2_redirect_url) if path}
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=max(settings.api.max_body_bytes, settings.events.max_batch_bytes),
        docs_paths=frozenset(docs),
    )
    app.add_exception_handler(BodyTooLarge, _body_too_large)
