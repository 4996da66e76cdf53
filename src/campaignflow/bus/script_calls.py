"""Lua script calls to Redis, sent together: the calls made while one round trip is in flight
wait for it and go out as the next pipeline.

A worker has hundreds of steps in flight and each asks Redis several small questions (its
account's rate limit, its breaker). Sent one by one, each call needs a connection of its own
for a round trip, the connection pool runs dry, and the process spends its time in socket
writes and pool waits. Batched, a few hundred calls cost one write and one read; each script
still runs atomically on the server, in the order the calls were made.

Scripts are sent by SHA (``EVALSHA``); the calls the server answered with ``NOSCRIPT`` (a
restart, ``SCRIPT FLUSH``) are sent again with their source (``EVAL``), which also loads them.
Redis errors reach every caller of the batch they were in, as redis-py exceptions: the caller
decides what an outage means.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

MAX_BATCH = 1000  # calls per pipeline; the rest go in the next one


@dataclass(frozen=True, slots=True)
class Script:
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class _Call:
    script: Script
    key: str
    args: Sequence[Any]
    future: asyncio.Future[Any]


class ScriptCalls:
    """Calls :class:`Script` s with one key each, batched; see the module docstring."""

    def __init__(self, client: Redis, *, max_batch: int = MAX_BATCH) -> None:
        self._client = client
        self._max_batch = max_batch
        self._pending: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, script: Script, key: str, args: Sequence[Any]) -> Any:
        """The script's reply for ``key`` and ``args`` (raises what Redis raised)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(script, key, args, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending())
        return await future

    async def aclose(self) -> None:
        """Stop sending; calls not yet answered fail."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        _fail(self._pending, redis_exceptions.ConnectionError("closed"))
        self._pending = []

    async def _send_pending(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                replies = await self._send(batch)
            except redis_exceptions.RedisError as exc:
                _fail(batch, exc)
                continue
            except BaseException:
                _fail(batch, redis_exceptions.ConnectionError("cancelled"))
                raise
            for call, reply in zip(batch, replies, strict=True):
                if call.future.done():  # its caller gave up
                    continue
                if isinstance(reply, Exception):
                    call.future.set_exception(reply)
                else:
                    call.future.set_result(reply)

    async def _send(self, batch: Sequence[_Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for call in batch:
            pipe.evalsha(call.script.sha, 1, call.key, *call.args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        missed = [n for n, reply in enumerate(replies) if _unknown_script(reply)]
        if not missed:
            return replies
        # Sent again with the source: EVAL caches the script for the next batch, and unlike
        # SCRIPT LOAD followed by EVALSHA it cannot miss again if another client flushes
        # the cache in between.
        pipe = self._client.pipeline(transaction=False)
        for n in missed:
            call = batch[n]
            pipe.eval(call.script.source, 1, call.key, *call.args)
        again: list[Any] = await pipe.execute(raise_on_error=False)
        for n, reply in zip(missed, again, strict=True):
            replies[n] = reply
        return replies


def _unknown_script(reply: Any) -> bool:
    return isinstance(reply, redis_exceptions.NoScriptError) or (
        isinstance(reply, redis_exceptions.ResponseError) and str(reply).startswith("NOSCRIPT")
    )


def _fail(calls: Sequence[_Call], exc: BaseException) -> None:
    for call in calls:
        if not call.future.done():
            call.future.set_exception(exc)
