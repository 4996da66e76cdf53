"""One CRM sync run, from its cursor to its end: retry failed pushes, pull, push, log activities.

The runner orders the phases and keeps the run's place; the work is in :mod:`.pulls` (applying
a page of CRM records), :mod:`.pushes` (pushing contacts) and :mod:`.requests` (talking to the
CRM through the connector executor). After each page or batch the run's cursor and counts are
saved with the links, errors and field sources of the records it covered, in one transaction
under the run's lease (:meth:`SyncStore.save_progress`), so a run killed mid-way resumes
elsewhere from its last save and repeats no record it finished. When the CRM keeps failing the
run ends ``failed`` and the next starts where this one got to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial

from campaignflow.domain.sync_config import SyncConfig
from campaignflow.errors import NotFound
from campaignflow.integrations.connections import ResolvedConnection
from campaignflow.integrations.crm import Activity
from campaignflow.integrations.sync.cursor import Cursor, Phase
from campaignflow.integrations.sync.pulls import EventSink, PageApplier
from campaignflow.integrations.sync.pushes import Pusher
from campaignflow.integrations.sync.requests import CrmRequests, RefusedRequest, Sender
from campaignflow.integrations.sync.run import (
    RunContext,
    RunnerOptions,
    RunStats,
    SyncFailed,
    ValueDigests,
)
from campaignflow.store.contacts import ContactStore
from campaignflow.store.crm_sync import (
    ActivityEvent,
    Progress,
    RecordError,
    SyncLink,
    SyncRun,
    SyncStore,
)
from campaignflow.store.erasure import ErasedIdentities

__all__ = ["EventSink", "RunnerOptions", "Sender", "SyncRunner"]


class SyncRunner:
    def __init__(
        self,
        *,
        store: SyncStore,
        contacts: ContactStore,
        resolve: Callable[[str, str], Awaitable[ResolvedConnection]],
        sender: Sender,
        publish: EventSink,
        erased: ErasedIdentities,
        owner: str,
        now: Callable[[], datetime],
        options: RunnerOptions | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._contacts = contacts
        self._resolve = resolve
        self._owner = owner
        self._now = now
        self._options = options or RunnerOptions()
        self._digest = ValueDigests(contacts.cipher.value_digest)
        self._requests = CrmRequests(
            sender, store, owner=owner, now=now, options=self._options, sleep=sleep
        )
        self._pusher = Pusher(store, self._requests, self._digest, now)
        self._pages = PageApplier(
            store=store,
            contacts=contacts,
            pusher=self._pusher,
            publish=publish,
            digest=self._digest,
            now=now,
            erased=erased,
        )

    async def run(self, run: SyncRun) -> str:
        """Carry ``run`` (claimed by this worker) to its end; its final status."""
        try:
            ctx = await self._context(run)
        except (SyncFailed, NotFound) as exc:
            await self._finish(run, RunStats.from_document(run.stats), "failed", str(exc))
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

    async def _context(self, run: SyncRun) -> RunContext:
        connection = await self._resolve(run.workspace_id, run.connection_id)
        adapter = connection.connector.sync
        if adapter is None:
            raise SyncFailed(f"{connection.connector.provider} connections do not sync")
        if not connection.record.sync:
            raise SyncFailed("the connection's sync was switched off")
        config = SyncConfig.model_validate(connection.record.sync)
        return RunContext(
            run=run,
            connection=connection,
            adapter=adapter,
            config=config,
            mappings=config.data_mapping.mappings(),
            cursor=Cursor.from_document(run.cursor),
            stats=RunStats.from_document(run.stats),
        )

    async def _finish(self, run: SyncRun, stats: RunStats, status: str, error: str | None) -> None:
        await self._store.finish(
            run, self._owner, status=status, stats=stats.to_document(), error=error, now=self._now()
        )

    async def _save(self, ctx: RunContext, progress: Progress) -> None:
        progress.cursor = ctx.cursor.to_document()
        progress.stats = ctx.stats.to_document()
        now = self._now()
        await self._store.save_progress(ctx.run, self._owner, progress, now)
        await self._store.renew(ctx.run.id, self._owner, now + self._options.lease)

    # ------------------------------------------------------------------ phase 1: retries

    async def _retry_failed_pushes(self, ctx: RunContext) -> None:
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
                await self._pusher.push_contacts(ctx, [(contact, link)], progress)
            await self._save(ctx, progress)
        ctx.cursor = replace(ctx.cursor, phase="push" if ctx.cursor.push_only else "pull")
        await self._save(ctx, Progress({}, {}))

    # ------------------------------------------------------------------ phase 2: pull

    async def _pull(self, ctx: RunContext) -> None:
        since = ctx.cursor.pull_from()
        page: str | None = None
        seen: set[str] = set()
        fields = ctx.remote_fields()
        requests = self._requests
        for _ in range(self._options.max_pages):
            request = ctx.adapter.pull_request(since, page, fields, requests.context(ctx))
            pulled = requests.read(ctx, ctx.adapter.parse_pull, await requests.fetch(ctx, request))
            history = ctx.adapter.history_request
            if history is not None and ctx.adapter.parse_history is not None:
                extra = history(pulled, fields, requests.context(ctx))
                if extra is not None:
                    answer = await requests.fetch(ctx, extra)
                    pulled = requests.read(ctx, partial(ctx.adapter.parse_history, pulled), answer)
            ctx.stats.pages += 1
            policy = ctx.config.merge_policy(requests.skew(ctx))
            progress = await self._pages.apply(ctx, pulled.records, policy)
            if pulled.records:
                newest = max(record.modified_at for record in pulled.records)
                ctx.cursor = ctx.cursor.pulled_up_to(newest)
            await self._save(ctx, progress)
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

    # ------------------------------------------------------------------ phase 3: push

    def _local_until(self) -> tuple[datetime, str]:
        """The end of a push phase starting now: every contact changed until now."""
        return (self._now(), "\uffff")

    async def _push_local_changes(self, ctx: RunContext) -> None:
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
                await self._pusher.push_contacts(ctx, pairs, progress)
                last = chunk[-1]
                ctx.cursor = replace(ctx.cursor, local_after=(last.updated_at, last.id))
                await self._save(ctx, progress)
        next_phase: Phase = "done" if ctx.cursor.push_only else "activities"
        ctx.cursor = replace(ctx.cursor, phase=next_phase)
        await self._save(ctx, Progress({}, {}))

    # ------------------------------------------------------------------ phase 4: activities

    async def _log_activities(self, ctx: RunContext) -> None:
        """Log the events ``activityTypes`` names on the CRM records of their contacts, one
        request each, in arrival order. A contact not linked to this CRM is skipped (there is
        no record to log on); an activity the CRM refuses is listed in the run's errors and
        not tried again."""
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
        ctx: RunContext,
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
        request = ctx.adapter.activity_request(activity, self._requests.context(ctx))
        try:
            await self._requests.send(ctx, request)
        except RefusedRequest as refused:
            ctx.stats.failed += 1
            reason = f"HTTP {refused.response.status}: {str(refused.response.body)[:300]}"
            progress.errors.append(RecordError(f"event:{event.message_id}", "push", reason, False))
            return
        ctx.stats.activities += 1
