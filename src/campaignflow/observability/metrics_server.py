"""The metrics server of ``campaignflow worker``, a role with no HTTP API of its own.

A few lines of aiohttp (already the HTTP client's library) serving the same registry as the
API's ``/metrics`` on ``metrics.worker_port``, to the scrape token only (``Authorization: Bearer
<token>``, compared in constant time). Without a token there is no server: every endpoint is
authenticated, and a worker has no principals of its own to check. A port that is taken (a second
worker on the host with the same port) costs that worker its metrics, logged as an error, never
the worker itself.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from pydantic import SecretStr

from campaignflow.config import MetricsSettings
from campaignflow.observability.metrics import REGISTRY

logger = logging.getLogger(__name__)


def scrape_token_matches(token: SecretStr | None, presented: str | None) -> bool:
    """Whether ``presented`` is the configured scrape token (constant-time comparison): the
    check of the worker's server and of the API's ``/metrics``."""
    if token is None or presented is None:
        return False
    return hmac.compare_digest(presented.encode(), token.get_secret_value().encode())


def _authorized(request: web.Request, token: SecretStr) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return scrape_token_matches(token, presented.strip())


def metrics_app(token: SecretStr) -> web.Application:
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
    """Serve ``/metrics`` as configured; ``None`` when switched off (``worker_port`` 0), when
    no scrape token is set, or when the port is taken."""
    if settings.worker_port == 0:
        return None
    if settings.token is None:
        logger.info(
            "the worker serves no metrics: set CAMPAIGNFLOW_METRICS__TOKEN to scrape them on "
            "CAMPAIGNFLOW_METRICS__WORKER_PORT",
            extra={"port": settings.worker_port},
        )
        return None
    runner = web.AppRunner(metrics_app(settings.token), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.worker_host, settings.worker_port).start()
    except OSError as exc:
        await runner.cleanup()
        logger.error(
            "the worker's metrics port is unavailable; this worker runs without a metrics "
            "server (give each worker on a host its own CAMPAIGNFLOW_METRICS__WORKER_PORT): %s",
            exc,
            extra={"port": settings.worker_port},
        )
        return None
    return runner


async def stop_metrics_server(runner: web.AppRunner | None) -> None:
    if runner is not None:
        await runner.cleanup()
