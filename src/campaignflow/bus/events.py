"""The event bus: one interface, two implementations (Redis Streams, in-process).

Ingestion appends entries; routers consume them, act on them in one database transaction, and
only then acknowledge them. An entry is opaque bytes (a msgpack list of events, see
:mod:`campaignflow.domain.events`) appended to one of ``shards`` ordered logs; the shard is
chosen by :meth:`EventBus.shard_for` from the contact's identity, so one contact's events stay
in order. Each shard is consumed by one consumer at a time; a consumer that dies leaves its
unacknowledged entries to the next owner of the shard (at-least-once delivery: the router's
database writes are idempotent by ``messageId``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from campaignflow.errors import CampaignflowError, StorageError


class Backpressure(CampaignflowError):
    """The bus holds more unprocessed entries than its bound; the sender should retry later."""

    def __init__(self, backlog: int, bound: int, retry_after_seconds: int) -> None:
        self.backlog = backlog
        self.bound = bound
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"{backlog} entries wait to be processed (bound {bound}); retry in "
            f"{retry_after_seconds} s"
        )


class BusUnavailable(StorageError):
    """The event bus is not reachable; retry later."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One entry handed to a consumer; acknowledge it with :meth:`EventBus.ack`."""

    shard: int
    entry_id: str  # position within the shard (Redis stream id; a counter in-process)
    payload: bytes
    redelivered: bool  # True when an earlier consumer received it and did not acknowledge it


def shard_of(key: str, shards: int) -> int:
    """Stable across processes and releases (CRC-32, not Python's salted ``hash``)."""
    return zlib.crc32(key.encode("utf-8")) % shards


class EventBus(Protocol):
    """What ingestion and the router need from the bus."""

    @property
    def shards(self) -> int: ...

    def shard_for(self, key: str) -> int:
        """The shard of a partition key (:func:`shard_of`)."""
        ...

    async def publish(self, entries: Sequence[tuple[int, bytes]]) -> None:
        """Append ``(shard, payload)`` entries, keeping their order within a shard.

        Returns once the entries are durable — on Redis, once appended (Redis runs with AOF in
        production); in-process, once a consumer has acknowledged them, since memory is not
        durable — so the caller may acknowledge its sender. Raises :class:`Backpressure`
        instead when the backlog has passed the bound, appending nothing.
        """
        ...

    async def consume(self, consumer: str, *, count: int, block_ms: int) -> list[Delivery]:
        """Up to ``count`` entries from the shards ``consumer`` owns, oldest first per shard,
        entries left unacknowledged by a previous owner first. Waits up to ``block_ms`` when
        there is nothing; returns ``[]`` then. Acknowledge a batch before asking for the next:
        shards move between consumers during this call, and a shard's unacknowledged entries
        move with it (they are redelivered to the new owner)."""
        ...

    async def ack(self, consumer: str, deliveries: Sequence[Delivery]) -> None:
        """The deliveries are processed; they are never delivered again."""
        ...

    def owned_shards(self, consumer: str) -> frozenset[int]:
        """The shards ``consumer`` holds, as this process last saw them (metrics, tests)."""
        ...

    async def backlog(self) -> int:
        """Entries appended and not yet acknowledged, over all shards."""
        ...

    async def release(self, consumer: str) -> None:
        """The consumer stops: give its shards up at once (its unacknowledged entries stay
        pending for the next owner)."""
        ...

    async def close(self) -> None: ...
