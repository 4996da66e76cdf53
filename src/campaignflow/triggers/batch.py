"""One batch of events, acted on in one database transaction.

The phases run in this order, each over the whole batch with a constant number of statements:

1. drop events already stored (their ``messageId`` was seen: a retry or a redelivery);
2. resolve each event's contact (identify and alias merge identities and traits);
3. store the events; only the events this transaction inserted go on, after applying the
   consent they carry (Segment's ``context.consent``) to their contacts;
4. offer each event to the waits of its contact (``wait_for_event`` resumption);
5. start executions for matching behavior triggers, through dedup keys and entry rules;
6. end live executions whose exit criteria match — except an execution whose wait took that
   very event (the workflow handles it), or one started by a later event of the batch.

Everything commits together, so a crash at any point leaves either all of a batch's effects or
none, and the bus redelivers the batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.domain.cel import CelEvaluationError
from campaignflow.domain.consent import event_changes
from campaignflow.domain.contacts import ContactRecord
from campaignflow.domain.events import Event
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.engine.model import ExecutionStatus
from campaignflow.engine.waits import wait_takes
from campaignflow.store import pg_batch
from campaignflow.store.admission import AdmissionStore, DedupClaim, EntryClaim
from campaignflow.store.consents import ConsentStore
from campaignflow.store.contacts import ContactStore
from campaignflow.store.events import EventStore, event_key
from campaignflow.store.executions import (
    ExecutionStore,
    NewExecution,
    WaitRecord,
    new_records,
)
from campaignflow.store.ids import new_id
from campaignflow.triggers.routing import RoutingTable, StartSpec


@dataclass(slots=True)
class BatchOutcome:
    """What a batch did, for logs, metrics and tests."""

    events: int = 0
    duplicates: int = 0
    started: int = 0
    resumed: int = 0
    exited: int = 0
    refused: int = 0  # matches refused by dedup keys or entry rules
    condition_errors: int = 0
    # For the metrics, this batch's only (``add`` leaves them): when each event that started
    # executions arrived, and (workspace, workflow, count) of executions its exits cancelled.
    started_received: list[datetime] = field(default_factory=list)
    exited_by: list[tuple[str, str, int]] = field(default_factory=list)

    def add(self, other: BatchOutcome) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_COUNTS = ("events", "duplicates", "started", "resumed", "exited", "refused", "condition_errors")


@dataclass(slots=True)
class _Routed:
    """An event this transaction stored, with its contact and CEL variables."""

    index: int
    event: Event
    contact: ContactRecord
    variables: dict[str, Any]
    took: set[str] = field(default_factory=set)  # executions whose wait took this event


@dataclass(frozen=True, slots=True)
class _Start:
    routed: _Routed
    spec: StartSpec


@dataclass(frozen=True, slots=True)
class BatchStores:
    events: EventStore
    contacts: ContactStore
    admission: AdmissionStore
    executions: ExecutionStore
    compiled: CompiledWorkflows


async def route_batch(
    connection: AsyncConnection,
    stores: BatchStores,
    table: RoutingTable,
    events: Sequence[Event],
    now: datetime,
) -> BatchOutcome:
    """Act on ``events`` (in order) inside ``connection``'s transaction."""
    run = _BatchRun(connection, stores, table, now)
    await run.route(events)
    return run.outcome


def _variables(event: Event, contact: ContactRecord, now: datetime) -> dict[str, Any]:
    return {"event": event.to_variables(), "contact": contact.to_variables(), "now": now}


def _subjects(routed: _Routed) -> tuple[str, ...]:
    """The subjects an execution of this contact may carry: event-started executions use the
    contact id; API-started ones may use the userId the client knows."""
    contact = routed.contact
    return (contact.id, contact.user_id) if contact.user_id else (contact.id,)


def _by_workspace(routed: Sequence[_Routed]) -> dict[str, list[_Routed]]:
    groups: dict[str, list[_Routed]] = defaultdict(list)
    for item in routed:
        groups[item.event.workspace_id].append(item)
    return groups


