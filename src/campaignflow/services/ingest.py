"""Ingestion as a use case: parse what a source sent, append the good events to the bus, and
say which were refused and why. Both the native API and the Segment-compatible endpoints call
this; neither holds any rule of its own.

An event is acknowledged only once it is durable: :meth:`IngestService.accept` returns after the
bus has it (see :meth:`EventBus.publish`). One bus entry per shard and request keeps a 500-event
batch to a few appends while one contact's events stay in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from campaignflow.bus.events import EventBus
from campaignflow.domain import event_parsing
from campaignflow.domain.event_parsing import ParsedBatch
from campaignflow.domain.events import Event, EventType, encode_events
from campaignflow.engine.clock import Clock


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_event_bytes: int = event_parsing.DEFAULT_MAX_EVENT_BYTES
    max_body_bytes: int = event_parsing.DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: list[Event]
    parsed: ParsedBatch

    @property
    def rejected(self) -> list[dict[str, object]]:
        """Per refused message: its index and every problem with its pointer."""
        by_index: dict[int, list[dict[str, object]]] = {
            index: [] for index in self.parsed.rejected_indexes
        }
        for problem in self.parsed.problems:
            by_index.setdefault(_message_index(problem.path), []).append(problem.to_dict())
        return [{"index": index, "errors": errors} for index, errors in by_index.items()]


def _message_index(path: tuple[object, ...]) -> int:
    """``/batch/3/userId`` → 3; a single call's problems all belong to message 0."""
    if len(path) > 1 and path[0] in ("batch", "events") and isinstance(path[1], int):
        return path[1]
    return 0


Parser = Callable[..., ParsedBatch]


class IngestService:
    def __init__(self, bus: EventBus, clock: Clock, limits: IngestLimits | None = None) -> None:
        self._bus = bus
        self._clock = clock
        self.limits = limits or IngestLimits()

    async def native_event(self, workspace_id: str, body: bytes) -> IngestResult:
        return await self._ingest(event_parsing.parse_native_event, workspace_id, body)

    async def native_batch(self, workspace_id: str, body: bytes) -> IngestResult:
        return await self._ingest(event_parsing.parse_native_batch, workspace_id, body)

    async def segment_call(self, workspace_id: str, kind: EventType, body: bytes) -> IngestResult:
        parse = partial(event_parsing.parse_segment_call, kind)
        return await self._ingest(parse, workspace_id, body)

    async def segment_batch(self, workspace_id: str, body: bytes) -> IngestResult:
        return await self._ingest(event_parsing.parse_segment_batch, workspace_id, body)

    async def _ingest(self, parse: Parser, workspace_id: str, body: bytes) -> IngestResult:
        parsed = parse(
            body,
            workspace_id=workspace_id,
            received_at=self._clock.now(),
            max_event_bytes=self.limits.max_event_bytes,
            max_body_bytes=self.limits.max_body_bytes,
        )
        await self.accept(parsed.events)
        return IngestResult(parsed.events, parsed)

    async def accept(self, events: list[Event]) -> None:
        """Append ``events`` to the bus: one entry per shard, in order; returns once durable."""
        if not events:
            return
        by_shard: dict[int, list[Event]] = {}
        for event in events:
            by_shard.setdefault(self._bus.shard_for(event.partition_key), []).append(event)
        await self._bus.publish(
            [(shard, encode_events(group)) for shard, group in by_shard.items()]
        )
