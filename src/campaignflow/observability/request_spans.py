"""A server span per HTTP request, when tracing is on (:mod:`observability.tracing`).

Named ``METHOD /route/{template}`` once routing has matched (the raw path may carry ids and
addresses: it is never an attribute), continuing the caller's ``traceparent`` when one is sent.
The span is current while the request runs, so ingestion and ``execute`` can stamp what they
hand on with it. With tracing off the middleware passes requests straight through.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaignflow.observability import tracing
from campaignflow.observability.access_log import route_template


class RequestSpanMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in (b"traceparent", b"tracestate")
        }
        method = scope.get("method", "WEBSOCKET")
        with tracing.tracer().start_as_current_span(
            method,
            context=tracing.context_from_headers(headers),
            kind=tracing.SERVER,
            attributes={"http.request.method": method, "url.scheme": scope.get("scheme", "")},
        ) as span:

            async def send_observed(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(tracing.error_status(f"HTTP {status}"))
                await send(message)

            try:
                await self.app(scope, receive, send_observed)
            finally:
                route = route_template(scope)
                if route != "unmatched":
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")