class _BatchRun:
    def __init__(
        self,
        connection: AsyncConnection,
        stores: BatchStores,
        table: RoutingTable,
        now: datetime,
    ) -> None:
        self.connection = connection
        self.stores = stores
        self.table = table
        self.now = now
        self.outcome = BatchOutcome()

    async def route(self, events: Sequence[Event]) -> None:
        stores, connection = self.stores, self.connection
        if stores.events.postgres:
            await pg_batch.prefer_index_probes(connection)
        first: dict[tuple[str, str], Event] = {}
        for event in events:  # a repeated messageId: the first one counts, in its place
            first.setdefault(event_key(event), event)
        unique = list(first.values())
        known = await stores.events.known(connection, unique)
        fresh = [event for event in unique if event_key(event) not in known]
        contacts = await stores.contacts.resolve_events(connection, fresh, self.now)
        inserted = await stores.events.insert(connection, fresh, [c.id for c in contacts])
        stored = [
            (index, event, contact)
            for index, (event, contact) in enumerate(zip(fresh, contacts, strict=True))
            if event_key(event) in inserted
        ]
        # The consent each event carries, applied before matching: a trigger on
        # contact.consent.* sees the consent as of the event's own change.
        consenting = await ConsentStore.record_in(
            connection, [(contact, event_changes(event)) for _, event, contact in stored], self.now
        )
        routed = [
            _Routed(index, event, contact, _variables(event, contact, self.now))
            for (index, event, _), contact in zip(stored, consenting, strict=True)
        ]
        self.outcome.events = len(routed)
        self.outcome.duplicates = len(events) - len(routed)
        await self._resume_waits(routed)
        started = await self._start_executions(routed)
        await self._exit_executions(routed, started)

    # ------------------------------------------------------------------ waits

    async def _resume_waits(self, routed: Sequence[_Routed]) -> None:
        for workspace_id, items in _by_workspace(routed).items():
            subjects = sorted({subject for item in items for subject in _subjects(item)})
            names = sorted({item.event.routing_name for item in items})
            waits = await self.stores.executions.waits_of_subjects(
                self.connection, workspace_id, subjects, names
            )
            taken: set[tuple[str, str]] = set()
            for item in items:
                for wait in waits:
                    identity = (wait.execution_id, wait.token)
                    if (
                        identity in taken
                        or wait.event_name != item.event.routing_name
                        or wait.subject_id not in _subjects(item)
                    ):
                        continue
                    if await self._offer(wait, item):
                        taken.add(identity)
                        item.took.add(wait.execution_id)
                        self.outcome.resumed += 1

    async def _offer(self, wait: WaitRecord, item: _Routed) -> bool:
        executions = self.stores.executions
        execution = await executions.lock_in(self.connection, wait.workspace_id, wait.execution_id)
        if ExecutionStatus(execution.status).is_final:
            return False
        compiled = await self.stores.compiled.get(
            execution.workspace_id, execution.workflow_id, execution.workflow_version
        )
        event = item.variables["event"]
        if not wait_takes(
            compiled,
            node_id=wait.node_id,
            correlation_value=wait.correlation_value,
            execution=execution,
            event=event,
            now=self.now,
        ):
            return False
        return await executions.complete_wait_in(self.connection, wait, event=event, now=self.now)

    # ------------------------------------------------------------------ starts

    async def _start_executions(self, routed: Sequence[_Routed]) -> dict[str, int]:
        """Start what the batch's events trigger; returns execution id → index of its event."""
        candidates = await self._admit_dedup(self._matches(routed))
        admitted, ids = await self._admit_entries(candidates)
        if not admitted:
            return {}
        news = [_new_execution(start) for start in admitted]
        records = new_records(news, self.now, ids)
        await self.stores.executions.insert_started(self.connection, records, news, self.now)
        self.outcome.started += len(records)
        by_event = {start.routed.index: start.routed.event.received_at for start in admitted}
        self.outcome.started_received.extend(by_event.values())
        return {r.id: start.routed.index for r, start in zip(records, admitted, strict=True)}

    def _matches(self, routed: Sequence[_Routed]) -> list[_Start]:
        """Each event starts a workflow at most once, however many of its triggers match."""
        found: list[_Start] = []
        for item in routed:
            result = self.table.starts.match(
                item.event.workspace_id, item.event.routing_name, item.variables
            )
            self.outcome.condition_errors += result.errors
            workflows: set[str] = set()
            for spec in result.matched:
                if spec.workflow_id not in workflows:
                    workflows.add(spec.workflow_id)
                    found.append(_Start(item, spec))
        return found

    async def _admit_dedup(self, candidates: list[_Start]) -> list[_Start]:
        kept: list[_Start] = []
        claims: list[DedupClaim] = []
        claimed: list[_Start] = []
        seen: set[tuple[str, str, str]] = set()
        for start in candidates:
            dedup = start.spec.dedup
            if dedup is None:
                kept.append(start)
                continue
            key = self._dedup_key(start)
            identity = (start.spec.workspace_id, start.spec.scope, key or "")
            if key is None or identity in seen:
                self.outcome.refused += 1
                continue
            seen.add(identity)
            claims.append(DedupClaim(*identity, expires_at=dedup.window.add_to(self.now)))
            claimed.append(start)
        admitted = await self.stores.admission.claim_dedup_keys(self.connection, claims, self.now)
        for start, ok in zip(claimed, admitted, strict=True):
            if ok:
                kept.append(start)
            else:
                self.outcome.refused += 1
        return sorted(kept, key=lambda start: start.routed.index)

    def _dedup_key(self, start: _Start) -> str | None:
        """The key's value as text; a key that cannot be computed (a missing property)
        refuses the start, since the trigger asked not to start twice and we cannot tell."""
        assert start.spec.dedup is not None
        try:
            return start.spec.dedup.key_text(start.routed.variables)
        except CelEvaluationError:
            self.outcome.condition_errors += 1
            return None

    async def _admit_entries(self, candidates: list[_Start]) -> tuple[list[_Start], list[str]]:
        claims: list[EntryClaim] = []
        kept: list[_Start] = []
        seen: set[tuple[str, str, str]] = set()
        for start in candidates:
            spec = start.spec
            identity = (spec.workspace_id, spec.workflow_id, start.routed.contact.id)
            rule = spec.entry_rule(self.now)
            if identity in seen and not rule.unrestricted:
                self.outcome.refused += 1
                continue
            seen.add(identity)
            claims.append(EntryClaim(*identity, execution_id=new_id(), rule=rule))
            kept.append(start)
        admitted = await self.stores.admission.claim_entries(self.connection, claims, self.now)
        starts = [start for start, ok in zip(kept, admitted, strict=True) if ok]
        ids = [claim.execution_id for claim, ok in zip(claims, admitted, strict=True) if ok]
        self.outcome.refused += len(kept) - len(starts)
        return starts, ids

    # ------------------------------------------------------------------ exits

    async def _exit_executions(self, routed: Sequence[_Routed], started: dict[str, int]) -> None:
        for workspace_id, items in _by_workspace(routed).items():
            wanted = self._exit_matches(workspace_id, items)
            if not wanted:
                continue
            subjects = sorted({s for item, _ in wanted for s in _subjects(item)})
            workflows = sorted({w for _, goals in wanted for w in goals})
            live = await self.stores.executions.live_of_subjects(
                self.connection, workspace_id, subjects, workflows
            )
            for item, goals in wanted:
                ending: dict[str, list[str]] = defaultdict(list)
                for execution_id, workflow_id, subject in live:
                    if (
                        workflow_id in goals
                        and subject in _subjects(item)
                        and execution_id not in item.took
                        and started.get(execution_id, -1) < item.index
                    ):
                        ending[workflow_id].append(execution_id)
                for workflow_id, ids in sorted(ending.items()):
                    reason = {
                        "reason": "exitCriterion",
                        "event": item.event.routing_name,
                        "messageId": item.event.message_id,
                        "goal": goals[workflow_id],
                    }
                    exited = await self.stores.executions.exit_in(
                        self.connection, workspace_id, ids, reason, self.now
                    )
                    self.outcome.exited += len(exited)
                    self.outcome.exited_by.append((workspace_id, workflow_id, len(exited)))

    def _exit_matches(
        self, workspace_id: str, items: Sequence[_Routed]
    ) -> list[tuple[_Routed, dict[str, bool]]]:
        """Per event, the workflows whose exit criteria it meets (workflow → is it a goal)."""
        wanted = []
        for item in items:
            result = self.table.exits.match(workspace_id, item.event.routing_name, item.variables)
            self.outcome.condition_errors += result.errors
            goals: dict[str, bool] = {}
            for spec in result.matched:
                goals[spec.workflow_id] = goals.get(spec.workflow_id, False) or spec.goal
            if goals:
                wanted.append((item, goals))
        return wanted


def _new_execution(start: _Start) -> NewExecution:
    spec, item = start.spec, start.routed
    return NewExecution(
        workspace_id=spec.workspace_id,
        workflow_id=spec.workflow_id,
        workflow_version=spec.version,
        subject_id=item.contact.id,
        trigger=spec.label,
        input=dict(item.event.properties),
        contact=item.variables["contact"],
        start_node=spec.start_node,
        event=item.variables["event"],
    )
