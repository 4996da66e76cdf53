"""Pushing contacts to the CRM: what changed locally, in batches, each record answered alone.

A contact's push carries its link as it was and as it will be once the CRM took the values. The
adapter answers per record (Salesforce collections, HubSpot's 207, Pipedrive one by one); a
refusal of a whole batch is retried record by record, so one bad record cannot fail the others.
A refused record keeps the values agreed before for the fields it pushed — its change stays
pending — and is marked for a retry on its own by the next run. Each record the CRM took is a
processing of the person's data (GDPR Art. 30): one entry per record, written per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from campaignflow.domain.contacts import ContactRecord
from campaignflow.domain.processing import Activity, ProcessingEntry, Purpose, recipient_of
from campaignflow.domain.record_merge import plan_local_changes
from campaignflow.errors import CampaignflowError, ClientError
from campaignflow.integrations.crm import PushRecord, PushResult
from campaignflow.integrations.sync.requests import CrmRequests, RefusedRequest
from campaignflow.integrations.sync.run import RunContext, ValueDigests
from campaignflow.store.crm_sync import Progress, RecordError, SyncLink, SyncStore
from campaignflow.store.processing_log import ProcessingLogStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Push:
    """One contact's push: its link before the plan and as it will be once the CRM took it."""

    contact: ContactRecord
    before: SyncLink
    after: SyncLink
    record: PushRecord


class Pusher:
    def __init__(
        self,
        store: SyncStore,
        requests: CrmRequests,
        digest: ValueDigests,
        now: Callable[[], datetime],
        processing: ProcessingLogStore | None = None,
    ) -> None:
        self._store = store
        self._requests = requests
        self._digest = digest
        self._now = now
        self._processing = processing or ProcessingLogStore(store.database)

    async def push_contacts(
        self,
        ctx: RunContext,
        pairs: Sequence[tuple[ContactRecord, SyncLink]],
        progress: Progress,
    ) -> None:
        """Push what changed locally for each contact (its CRM record unchanged since)."""
        pushes: list[Push] = []
        sources = await self._store.field_sources(ctx.run.workspace_id, [c.id for c, _ in pairs])
        for contact, link in pairs:
            local = self._digest.local_side(ctx, contact, sources.get(contact.id, {}))
            plan = plan_local_changes(
                ctx.mappings, local, state=link.fields, digest=self._digest, now=self._now()
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
            pushes.append(Push(contact, link, after, push))
        await self.send(ctx, pushes, progress)

    async def send(self, ctx: RunContext, pushes: Sequence[Push], progress: Progress) -> None:
        """Send the pushes in batches (one by one for retries, so a record the CRM keeps
        refusing cannot fail others again). A refused record keeps the values agreed before
        for the fields it pushed, so the next run sees them changed again, and is marked for
        a retry."""
        if not pushes:
            return
        retrying = any(push.before.pending_push for push in pushes)
        size = 1 if retrying else ctx.adapter.max_push_batch
        group = ctx.adapter.push_group
        groups: dict[str, list[Push]] = {}
        for push in pushes:
            groups.setdefault(group(push.record) if group else "", []).append(push)
        for members in groups.values():
            for start in range(0, len(members), size):
                await self._batch(ctx, members[start : start + size], progress)

    async def _batch(self, ctx: RunContext, batch: Sequence[Push], progress: Progress) -> None:
        records = [push.record for push in batch]
        request = ctx.adapter.push_request(records, self._requests.context(ctx))
        try:
            response = await self._requests.send(ctx, request)
        except RefusedRequest as refused:
            if len(batch) > 1:  # one bad record must not fail the others: each on its own
                for push in batch:
                    await self._batch(ctx, [push], progress)
                return
            response = refused.response
        try:
            results = ctx.adapter.parse_push(records, response)
        except (ClientError, ValueError, KeyError, TypeError):
            results = [
                PushResult(r.key, r.remote_id, error=f"HTTP {response.status}") for r in records
            ]
        for push, result in zip(batch, results, strict=True):
            replace_link(progress, self._pushed(ctx, push, result, progress))
        await self._record(ctx, [push for push, r in zip(batch, results, strict=True) if r.ok])

    async def _record(self, ctx: RunContext, pushed: Sequence[Push]) -> None:
        """The records of processing of the contacts the CRM took (the field names, never
        the values). The CRM has them by now: a failure to write is logged, not raised,
        since failing the run would push them again."""
        if not pushed:
            return
        recipient = recipient_of(ctx.provider, ctx.connection.record.name)
        at = self._now()
        entries = [
            ProcessingEntry.of(
                workspace_id=ctx.run.workspace_id,
                contact_id=push.contact.id,
                occurred_at=at,
                activity=Activity.CRM_SYNC,
                purpose=Purpose.CRM_SYNC,
                recipient=recipient,
                details={"run": ctx.run.id, "fields": sorted(push.record.fields)},
            )
            for push in pushed
        ]
        try:
            await self._processing.add(entries)
        except CampaignflowError:
            logger.warning("sync run %s: processing log not written", ctx.run.id, exc_info=True)

    def _pushed(
        self, ctx: RunContext, push: Push, result: PushResult, progress: Progress
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


def replace_link(progress: Progress, link: SyncLink) -> None:
    progress.links = [kept for kept in progress.links if kept.contact_id != link.contact_id]
    progress.links.append(link)
