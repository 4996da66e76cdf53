"""An app running in process for a test: :func:`serving` (the app's lifespan around an httpx
client on its ASGI interface, sending the given headers), or :func:`uvicorn_serving` (a real
uvicorn server on a free port, for clients that need a socket: streams, websockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tests._support.servers import free_port


@asynccontextmanager
async def serving(
    app: FastAPI, headers: Mapping[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=dict(headers or {})
        ) as http:
            yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def uvicorn_serving(app: Any) -> AsyncIterator[str]:
    """``app`` served by uvicorn (lifespan included) in this event loop; yields its base URL.
    Configured as ``serve`` configures it: uvicorn leaves the process's logging alone (its own
    logging config would change loggers' levels for every later test of this process)."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_config=None,
        log_level=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
