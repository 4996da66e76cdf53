"""The metrics server of ``campaignflow worker``, a role with no HTTP API of its own.

A few lines of aiohttp (already the HTTP client's library) serving the same registry as the
API's ``/metrics`` on ``metrics.worker_port``. With a scrape token configured it asks for it
(``Authorization: Bearer <token>``, compared in constant time) and binds every interface (or
``metrics.worker_host``); without one it serves without credentials, so it binds 127.0.0.1 only
and says so in the log: an unauthenticated endpoint never leaves the machine.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from campaignflow.config import MetricsSettings
from campaignflow.observability.metrics import REGISTRY

logger = logging.getLogger(__name__)

LOCAL_ONLY = "127.0.0.1"


def _authorized(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def metrics_app(token: str | None) -> web.Application:
    async def serve(request: web.Request) -> web.Response:
        if not _authorized(request, token):
            return web.json_response(
                {"type": "about:blank", "title": "Unauthenticated", "status": 401},
                status=401,
                content_type="application/problem+json",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app


async def start_metrics_server(settings: MetricsSettings) -> web.AppRunner | None:
    """Serve ``/metrics`` as configured; ``None`` when ``worker_port`` is 0 (switched off)."""
    if settings.worker_port == 0:
        return None
    token = settings.token.get_secret_value() if settings.token is not None else None
    host = settings.worker_host if token is not None else LOCAL_ONLY
    if token is None:
        logger.warning(
            "no metrics token (CAMPAIGNFLOW_METRICS__TOKEN): the worker's /metrics is served "
            "without credentials on 127.0.0.1 only",
            extra={"port": settings.worker_port},
        )
    runner = web.AppRunner(metrics_app(token), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, settings.worker_port).start()
    return runner


async def stop_metrics_server(runner: web.AppRunner | None) -> None:
    if runner is not None:
        await runner.cleanup()
