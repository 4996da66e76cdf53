"""The step feed across processes: one capped Redis stream per workspace.

Workers append a batch's events with one pipelined round trip (``XADD … MAXLEN ~ N``: the
stream keeps roughly the last ``N`` events, trimmed by whole radix nodes, which is cheap). An
API process runs one reader task per workspace that has subscribers, blocking on ``XREAD``
from where it last read, and fans each entry out to its local subscribers
(:mod:`campaignflow.bus.step_feed_fanout`): a thousand SSE clients of one workspace cost one
Redis connection, not a thousand. The reader stops with the workspace's last subscriber.

An event's position is its stream id, so ``Last-Event-ID`` resumes with ``XRANGE`` from it; the
replay and the live part are joined without loss or duplicates because the reader fixes its
start before the replay reads, and live events at or before the replay's end are skipped.

Only watched workspaces are published to: a reader sets ``<prefix>:steps:watch:<workspace>``
with a time to live of :data:`WATCH_SECONDS` when it starts and every
:data:`WATCH_REFRESH_SECONDS` while it runs, and workers look the keys up (one pipelined
``EXISTS`` per batch for the workspaces whose answer is older than a second, or, once watched,
than :data:`WATCHED_CACHE_SECONDS`), so nobody looking costs a worker almost nothing and a new
subscriber sees events within a second.

The feed is best effort by design (the step log is the record): a Redis outage drops events
on publish with a warning, and readers retry until Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import orjson
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from campaignflow.bus.step_feed import (
    LAGGED,
    WATCH_SECONDS,
    StepEvent,
    StepFilter,
    event_from_json,
    lagged,
)
from campaignflow.bus.step_feed_fanout import DEFAULT_CAPACITY, Fanout, utc_now

logger = logging.getLogger(__name__)

DEFAULT_MAX_LEN = 10_000  # events kept per workspace for resuming (approximately)
_READ_COUNT = 500
_REPLAY_PAGE = 1_000
_BLOCK_MS = 5_000
_RETRY_SECONDS = 1.0
_FIELD = b"e"
WATCH_REFRESH_SECONDS = 60.0
WATCHED_CACHE_SECONDS = 30.0
UNWATCHED_CACHE_SECONDS = 1.0

StreamId = tuple[int, int]
Entry = tuple[bytes | str, dict[Any, Any]]


class RedisStepFeed:
    """``prefix`` namespaces the keys (``<prefix>:steps:<workspace>``); the feed owns
    ``client`` only if ``owns_client`` (then :meth:`close` closes it)."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        max_len: int = DEFAULT_MAX_LEN,
        capacity: int = DEFAULT_CAPACITY,
        block_ms: int = _BLOCK_MS,
        owns_client: bool = False,
        unwatched_cache_seconds: float = UNWATCHED_CACHE_SECONDS,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._max_len = max_len
        self._block_ms = block_ms
        self._owns_client = owns_client
        self._fanout = Fanout(capacity)
        self._readers: dict[str, _Reader] = {}
        self._unwatched_cache = unwatched_cache_seconds
        self._answers: dict[str, tuple[bool, float]] = {}  # workspace → (watched, until)

    def key(self, workspace_id: str) -> str:
        return f"{self._prefix}:steps:{workspace_id}"

    def watch_key(self, workspace_id: str) -> str:
        return f"{self._prefix}:steps:watch:{workspace_id}"

    async def watched(self, workspace_ids: Collection[str]) -> set[str]:
        now = time.monotonic()
        answers = self._answers
        stale = [w for w in workspace_ids if answers.get(w, (False, 0.0))[1] <= now]
        if stale:
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for workspace in stale:
                        pipe.exists(self.watch_key(workspace))
                    found = await pipe.execute()
            except redis_exceptions.RedisError:
                logger.warning("step feed: cannot tell who watches", exc_info=True)
                return set()
            for workspace, exists in zip(stale, found, strict=True):
                watching = bool(exists)
                ttl = WATCHED_CACHE_SECONDS if watching else self._unwatched_cache
                answers[workspace] = (watching, now + ttl)
        return {w for w in workspace_ids if answers[w][0]}

    async def publish(self, events: Sequence[StepEvent]) -> None:
        if not events:
            return
        watched = await self.watched({event.workspace_id for event in events})
        if not watched:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for event in events:
                    if event.workspace_id not in watched:
                        continue
                    fields: dict[Any, Any] = {_FIELD: orjson.dumps(event.to_json())}
                    pipe.xadd(
                        self.key(event.workspace_id), fields, maxlen=self._max_len, approximate=True
                    )
                await pipe.execute()
        except redis_exceptions.RedisError:
            logger.warning("step feed: %d events not published", len(events), exc_info=True)

    async def subscribe(
        self, filter: StepFilter, *, after: str | None = None
    ) -> AsyncIterator[StepEvent]:
        subscription = self._fanout.add(filter)
        reader = self._reader_of(filter.workspace_id)
        try:
            await reader.ready.wait()  # the live part's start is fixed before the replay
            replayed: StreamId | None = None
            if after is not None:
                async for event in self._replay(filter, after):
                    if event.kind != LAGGED:
                        replayed = _stream_id(event.id)
                    yield event
            while (live := await subscription.next()) is not None:
                position = _stream_id(live.id)
                if replayed is not None and position is not None and position <= replayed:
                    continue  # read by the replay already
                yield live
        finally:
            if self._fanout.remove(subscription):
                await self._stop_reader(filter.workspace_id)

    def subscribers(self, workspace_id: str) -> int:
        """Live subscriptions of the workspace in this process."""
        return self._fanout.count(workspace_id)

    def reading(self, workspace_id: str) -> bool:
        """Whether a reader runs for the workspace (while it has subscribers) and has fixed
        where it reads from: what is published from then on reaches its subscribers."""
        reader = self._readers.get(workspace_id)
        running = reader is not None and reader.task is not None and not reader.task.done()
        return running and reader is not None and reader.ready.is_set()

    async def close(self) -> None:
        self._fanout.close()
        for workspace in list(self._readers):
            await self._stop_reader(workspace)
        if self._owns_client:
            await self._client.aclose()

    # --- resuming -----------------------------------------------------------------------

    async def _replay(self, filter: StepFilter, after: str) -> AsyncIterator[StepEvent]:
        """What the stream still holds after ``after``, led by a lag marker when entries after
        it may have been trimmed (or ``after`` is not a stream id). Only matching events are
        yielded; a live event that matches and is not newer than the last of them was read
        here, so the caller skips it."""
        start = _stream_id(after)
        key = self.key(filter.workspace_id)
        if start is None or await self._trimmed_after(key, start):
            yield lagged(filter.workspace_id, utc_now())
            if start is None:
                return
        cursor = f"({start[0]}-{start[1]}"
        while True:
            try:
                page: Any = await self._client.xrange(key, min=cursor, count=_REPLAY_PAGE)
            except redis_exceptions.RedisError:
                logger.warning("step feed: replay of %s failed", key, exc_info=True)
                yield lagged(filter.workspace_id, utc_now())
                return
            entries: list[Entry] = list(page or ())
            for entry_id, fields in entries:
                event = _decode(entry_id, fields)
                if event is not None and filter.matches(event):
                    yield event
            if len(entries) < _REPLAY_PAGE:
                return
            cursor = "(" + _text(entries[-1][0])

    async def _trimmed_after(self, key: str, start: StreamId) -> bool:
        """Whether entries newer than ``start`` may have been trimmed: the stream has lost
        entries and its oldest kept one is newer than ``start``. (It may say so when only
        ``start`` itself and older ones went: a lag marker too many, never one too few.)"""
        try:
            info: dict[str, Any] = await self._client.xinfo_stream(key)
        except redis_exceptions.ResponseError:
            return False  # no such stream: nothing was ever published, nothing was lost
        except redis_exceptions.RedisError:
            return True
        first = info.get("first-entry")
        if not first or int(info.get("entries-added", 0)) <= int(info.get("length", 0)):
            return False
        oldest = _stream_id(_text(first[0]))
        return oldest is not None and oldest > start

    # --- the reader of a workspace ------------------------------------------------------

    def _reader_of(self, workspace_id: str) -> _Reader:
        reader = self._readers.get(workspace_id)
        if reader is None:
            reader = _Reader()
            reader.task = asyncio.create_task(
                self._read(workspace_id, reader), name=f"step-feed:{workspace_id}"
            )
            self._readers[workspace_id] = reader
        return reader

    async def _stop_reader(self, workspace_id: str) -> None:
        reader = self._readers.pop(workspace_id, None)
        if reader is None or reader.task is None:
            return
        reader.stopping = True
        reader.task.cancel()
        await asyncio.wait([reader.task])  # an outer cancellation still propagates

    async def _read(self, workspace_id: str, reader: _Reader) -> None:
        key = self.key(workspace_id)
        position: str | None = None
        watch_due = 0.0
        while not reader.stopping:
            try:
                if time.monotonic() >= watch_due:  # workers publish while this key lives
                    await self._client.set(
                        self.watch_key(workspace_id), b"1", ex=int(WATCH_SECONDS)
                    )
                    watch_due = time.monotonic() + WATCH_REFRESH_SECONDS
                if position is None:
                    position = await self._last_id(key)
                    reader.ready.set()
                reply: Any = await self._client.xread(
                    {key: position}, count=_READ_COUNT, block=self._block_ms
                )
            except redis_exceptions.RedisError:
                # redis-py may turn a cancellation inside a blocking read into an error of
                # the connection it closed: a reader told to stop stops, whatever it got.
                if reader.stopping:
                    return
                logger.warning("step feed: reading %s failed; retrying", key, exc_info=True)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            for entries in _entries_of(reply):
                if entries:
                    position = _text(entries[-1][0])
                decoded = (_decode(entry_id, fields) for entry_id, fields in entries)
                self._fanout.deliver(workspace_id, [e for e in decoded if e is not None])

    async def _last_id(self, key: str) -> str:
        newest: Any = await self._client.xrevrange(key, count=1)
        return _text(newest[0][0]) if newest else "0-0"


class _Reader:
    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.stopping = False


def _entries_of(reply: Any) -> list[list[Entry]]:
    """XREAD's reply (one stream) as its lists of entries, whichever shape redis-py gives
    (a list of pairs in RESP2, a mapping in RESP3)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [list(entries) for _stream, entries in pairs]


def _decode(entry_id: bytes | str, fields: dict[Any, Any]) -> StepEvent | None:
    """The entry's event at its stream id; ``None`` (logged) for an entry that is not one."""
    try:
        return event_from_json(orjson.loads(fields[_FIELD]), _text(entry_id))
    except (KeyError, ValueError, TypeError):
        logger.warning("step feed: skipped a malformed entry %r", entry_id)
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stream_id(value: str) -> StreamId | None:
    """``"<ms>-<seq>"`` as a comparable pair; ``None`` when it is not a stream id."""
    millis, dash, sequence = value.partition("-")
    if not (dash and millis.isdigit() and sequence.isdigit()):
        return None
    return int(millis), int(sequence)
