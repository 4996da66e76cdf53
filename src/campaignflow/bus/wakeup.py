"""Wake-ups: tell idle workers that work is due now, instead of having them poll.

A worker that finds nothing to claim sleeps until the earliest task is due (it asks the queue)
or until it is woken. Embedded mode wakes it with an in-process signal; on PostgreSQL, writers
``NOTIFY`` and every worker ``LISTEN``\\s, so a worker in another process starts within a
round trip. A lost wake-up costs latency, never work: the sleep is bounded and the queue is the
truth.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

from campaignflow.store.database import Database
from campaignflow.store.engine_sql import TASKS_CHANNEL

CHANNEL = TASKS_CHANNEL


class Wakeup(Protocol):
    async def notify(self) -> None:
        """Work became due: wake the workers (all processes where supported)."""
        ...

    async def wait(self, seconds: float) -> None:
        """Return when woken, or after ``seconds``."""
        ...

    def poke(self) -> None:
        """Wake this process's waiters only (shutdown, tests)."""
        ...

    async def aclose(self) -> None: ...


class InProcessWakeup:
    """Embedded mode: the API and the worker share one process and one event."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def notify(self) -> None:
        self._event.set()

    def poke(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        self._event.clear()

    async def aclose(self) -> None:
        self._event.set()


class PostgresWakeup:
    """``LISTEN``/``NOTIFY`` on one dedicated connection per process (opened on first wait)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._event = asyncio.Event()
        self._listener: Any = None

    async def notify(self) -> None:
        # The store NOTIFYs inside the transaction that wrote the tasks (delivered at commit,
        # to every process); here only this process's waiters are woken.
        self._event.set()

    def poke(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        if self._listener is None:
            await self._listen()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        self._event.clear()

    async def _listen(self) -> None:
        url = make_url(str(self._database.url.render_as_string(hide_password=False)))
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            connection = await asyncpg.connect(dsn)
            await connection.add_listener(CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError):
            return  # no listener: the bounded sleep still finds the work
        self._listener = connection

    def _on_notify(self, *_args: object) -> None:
        self._event.set()

    async def aclose(self) -> None:
        self._event.set()
        if self._listener is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self._listener.close()
            self._listener = None


def wakeup_for(database: Database) -> Wakeup:
    return PostgresWakeup(database) if database.dialect == "postgresql" else InProcessWakeup()
