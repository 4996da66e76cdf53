"""One structured log line per HTTP request, and the request id that ties a request's lines
together.

Replaces uvicorn's access log (a formatted string with the raw query string): this line has
fields (method, masked path and query, status, duration, client address, request id), and
every other line logged while the request runs carries the same ``request_id``.

The same middleware counts and times every request for Prometheus (one timing, not two
middlewares), labelled by the matched route's template — ``/api/v1/executions/{execution_id}``,
never the raw path, whose ids would make a series per resource — or ``unmatched``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from http import HTTPStatus

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bound_contextvars

from campaignflow.observability.metrics import http_request
from campaignflow.security.masking import mask_query, mask_text

REQUEST_ID_HEADER = "x-request-id"
# A caller's (or proxy's) id is kept when it is short and plain, so it can be quoted back and
# stored (the audit log's column is 64 characters); anything else gets a fresh id.
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})

logger = logging.getLogger("campaignflow.access")


def request_id_of(scope: Scope) -> str:
    """The request's id: its ``X-Request-ID`` if acceptable, else a new random one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _ACCEPTABLE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def masked_target(scope: Scope) -> str:
    """Path and query string as logged: emails, phone numbers and secrets masked."""
    path = mask_text(scope.get("root_path", "") + scope["path"])
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{mask_query(query)}" if query else path


class AccessLogMiddleware:
    """ASGI middleware: sets ``request.state.request_id``, answers it in ``X-Request-ID``,
    binds it to every log line of the request, counts it in the metrics, and logs it when it
    is done (unless ``log`` is off: the metrics are always taken)."""

    def __init__(self, app: ASGIApp, *, log: bool = True) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        # A middleware further out (the audit log's) may have named the request already.
        request_id: str = state.setdefault("request_id", request_id_of(scope))
        status = HTTPStatus.INTERNAL_SERVER_ERROR.value  # unless a response starts
        started = time.perf_counter()
        answered: float | None = None  # when an event stream started answering

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append(REQUEST_ID_HEADER, request_id)
                if headers.get("content-type", "").startswith("text/event-stream"):
                    answered = time.perf_counter()
            await send(message)

        try:
            with bound_contextvars(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            # A stream lasts as long as its client watches: its latency is the time to answer,
            # or every open SSE connection would count as a slow request (and page someone).
            latency = answered - started if answered is not None else seconds
            http_request(method_label(scope), route_template(scope), status, latency)
            if self.log:
                _log_request(scope, status, seconds, request_id)


def method_label(scope: Scope) -> str:
    """The request's method, or ``other`` for one HTTP does not define (a client may send
    any token: labels must stay bounded)."""
    method: str = scope["method"]
    return method if method in _METHODS else "other"


def route_template(scope: Scope) -> str:
    """The matched route's full path template, else ``unmatched``: a bounded label, free of ids
    and personal data. FastAPI puts the route in the scope; a route of a router included with a
    prefix carries its own template only (``/workflows/{workflow_id}``), so the literal prefix
    is taken back from the request's path: the part before where the route's pattern matches."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    pattern = getattr(route, "path_regex", None)
    if not isinstance(template, str):
        return "unmatched"
    if pattern is None:
        return template
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    start = 0
    while start != -1:
        if pattern.fullmatch(path[start:]):
            return path[:start] + template
        start = path.find("/", start + 1)
    return template


def _log_request(scope: Scope, status: int, seconds: float, request_id: str) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    # The address authentication resolved behind trusted proxies, else the direct peer.
    resolved = scope.get("state", {}).get("client_ip")
    address = str(resolved) if resolved is not None else (client[0] if client else None)
    logger.info(
        "request",
        extra={
            "method": scope["method"],
            "path": masked_target(scope),
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client_ip": address,
            "request_id": request_id,
        },
    )
