"""One CRM sync run, from its cursor to its end: retry failed pushes, pull, push.

The runner is the I/O around the pure merge (:mod:`campaignflow.domain.record_merge`): it reads
a page of CRM records and the contacts, links and field sources they concern, asks for each
record's plan, writes the contacts, sends the pushes, and saves the page's links, errors and the
run's cursor in one transaction (:meth:`SyncStore.save_progress`). Events about what the CRM
changed (``crm.contact.created``, ``crm.contact.updated``) are published *before* that save:
their message ids are derived from the record and its modification time, so a page processed
again after a crash publishes duplicates the event log drops, and loses none.

Requests go through the connector executor's :meth:`send`, so they share the account's rate
limit and breaker with the workflows calling it. A request that fails retryably is tried again
a few times (honouring ``Retry-After``); when it still fails the run ends ``failed`` and the next
run starts where this one got to. One record the CRM refuses fails alone: it is listed in the
run's errors, its link is marked for retry, and the next run pushes it on its own.

The CRM's clock is compared with ours on every answer (its ``Date`` header); the median offset
corrects the CRM's change times before last-write-wins compares them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, Protocol

from campaignflow.domain.contacts import (
    KEEP,
    ContactChange,
    ContactRecord,
    NewContact,
    normalize_email,
)
from campaignflow.domain.events import Event
from campaignflow.domain.field_merge import MergePolicy
from campaignflow.domain.field_transforms import Scalar
from campaignflow.domain.record_merge import (
    LocalSide,
    RecordPlan,
    RemoteSide,
    plan_local_changes,
    plan_record,
)
from campaignflow.domain.sync_config import FieldMapping, SyncConfig
from campaignflow.engine.actions import ActionFailed
from campaignflow.errors import AlreadyExists, ClientError, NotFound
from campaignflow.integrations.connections import ResolvedConnection
from campaignflow.integrations.connector import OutboundRequest, ProviderResponse, RequestContext
from campaignflow.integrations.crm import (
    Activity,
    CrmSync,
    PullPage,
    PushRecord,
    PushResult,
    RemoteRecord,
    any_json,
)
from campaignflow.integrations.sync.cursor import Cursor, Phase
from campaignflow.store.contacts import ContactStore
from campaignflow.store.crm_sync import (
    ActivityEvent,
    FieldSource,
    Progress,
    RecordError,
    SyncLink,
    SyncRun,
    SyncStore,
)

logger = logging.getLogger(__name__)


class Sender(Protocol):
    async def send(
        self, connection: ResolvedConnection, request: OutboundRequest
    ) -> ProviderResponse: ...


EventSink = Callable[[list[Event]], Awaitable[None]]


_FATAL_STATUSES = frozenset({401, 403, 404})  # the account or the endpoint, not the record


class RefusedRequest(Exception):
    """The CRM refused a request as wrong (a 4xx other than the account's): for a push, the
    records' fault, answered per record; for a pull, the run's end."""

    def __init__(self, response: ProviderResponse) -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response


class SyncFailed(Exception):
    """The run cannot go on (the CRM keeps failing, the configuration is gone): it ends
    ``failed`` with this message, and the next run starts from its cursor."""


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    lease: timedelta = timedelta(seconds=60)
    attempts: int = 4  # per request, the first included
    backoff_s: float = 1.0  # doubled after each failed attempt
    max_backoff_s: float = 30.0
    max_pages: int = 10_000  # a runaway pull (a CRM repeating a page token) ends here
    retry_batch: int = 100  # failed pushes retried per run
    activity_page: int = 200  # events read at a time to log as activities


@dataclass(slots=True)
class _Stats:
    pulled: int = 0
    created: int = 0
    updated: int = 0
    pushed: int = 0
    unchanged: int = 0
    conflicts: int = 0
    failed: int = 0
    skipped: int = 0
    deleted: int = 0
    pages: int = 0
    activities: int = 0

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> _Stats:
        known = cls.__dataclass_fields__
        return cls(**{k: int(v) for k, v in document.items() if k in known})

    def to_document(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class _Push:
    """One contact's push: its link before the plan and as it will be once the CRM took it."""

    contact: ContactRecord
    before: SyncLink
    after: SyncLink
    record: PushRecord


@dataclass(slots=True)
class _Page:
    """One pull page's working set: what was loaded for it and what it produced."""

    links: dict[str, SyncLink]
    contacts: dict[str, ContactRecord]
    sources: dict[str, dict[str, FieldSource]]
    policy: MergePolicy
    progress: Progress = field(default_factory=lambda: Progress({}, {}))
    events: list[Event] = field(default_factory=list)
    pushes: list[_Push] = field(default_factory=list)


def canonical(value: Scalar) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class _Context:
    """What one run works with."""

    run: SyncRun
    connection: ResolvedConnection
    adapter: CrmSync
    config: SyncConfig
    mappings: dict[str, FieldMapping]
    cursor: Cursor
    stats: _Stats
    skews: list[float] = field(default_factory=list)

    @property
    def provider(self) -> str:
        return self.connection.connector.provider

    def remote_fields(self) -> list[str]:
        wanted = {mapping.remote for mapping in self.mappings.values()}
        return sorted(wanted | set(self.adapter.system_fields))


class SyncRunner:
    def __init__(
        self,
        *,
        store: SyncStore,
        contacts: ContactStore,
        resolve: Callable[[str, str], Awaitable[ResolvedConnection]],
        sender: Sender,
        publish: EventSink,
        owner: str,
        now: Callable[[], datetime],
        options: RunnerOptions | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._contacts = contacts
        self._resolve = resolve
        self._sender = sender
        self._publish = publish
        self._owner = owner
        self._now = now
        self._options = options or RunnerOptions()
        self._sleep = sleep
        cipher = contacts.cipher
        self._digest_of = cipher.value_digest

    def digest(self, value: Scalar) -> str | None:
        return None if value is None else self._digest_of(canonical(value))

    # ------------------------------------------------------------------ the run

    async def run(self, run: SyncRun) -> str:
        """Carry ``run`` (claimed by this worker) to its end; its final status."""
        try:
            ctx = await self._context(run)
        except (SyncFailed, NotFound) as exc:
            await self._finish(run, _Stats.from_document(run.stats), "failed", str(exc))
            return "failed"
        try:
            if ctx.cursor.phase == "retry":
                await self._retry_failed_pushes(ctx)
            if ctx.cursor.phase == "pull":
                await self._pull(ctx)
            if ctx.cursor.phase == "push":
                await self._push_local_changes(ctx)
            if ctx.cursor.phase == "activities":
                await self._log_activities(ctx)
        except SyncFailed as exc:
            await self._finish(run, ctx.stats, "failed", str(exc))
            return "failed"
        status = "partial" if ctx.stats.failed else "succeeded"
        await self._finish(run, ctx.stats, status, None)
        return status

    async def _context(self, run: SyncRun) -> _Context:
        connection = await self._resolve(run.workspace_id, run.connection_id)
        adapter = connection.connector.sync
        if adapter is None:
            raise SyncFailed(f"{connection.connector.provider} connections do not sync")
        if not connection.record.sync:
            raise SyncFailed("the connection's sync was switched off")
        config = SyncConfig.model_validate(connection.record.sync)
        return _Context(
            run=run,
            connection=connection,
            adapter=adapter,
            config=config,
            mappings=config.data_mapping.mappings(),
            cursor=Cursor.from_document(run.cursor),
            stats=_Stats.from_document(run.stats),
        )

    async def _finish(self, run: SyncRun, stats: _Stats, status: str, error: str | None) -> None:
        await self._store.finish(
            run, self._owner, status=status, stats=stats.to_document(), error=error, now=self._now()
        )

    async def _save(self, ctx: _Context, progress: Progress) -> None:
        progress.cursor = ctx.cursor.to_document()
        progress.stats = ctx.stats.to_document()
        now = self._now()
        await self._store.save_progress(ctx.run, self._owner, progress, now)
        await self._store.renew(ctx.run.id, self._owner, now + self._options.lease)

    # ------------------------------------------------------------------ phase 1: retries

    async def _retry_failed_pushes(self, ctx: _Context) -> None:
        pending = await self._store.pending_pushes(
            ctx.run.workspace_id, ctx.run.connection_id, self._options.retry_batch
        )
        contacts = await self._contacts.get_many(
            ctx.run.workspace_id, [p.contact_id for p in pending]
        )
        for link in pending:
            contact = contacts.get(link.contact_id)
            progress = Progress({}, {})
            if contact is None:  # deleted since: nothing left to push
                progress.links.append(replace(link, pending_push=False))
            else:
                await self._push_contacts(ctx, [(contact, link)], progress)
            await self._save(ctx, progress)
        ctx.cursor = replace(ctx.cursor, phase="push" if ctx.cursor.push_only else "pull")
        await self._save(ctx, Progress({}, {}))

    # ------------------------------------------------------------------ phase 2: pull

    async def _pull(self, ctx: _Context) -> None:
        since = ctx.cursor.pull_from()
        page: str | None = None
        seen: set[str] = set()
        fields = ctx.remote_fields()
        for _ in range(self._options.max_pages):
            request = ctx.adapter.pull_request(since, page, fields, self._request_context(ctx))
            pulled = self._read(ctx, ctx.adapter.parse_pull, await self._fetch(ctx, request))
            history = ctx.adapter.history_request
            if history is not None and ctx.adapter.parse_history is not None:
                extra = history(pulled, fields, self._request_context(ctx))
                if extra is not None:
                    answer = await self._fetch(ctx, extra)
                    pulled = self._read(ctx, partial(ctx.adapter.parse_history, pulled), answer)
            ctx.stats.pages += 1
            await self._apply_page(ctx, pulled.records)
            page = pulled.next_page
            if page is None:
                break
            if page in seen:  # the CRM would serve the same pages again, for ever
                raise SyncFailed(f"{ctx.provider} repeated a page token; the pull stopped there")
            seen.add(page)
        ctx.cursor = replace(
            ctx.cursor, phase="push", local_until=self._local_until(), last_pull_at=self._now()
        )
        await self._save(ctx, Progress({}, {}))

    async def _fetch(self, ctx: _Context, request: OutboundRequest) -> ProviderResponse:
        """A pull's request: a refusal ends the run (the next one starts again from the
        cursor), since no single record is at fault."""
        try:
            return await self._send(ctx, request)
        except RefusedRequest as refused:
            body = str(refused.response.body)[:300]
            raise SyncFailed(
                f"{ctx.provider} refused the pull: HTTP {refused.response.status} {body}"
            ) from refused

    @staticmethod
    def _read(
        ctx: _Context, parse: Callable[[ProviderResponse], PullPage], response: ProviderResponse
    ) -> PullPage:
        try:
            return parse(response)
        except (ClientError, ValueError, KeyError, TypeError) as exc:
            raise SyncFailed(f"{ctx.provider}: an answer the sync cannot read ({exc})") from exc

    async def _apply_page(self, ctx: _Context, records: Sequence[RemoteRecord]) -> None:
        workspace = ctx.run.workspace_id
        links = await self._store.links_by_remote(
            workspace, ctx.run.connection_id, [r.remote_id for r in records]
        )
        contacts = await self._contacts.get_many(
            workspace, [link.contact_id for link in links.values()]
        )
        page = _Page(
            links=links,
            contacts=contacts,
            sources=await self._store.field_sources(workspace, list(contacts)),
            policy=ctx.config.merge_policy(self._skew(ctx)),
        )
        for record in records:
            ctx.stats.pulled += 1
            await self._apply_record(ctx, record, page)
        await self._send_pushes(ctx, page.pushes, page.progress)
        if page.events:
            await self._publish(page.events)
        if records:
            ctx.cursor = ctx.cursor.pulled_up_to(max(r.modified_at for r in records))
        await self._save(ctx, page.progress)

    async def _apply_record(self, ctx: _Context, record: RemoteRecord, page: _Page) -> None:
        progress = page.progress
        link = page.links.get(record.remote_id)
        if record.deleted:
            if link is not None:  # unlinked; the contact stays (erasure is not a CRM's call)
                progress.links.append(replace(link, remote_id=None, fields={}))
                ctx.stats.deleted += 1
            return
        contact = page.contacts.get(link.contact_id) if link is not None else None
        if contact is None:
            contact, link = await self._match(ctx, record, link)
            if contact is not None:
                found = await self._store.field_sources(ctx.run.workspace_id, [contact.id])
                page.sources.update(found)
        local = (
            None
            if contact is None
            else self._local_side(ctx, contact, page.sources.get(contact.id, {}))
        )
        remote = RemoteSide(record.fields, record.modified_at, ctx.provider, record.field_times)
        plan = plan_record(
            ctx.mappings,
            local,
            remote,
            state=link.fields if link is not None else {},
            policy=page.policy,
            digest=self.digest,
            now=self._now(),
        )
        if not plan.ok:
            ctx.stats.failed += 1
            progress.errors.append(_pull_error(record, plan))
            return
        ctx.stats.conflicts += len(plan.conflicts)
        contact, created = await self._write_contact(ctx, contact, record, plan, progress)
        if contact is None:
            return
        before = link or SyncLink(contact.id, record.remote_id, {})
        after = SyncLink(contact.id, record.remote_id, {**before.fields, **plan.bases})
        progress.links.append(after)
        self._note_sources(ctx, contact.id, plan, record, progress)
        event = self._event(ctx, record, contact, plan, created)
        if event is not None:
            page.events.append(event)
        if plan.push:
            push = PushRecord(contact.id, plan.push, record.remote_id, contact.email)
            page.pushes.append(_Push(contact, before, after, push))
        elif not plan.pull and not created:
            ctx.stats.unchanged += 1

    async def _match(
        self, ctx: _Context, record: RemoteRecord, link: SyncLink | None
    ) -> tuple[ContactRecord | None, SyncLink | None]:
        """The contact of a CRM record not linked yet (or whose contact is gone): the one with
        its address, unless that one is linked to another record of this CRM."""
        email = normalize_email(record.email)
        if email is None:
            return None, None
        contact = await self._contacts.find_by_email(ctx.run.workspace_id, email)
        if contact is None:
            return None, None
        other = await self._store.links_by_contact(
            ctx.run.workspace_id, ctx.run.connection_id, [contact.id]
        )
        existing = other.get(contact.id)
        if existing is not None and existing.remote_id not in (None, record.remote_id):
            return None, None  # two CRM records with one address: the first keeps the contact
        return contact, existing if existing is not None else link

    def _local_side(
        self, ctx: _Context, contact: ContactRecord, sources: Mapping[str, FieldSource]
    ) -> LocalSide:
        values = local_values(contact, ctx.mappings)
        times: dict[str, datetime] = {}
        by: dict[str, str] = {}
        for name, value in values.items():
            source = sources.get(name)
            if source is not None and source.digest == self.digest(value):
                times[name] = source.changed_at
                by[name] = source.source
        return LocalSide(values, contact.updated_at, times, by)

    async def _write_contact(
        self,
        ctx: _Context,
        contact: ContactRecord | None,
        record: RemoteRecord,
        plan: RecordPlan,
        progress: Progress,
    ) -> tuple[ContactRecord | None, bool]:
        """Apply the plan's pull: update the contact, or create it from the record (which
        needs an address: without one the record could not be matched again, and each run
        would create another contact)."""
        workspace = ctx.run.workspace_id
        pulled = dict(plan.pull)
        email = pulled.pop("email", KEEP)
        if contact is not None:
            if not plan.pull:
                return contact, False
            change = ContactChange(
                email=normalize_email(email) if email is not KEEP else KEEP,
                traits=pulled if pulled else KEEP,
            )
            try:
                updated = await self._contacts.update(workspace, contact.id, change, self._now())
            except (AlreadyExists, NotFound) as exc:
                ctx.stats.failed += 1
                progress.errors.append(
                    RecordError(f"remote:{record.remote_id}", "pull", exc.message, False)
                )
                return None, False
            ctx.stats.updated += 1
            return updated, False
        address = normalize_email(record.email if email is KEEP else email)
        if address is None:
            ctx.stats.skipped += 1
            progress.errors.append(
                RecordError(
                    f"remote:{record.remote_id}",
                    "pull",
                    "the record has no e-mail address, so no contact is created for it",
                    False,
                )
            )
            return None, False
        traits = {name: value for name, value in pulled.items() if value is not None}
        try:
            created = await self._contacts.create(
                NewContact(workspace_id=workspace, email=address, traits=traits), self._now()
            )
        except AlreadyExists:  # created meanwhile (an event, another run): use that one
            found = await self._contacts.find_by_email(workspace, address)
            if found is None:
                raise
            return found, False
        ctx.stats.created += 1
        return created, True

    def _note_sources(
        self,
        ctx: _Context,
        contact_id: str,
        plan: RecordPlan,
        record: RemoteRecord,
        progress: Progress,
    ) -> None:
        written = []
        for name, value in plan.pull.items():
            digest = self.digest(value)
            if digest is None:
                continue
            remote_name = ctx.mappings[name].remote
            at = record.field_times.get(remote_name, record.modified_at)
            written.append(FieldSource(name, ctx.provider, digest, at))
        if written:
            progress.sources[contact_id] = written

    def _event(
        self,
        ctx: _Context,
        record: RemoteRecord,
        contact: ContactRecord,
        plan: RecordPlan,
        created: bool,
    ) -> Event | None:
        """``crm.contact.created`` or ``crm.contact.updated`` (changed field names only, not
        values: they are personal data, and the contact has them), for triggers and waits."""
        if not created and not plan.pull:
            return None
        if contact.email is None:
            return None
        name = "crm.contact.created" if created else "crm.contact.updated"
        now = self._now()
        return Event(
            workspace_id=ctx.run.workspace_id,
            message_id=(
                f"crm:{ctx.run.connection_id}:{record.remote_id}:{record.modified_at.isoformat()}"
            )[:200],
            type="track",
            name=name,
            anonymous_id=None,
            properties={
                "provider": ctx.provider,
                "connectionId": ctx.run.connection_id,
                "remoteId": record.remote_id,
                "changedFields": sorted(plan.pull),
                "conflicts": [conflict.local_field for conflict in plan.conflicts],
            },
            context={"traits": {"email": contact.email}},
            timestamp=min(record.modified_at, now),
            received_at=now,
        )

    # ------------------------------------------------------------------ phase 3: push

    def _local_until(self) -> tuple[datetime, str]:
        """The end of a push phase starting now: every contact changed until now."""
        return (self._now(), "\uffff")

    async def _push_local_changes(self, ctx: _Context) -> None:
        if ctx.cursor.local_until is None:
            ctx.cursor = replace(ctx.cursor, local_until=self._local_until())
        until = ctx.cursor.local_until
        assert until is not None
        batch_size = ctx.adapter.max_push_batch
        while True:
            changed = await self._contacts.changed_since(
                ctx.run.workspace_id, ctx.cursor.local_after, max(batch_size, 50)
            )
            changed = [c for c in changed if (c.updated_at, c.id) <= until]
            if not changed:
                break
            links = await self._store.links_by_contact(
                ctx.run.workspace_id, ctx.run.connection_id, [c.id for c in changed]
            )
            for start in range(0, len(changed), batch_size):
                chunk = changed[start : start + batch_size]
                progress = Progress({}, {})
                pairs = [(c, links.get(c.id) or SyncLink(c.id, None, {})) for c in chunk]
                await self._push_contacts(ctx, pairs, progress)
                last = chunk[-1]
                ctx.cursor = replace(ctx.cursor, local_after=(last.updated_at, last.id))
                await self._save(ctx, progress)
        next_phase: Phase = "done" if ctx.cursor.push_only else "activities"
        ctx.cursor = replace(ctx.cursor, phase=next_phase)
        await self._save(ctx, Progress({}, {}))

    # ------------------------------------------------------------------ phase 4: activities

    async def _log_activities(self, ctx: _Context) -> None:
        """Log the events ``activityTypes`` names on the CRM records of their contacts, one
        request each, in arrival order; the position is saved after each page. A contact not
        linked to this CRM is skipped (there is no record to log on); an activity the CRM
        refuses is listed in the run's errors and not tried again."""
        types = ctx.config.data_mapping.activity_types
        until = self._now()
        # The first run logs the events from its own creation on: no backfill of history.
        start = ctx.cursor.activities_after or (ctx.run.created_at, "")
        ctx.cursor = replace(ctx.cursor, activities_after=start)
        while types:
            found = await self._store.activity_events(
                ctx.run.workspace_id,
                list(types),
                after=ctx.cursor.activities_after,
                until=until,
                limit=self._options.activity_page,
            )
            if not found:
                break
            links = await self._store.links_by_contact(
                ctx.run.workspace_id, ctx.run.connection_id, [e.contact_id for e in found]
            )
            for event in found:
                link = links.get(event.contact_id)
                progress = Progress({}, {})
                if link is not None and link.remote_id is not None:
                    await self._log_activity(ctx, event, link.remote_id, types, progress)
                # Saved after each one: CRMs take no idempotency key for activities, so a
                # resumed run must not log again what this one logged.
                position = (event.received_at, event.message_id)
                ctx.cursor = replace(ctx.cursor, activities_after=position)
                await self._save(ctx, progress)
        ctx.cursor = replace(ctx.cursor, phase="done")
        await self._save(ctx, Progress({}, {}))

    async def _log_activity(
        self,
        ctx: _Context,
        event: ActivityEvent,
        remote_id: str,
        types: Mapping[str, str],
        progress: Progress,
    ) -> None:
        activity = Activity(
            remote_id=remote_id,
            type=types[event.name],
            subject=f"{event.name} (campaignflow)",
            occurred_at=event.timestamp,
        )
        request = ctx.adapter.activity_request(activity, self._request_context(ctx))
        try:
            await self._send(ctx, request)
        except RefusedRequest as refused:
            ctx.stats.failed += 1
            reason = f"HTTP {refused.response.status}: {str(refused.response.body)[:300]}"
            progress.errors.append(RecordError(f"event:{event.message_id}", "push", reason, False))
            return
        ctx.stats.activities += 1

    async def _push_contacts(
        self,
        ctx: _Context,
        pairs: Sequence[tuple[ContactRecord, SyncLink]],
        progress: Progress,
    ) -> None:
        """Push what changed locally for each contact (its CRM record unchanged since)."""
        pushes: list[_Push] = []
        sources = await self._store.field_sources(ctx.run.workspace_id, [c.id for c, _ in pairs])
        for contact, link in pairs:
            local = self._local_side(ctx, contact, sources.get(contact.id, {}))
            plan = plan_local_changes(
                ctx.mappings, local, state=link.fields, digest=self.digest, now=self._now()
            )
            if not plan.ok:
                ctx.stats.failed += 1
                message = "; ".join(f"{e.local_field}: {e.message}" for e in plan.errors)
                progress.errors.append(RecordError(contact.id, "push", message, False))
                progress.links.append(replace(link, pending_push=False))
                continue
            if not plan.push:
                if link.pending_push:
                    progress.links.append(replace(link, pending_push=False, push_attempts=0))
                continue
            if link.remote_id is None and contact.email is None:
                ctx.stats.skipped += 1
                continue
            after = replace(link, fields={**link.fields, **plan.bases})
            push = PushRecord(contact.id, plan.push, link.remote_id, contact.email)
            pushes.append(_Push(contact, link, after, push))
        await self._send_pushes(ctx, pushes, progress)

    async def _send_pushes(
        self, ctx: _Context, pushes: Sequence[_Push], progress: Progress
    ) -> None:
        """Send the pushes in batches (one by one for retries, so a record the CRM keeps
        refusing cannot fail others again). A refused record keeps the values agreed before
        for the fields it pushed, so the next run sees them changed again, and is marked for
        a retry."""
        if not pushes:
            return
        retrying = any(push.before.pending_push for push in pushes)
        size = 1 if retrying else ctx.adapter.max_push_batch
        group = ctx.adapter.push_group
        groups: dict[str, list[_Push]] = {}
        for push in pushes:
            groups.setdefault(group(push.record) if group else "", []).append(push)
        for members in groups.values():
            for start in range(0, len(members), size):
                await self._push_batch(ctx, members[start : start + size], progress)

    async def _push_batch(self, ctx: _Context, batch: Sequence[_Push], progress: Progress) -> None:
        records = [push.record for push in batch]
        request = ctx.adapter.push_request(records, self._request_context(ctx))
        try:
            response = await self._send(ctx, request)
        except RefusedRequest as refused:
            if len(batch) > 1:  # one bad record must not fail the others: each on its own
                for push in batch:
                    await self._push_batch(ctx, [push], progress)
                return
            response = refused.response
        try:
            results = ctx.adapter.parse_push(records, response)
        except (ClientError, ValueError, KeyError, TypeError):
            results = [
                PushResult(r.key, r.remote_id, error=f"HTTP {response.status}") for r in records
            ]
        for push, result in zip(batch, results, strict=True):
            _replace_link(progress, self._pushed(ctx, push, result, progress))

    def _pushed(
        self, ctx: _Context, push: _Push, result: PushResult, progress: Progress
    ) -> SyncLink:
        if result.ok:
            ctx.stats.pushed += 1
            return replace(
                push.after,
                remote_id=result.remote_id or push.after.remote_id,
                pending_push=False,
                push_attempts=0,
            )
        ctx.stats.failed += 1
        progress.errors.append(
            RecordError(push.contact.id, "push", result.error or "refused", result.retryable)
        )
        pushed = {name for name, m in ctx.mappings.items() if m.remote in push.record.fields}
        fields = {n: base for n, base in push.after.fields.items() if n not in pushed}
        fields.update({n: base for n, base in push.before.fields.items() if n in pushed})
        return replace(
            push.after,
            fields=fields,
            pending_push=True,
            push_attempts=push.before.push_attempts + 1,
        )

    # ------------------------------------------------------------------ requests

    def _request_context(self, ctx: _Context) -> RequestContext:
        return RequestContext(
            idempotency_key=f"sync:{ctx.run.id}",
            tracking={},
            settings=ctx.connection.settings,
            credentials=ctx.connection.credentials,
            now_unix=int(time.time()),
        )

    async def _send(self, ctx: _Context, request: OutboundRequest) -> ProviderResponse:
        delay = self._options.backoff_s
        last: ActionFailed | None = None
        attempt = 0
        while attempt < self._options.attempts:
            sent = time.time()
            try:
                response = await self._sender.send(ctx.connection, request)
            except ActionFailed as exc:
                last = exc
                if not exc.retryable:
                    status = exc.details.get("status")
                    if isinstance(status, int) and status not in _FATAL_STATUSES:
                        raise RefusedRequest(_refused_response(status, exc)) from exc
                    raise SyncFailed(str(exc)) from exc
                wait = exc.retry_after_s if exc.retry_after_s is not None else delay
                if not exc.deferred:
                    attempt += 1
                    delay = min(delay * 2, self._options.max_backoff_s)
                if attempt >= self._options.attempts:
                    break
                await self._store.renew(ctx.run.id, self._owner, self._now() + self._options.lease)
                await self._sleep(min(wait, self._options.max_backoff_s))
                continue
            _note_skew(ctx, response, sent, time.time())
            return response
        raise SyncFailed(f"{ctx.provider}: {last} (after {self._options.attempts} attempts)")

    def _skew(self, ctx: _Context) -> timedelta:
        if len(ctx.skews) < 1:
            return timedelta(0)
        skew = statistics.median(ctx.skews)
        return timedelta(seconds=skew) if abs(skew) > 1.0 else timedelta(0)


def local_values(contact: ContactRecord, mappings: Mapping[str, FieldMapping]) -> dict[str, Scalar]:
    """The contact's mapped values: ``email`` is the contact's address, others its traits
    (a nested trait becomes its JSON text)."""
    values: dict[str, Scalar] = {}
    for name in mappings:
        if name == "email":
            values[name] = contact.email
        else:
            values[name] = any_json(contact.traits.get(name))
    return values


def _note_skew(ctx: _Context, response: ProviderResponse, sent: float, received: float) -> None:
    header = response.headers.get("date")
    if not header:
        return
    try:
        remote = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return
    ctx.skews.append(remote - (sent + received) / 2)
    del ctx.skews[:-50]


def _refused_response(status: int, failure: ActionFailed) -> ProviderResponse:
    """The refusal as the adapter's ``parse_push`` reads answers (the executor keeps the
    first 2 KiB of the body, which holds the CRM's reason)."""
    text = str(failure.details.get("body", ""))
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return ProviderResponse(status, {}, body)


def _pull_error(record: RemoteRecord, plan: RecordPlan) -> RecordError:
    message = "; ".join(f"{e.local_field}: {e.message}" for e in plan.errors)
    return RecordError(f"remote:{record.remote_id}", "pull", message, False)


def _replace_link(progress: Progress, link: SyncLink) -> None:
    progress.links = [kept for kept in progress.links if kept.contact_id != link.contact_id]
    progress.links.append(link)
