"""Ingestion as a use case: parse what a source sent, append the good events to the bus, and
say which were refused and why. Both the native API and the Segment-compatible endpoints call
this; neither holds any rule of its own.

An event is acknowledged only once it is durable: :meth:`IngestService.accept` returns after the
bus has it (see :meth:`EventBus.publish`). One bus entry per shard and request keeps a 500-event
batch to a few appends while one contact's events stay in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Literal, Protocol

import msgspec

from campaignflow.bus.events import EventBus
from campaignflow.domain import event_parsing
from campaignflow.domain.contacts import normalize_email
from campaignflow.domain.event_parsing import ParsedBatch
from campaignflow.domain.events import Event, EventType, encode_events
from campaignflow.engine.clock import Clock
from campaignflow.observability import tracing
from campaignflow.observability.metrics import events_ingested

logger = logging.getLogger(__name__)


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
IngestSource = Literal["api", "segment", "webhook", "sync"]


class ErasedCheck(Protocol):
    """The erased-identity list (:class:`campaignflow.store.erasure.ErasedIdentities`)."""

    def digest(self, kind: str, value: str) -> str: ...

    async def erased(self, workspace_id: str, keys: Iterable[tuple[str, str]]) -> set[str]: ...


class IngestService:
    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        limits: IngestLimits | None = None,
        erased: ErasedCheck | None = None,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self.limits = limits or IngestLimits()
        self._erased = erased
        self.dropped_erased = 0  # events dropped because they name an erased person

    async def native_event(self, workspace_id: str, body: bytes) -> IngestResult:
        return await self._ingest(event_parsing.parse_native_event, workspace_id, body, "api")

    async def native_batch(self, workspace_id: str, body: bytes) -> IngestResult:
        return await self._ingest(event_parsing.parse_native_batch, workspace_id, body, "api")

    async def segment_call(self, workspace_id: str, kind: EventType, body: bytes) -> IngestResult:
        parse = partial(event_parsing.parse_segment_call, kind)
        return await self._ingest(parse, workspace_id, body, "segment")

    async def segment_batch(self, workspace_id: str, body: bytes) -> IngestResult:
        return await self._ingest(event_parsing.parse_segment_batch, workspace_id, body, "segment")

    async def _ingest(
        self, parse: Parser, workspace_id: str, body: bytes, source: IngestSource
    ) -> IngestResult:
        parsed = parse(
            body,
            workspace_id=workspace_id,
            received_at=self._clock.now(),
            max_event_bytes=self.limits.max_event_bytes,
            max_body_bytes=self.limits.max_body_bytes,
        )
        await self.accept(parsed.events, source=source)
        return IngestResult(parsed.events, parsed)

    async def accept(self, events: list[Event], *, source: IngestSource = "api") -> None:
        """Append ``events`` to the bus: one entry per shard, in order; returns once durable.
        Events naming an erased person are dropped, silently to the sender (who must not learn
        who was erased) and counted. ``source`` labels the ingestion metric: the native API,
        Segment's endpoints, provider webhooks or a CRM sync."""
        if events and self._erased is not None:
            events = await self._without_erased(events)
        if not events:
            return
        trace = tracing.current_traceparent()
        if trace is not None:  # tracing on: the router's span links back to this request
            events = [msgspec.structs.replace(event, trace=trace) for event in events]
        by_shard: dict[int, list[Event]] = {}
        for event in events:
            by_shard.setdefault(self._bus.shard_for(event.partition_key), []).append(event)
        await self._bus.publish(
            [(shard, encode_events(group)) for shard, group in by_shard.items()]
        )
        events_ingested((event.workspace_id for event in events), source)

    async def _without_erased(self, events: list[Event]) -> list[Event]:
        """One query for the whole batch (none while the workspace has erased nobody)."""
        erased = self._erased
        assert erased is not None
        keys_of = [_identity_keys(erased, event) for event in events]
        by_workspace: dict[str, set[tuple[str, str]]] = {}
        for event, keys in zip(events, keys_of, strict=True):
            by_workspace.setdefault(event.workspace_id, set()).update(keys)
        found: set[str] = set()
        for workspace_id, named in by_workspace.items():
            found |= await erased.erased(workspace_id, named)
        if not found:
            return events
        kept = [e for e, keys in zip(events, keys_of, strict=True) if not _named(keys, found)]
        self.dropped_erased += len(events) - len(kept)
        logger.info("dropped events of erased people", extra={"events": len(events) - len(kept)})
        return kept


def _identity_keys(erased: ErasedCheck, event: Event) -> list[tuple[str, str]]:
    """(kind, digest) of each identity the event names: userId, anonymousId, the address in
    ``traits.email`` or ``context.traits.email``."""
    keys = []
    for kind, value in (
        ("user_id", event.user_id),
        ("user_id", event.previous_id),
        ("anonymous_id", event.anonymous_id),
        ("anonymous_id", event.previous_id),
    ):
        if value:
            keys.append((kind, erased.digest(kind, value)))
    context_traits = event.context.get("traits")
    for traits in (event.traits, context_traits if isinstance(context_traits, dict) else {}):
        email = normalize_email(traits.get("email"))
        if email is not None:
            keys.append(("email", erased.digest("email", email)))
    return keys


def _named(keys: list[tuple[str, str]], found: set[str]) -> bool:
    return any(digest in found for _, digest in keys)
