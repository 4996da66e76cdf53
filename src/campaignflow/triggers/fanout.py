"""One tick's fan-out: the workspace's contacts, a page at a time, each page one transaction.

A page holds the tick (see :mod:`campaignflow.store.ticks`), reads the next contacts after its
cursor, keeps those the trigger applies to (its condition; for ``relativeTo`` a moment within the
planned day), admits them through dedup keys and entry rules, starts their executions and moves
the cursor — all in one commit. A worker killed mid-way leaves the last committed page behind it;
whoever holds the tick next continues from there, so nobody is started twice or skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.bus.wakeup import Wakeup
from campaignflow.domain.cel import CelEvaluationError, CompiledExpression
from campaignflow.domain.contacts import ContactRecord
from campaignflow.domain.schedules import format_timestamp
from campaignflow.domain.triggers import TimeTrigger
from campaignflow.engine.clock import Clock
from campaignflow.store.admission import AdmissionStore, DedupClaim, EntryClaim
from campaignflow.store.contacts import ContactStore
from campaignflow.store.database import Database
from campaignflow.store.executions import ExecutionStore, NewExecution, new_records
from campaignflow.store.ids import new_id
from campaignflow.store.ticks import TickKey, TickStore
from campaignflow.triggers.catalog import CatalogWorkflow
from campaignflow.triggers.routing import StartSpec, start_spec
from campaignflow.triggers.time_plan import (
    DAY,
    TimeKind,
    attribute_value,
    contact_zone,
    kind_of,
    occurrences,
    parse_anchor,
)


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """A time trigger of an active workflow, with what it starts."""

    start: StartSpec
    trigger: TimeTrigger
    condition: CompiledExpression | None
    since: datetime  # when it last changed (see CatalogWorkflow.since)

    @property
    def kind(self) -> TimeKind:
        return kind_of(self.trigger)

    @property
    def key(self) -> tuple[str, str]:
        return (self.start.workspace_id, self.start.scope)

    def tick(self, tick_at: datetime) -> TickKey:
        return TickKey(self.start.workspace_id, self.start.scope, tick_at)


def time_specs(catalog: Sequence[CatalogWorkflow]) -> list[TimeSpec]:
    """Every time trigger of the catalog, in (workspace, scope) order."""
    specs = []
    for entry in catalog:
        for source in entry.sources:
            trigger = source.trigger
            if isinstance(trigger, TimeTrigger):
                label = f"time:{kind_of(trigger)}"
                start = start_spec(entry.workspace_id, entry.version, entry.compiled, source, label)
                specs.append(TimeSpec(start, trigger, source.condition, entry.since(source.scope)))
    return sorted(specs, key=lambda spec: spec.key)


@dataclass(frozen=True, slots=True)
class FanOutOptions:
    page_size: int = 500
    lease: timedelta = timedelta(seconds=30)
    catch_up: timedelta = timedelta(hours=1)


@dataclass(slots=True)
class FanOutOutcome:
    """What a fan-out (or one page of it) did, for logs, metrics and tests."""

    pages: int = 0
    contacts: int = 0  # read
    started: int = 0
    refused: int = 0  # by dedup keys or entry rules
    condition_errors: int = 0
    late: int = 0  # relativeTo moments already past the catch-up window
    completed: bool = False

    def add(self, other: FanOutOutcome) -> None:
        for name in ("pages", "contacts", "started", "refused", "condition_errors", "late"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.completed = other.completed


@dataclass(frozen=True, slots=True)
class FanOutStores:
    ticks: TickStore
    admission: AdmissionStore
    executions: ExecutionStore
    contacts: ContactStore  # the audience (its sensitive fields opened)


@dataclass(slots=True)
class _Start:
    contact: ContactRecord
    variables: dict[str, Any]
    input: dict[str, Any]
    start_at: datetime | None = None


class FanOut:
    """Fans ticks out on behalf of one scheduler (``owner``, the name its leases carry)."""

    def __init__(
        self,
        database: Database,
        stores: FanOutStores,
        wakeup: Wakeup,
        clock: Clock,
        *,
        owner: str,
        options: FanOutOptions,
    ) -> None:
        self._db = database
        self._stores = stores
        self._wakeup = wakeup
        self._clock = clock
        self.owner = owner
        self.options = options

    async def run(self, spec: TimeSpec, tick_at: datetime) -> FanOutOutcome:
        """Page through a tick this scheduler holds until it completes (or is taken over)."""
        outcome = FanOutOutcome()
        while not outcome.completed:
            page = await self.page(spec, tick_at)
            if page is None:
                break
            outcome.add(page)
        return outcome

    async def page(self, spec: TimeSpec, tick_at: datetime) -> FanOutOutcome | None:
        """One page in one transaction; ``None`` when the tick is no longer this owner's."""
        now = self._clock.now()
        until = now + self.options.lease
        key = spec.tick(tick_at)
        size = self.options.page_size
        async with self._db.transaction() as connection:
            held = await TickStore.hold(connection, key, owner=self.owner, until=until)
            if held is None:
                return None
            contacts = await self._stores.contacts.page_after(
                connection, key.workspace_id, held.cursor, size
            )
            page = FanOutOutcome(pages=1, contacts=len(contacts), completed=len(contacts) < size)
            starts = self._audience(spec, tick_at, contacts, now, page)
            page.started = await self._start(connection, spec, starts, now, page)
            await TickStore.advance(
                connection,
                key,
                cursor=contacts[-1].id if contacts else held.cursor,
                started=page.started,
                until=until,
                done=now if page.completed else None,
            )
        if page.started:
            await self._wakeup.notify()
        return page

    # ------------------------------------------------------------------ who

    def _audience(
        self,
        spec: TimeSpec,
        tick_at: datetime,
        contacts: Sequence[ContactRecord],
        now: datetime,
        page: FanOutOutcome,
    ) -> list[_Start]:
        tick = format_timestamp(tick_at)
        event = {"type": "time", "tick": tick, "trigger": spec.start.scope}
        not_before = max(spec.since, now - self.options.catch_up)
        starts = []
        for contact in contacts:
            variables = {"event": event, "contact": contact.to_variables(), "now": now}
            start = _Start(contact, variables, {"tick": tick})
            if spec.kind == "relative" and not self._relative(
                spec, start, tick_at, not_before, page
            ):
                continue
            if self._matches(spec.condition, start.variables, page):
                starts.append(start)
        return starts

    @staticmethod
    def _relative(
        spec: TimeSpec,
        start: _Start,
        tick_at: datetime,
        not_before: datetime,
        page: FanOutOutcome,
    ) -> bool:
        """Give ``start`` the contact's moment within the planned day; ``False`` if it has none
        (or only one already past the catch-up window)."""
        relative = spec.trigger.relative_to
        assert relative is not None
        contact = start.variables["contact"]
        zone = contact_zone(contact.get("timezone"), spec.trigger.timezone)
        anchor = parse_anchor(attribute_value(contact, relative.attribute), zone)
        if anchor is None:
            return False
        moments = occurrences(relative, anchor, zone, tick_at, tick_at + DAY)
        if not moments:
            return False
        if moments[0] < not_before:
            page.late += 1
            return False
        moment = format_timestamp(moments[0])
        event = {**start.variables["event"], "occurrence": moment}
        start.variables = {**start.variables, "event": event}
        start.input = {**start.input, "attribute": relative.attribute, "occurrence": moment}
        start.start_at = moments[0]
        return True

    @staticmethod
    def _matches(
        condition: CompiledExpression | None, variables: dict[str, Any], page: FanOutOutcome
    ) -> bool:
        if condition is None:
            return True
        try:
            return condition.evaluate_bool(variables)
        except CelEvaluationError:
            page.condition_errors += 1
            return False

    # ------------------------------------------------------------------ starting

    async def _start(
        self,
        connection: AsyncConnection,
        spec: TimeSpec,
        starts: list[_Start],
        now: datetime,
        page: FanOutOutcome,
    ) -> int:
        starts = await self._admit_dedup(connection, spec, starts, now, page)
        starts, ids = await self._admit_entries(connection, spec, starts, now, page)
        if not starts:
            return 0
        news = [_new_execution(spec.start, start) for start in starts]
        records = new_records(news, now, ids)
        await self._stores.executions.insert_started(connection, records, news, now)
        return len(records)

    async def _admit_dedup(
        self,
        connection: AsyncConnection,
        spec: TimeSpec,
        starts: list[_Start],
        now: datetime,
        page: FanOutOutcome,
    ) -> list[_Start]:
        dedup = spec.start.dedup
        if dedup is None:
            return starts
        claimed: dict[str, _Start] = {}
        for start in starts:
            try:
                key = dedup.key_text(start.variables)
            except CelEvaluationError:  # the trigger asked not to start twice: cannot tell
                page.condition_errors += 1
                page.refused += 1
                continue
            if key in claimed:
                page.refused += 1
                continue
            claimed[key] = start
        expires = dedup.window.add_to(now)
        claims = [DedupClaim(*spec.key, key, expires) for key in claimed]
        admitted = await self._stores.admission.claim_dedup_keys(connection, claims, now)
        page.refused += admitted.count(False)
        return [start for start, ok in zip(claimed.values(), admitted, strict=True) if ok]

    async def _admit_entries(
        self,
        connection: AsyncConnection,
        spec: TimeSpec,
        starts: list[_Start],
        now: datetime,
        page: FanOutOutcome,
    ) -> tuple[list[_Start], list[str]]:
        rule = spec.start.entry_rule(now)
        workflow = (spec.start.workspace_id, spec.start.workflow_id)
        claims = [EntryClaim(*workflow, s.contact.id, new_id(), rule) for s in starts]
        admitted = await self._stores.admission.claim_entries(connection, claims, now)
        page.refused += admitted.count(False)
        kept = [start for start, ok in zip(starts, admitted, strict=True) if ok]
        ids = [claim.execution_id for claim, ok in zip(claims, admitted, strict=True) if ok]
        return kept, ids


def _new_execution(spec: StartSpec, start: _Start) -> NewExecution:
    return NewExecution(
        workspace_id=spec.workspace_id,
        workflow_id=spec.workflow_id,
        workflow_version=spec.version,
        subject_id=start.contact.id,
        trigger=spec.label,
        input=start.input,
        contact=start.variables["contact"],
        start_node=spec.start_node,
        event=start.variables["event"],
        start_at=start.start_at,
    )
