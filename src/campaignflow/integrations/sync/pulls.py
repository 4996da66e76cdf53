"""Applying a page of CRM records: match each to its contact, plan it, write the contact.

A record is matched by the link a previous run made, else by e-mail address (unless that
contact is linked to another record of the CRM); one with an address and no contact creates a
contact (without an address it could not be matched again, and every run would create another).
Each record's plan comes from the pure merge (:mod:`campaignflow.domain.record_merge`); what it
pulls is written to the contact, what it pushes goes to :class:`~.pushes.Pusher`, and what the
CRM changed becomes ``crm.contact.created`` / ``crm.contact.updated`` (changed field names only:
the values are personal data, and the contact has them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from campaignflow.domain.contacts import (
    KEEP,
    ContactChange,
    ContactRecord,
    NewContact,
    normalize_email,
)
from campaignflow.domain.events import Event
from campaignflow.domain.field_merge import MergePolicy
from campaignflow.domain.record_merge import RecordPlan, RemoteSide, plan_record
from campaignflow.errors import AlreadyExists, NotFound
from campaignflow.integrations.crm import PushRecord, RemoteRecord
from campaignflow.integrations.sync.pushes import Push, Pusher
from campaignflow.integrations.sync.run import RunContext, ValueDigests
from campaignflow.store.contacts import ContactStore
from campaignflow.store.crm_sync import FieldSource, Progress, RecordError, SyncLink, SyncStore
from campaignflow.store.erasure import ErasedIdentities

EventSink = Callable[[list[Event]], Awaitable[None]]


@dataclass(slots=True)
class Page:
    """One pull page's working set: what was loaded for it and what it produced."""

    links: dict[str, SyncLink]
    contacts: dict[str, ContactRecord]
    sources: dict[str, dict[str, FieldSource]]
    policy: MergePolicy
    progress: Progress = field(default_factory=lambda: Progress({}, {}))
    events: list[Event] = field(default_factory=list)
    pushes: list[Push] = field(default_factory=list)


class PageApplier:
    def __init__(
        self,
        *,
        store: SyncStore,
        contacts: ContactStore,
        pusher: Pusher,
        publish: EventSink,
        digest: ValueDigests,
        now: Callable[[], datetime],
        erased: ErasedIdentities | None = None,
    ) -> None:
        self._store = store
        self._contacts = contacts
        self._pusher = pusher
        self._publish = publish
        self._digest = digest
        self._now = now
        self._erased = erased

    async def apply(
        self, ctx: RunContext, records: Sequence[RemoteRecord], policy: MergePolicy
    ) -> Progress:
        """Apply one page: the contacts written, the pushes sent, the events published; the
        links, errors and sources to save with the run's cursor are returned."""
        workspace = ctx.run.workspace_id
        links = await self._store.links_by_remote(
            workspace, ctx.run.connection_id, [r.remote_id for r in records]
        )
        contacts = await self._contacts.get_many(
            workspace, [link.contact_id for link in links.values()]
        )
        page = Page(
            links=links,
            contacts=contacts,
            sources=await self._store.field_sources(workspace, list(contacts)),
            policy=policy,
        )
        for record in records:
            ctx.stats.pulled += 1
            await self._apply_record(ctx, record, page)
        await self._pusher.send(ctx, page.pushes, page.progress)
        if page.events:
            # Before the progress is saved: a page processed again after a crash publishes
            # duplicates (the event log drops them by message id) and loses none.
            await self._publish(page.events)
        return page.progress

    async def _apply_record(self, ctx: RunContext, record: RemoteRecord, page: Page) -> None:
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
            else self._digest.local_side(ctx, contact, page.sources.get(contact.id, {}))
        )
        remote = RemoteSide(record.fields, record.modified_at, ctx.provider, record.field_times)
        plan = plan_record(
            ctx.mappings,
            local,
            remote,
            state=link.fields if link is not None else {},
            policy=page.policy,
            digest=self._digest,
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
            page.pushes.append(Push(contact, before, after, push))
        elif not plan.pull and not created:
            ctx.stats.unchanged += 1

    async def _match(
        self, ctx: RunContext, record: RemoteRecord, link: SyncLink | None
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

    async def _write_contact(
        self,
        ctx: RunContext,
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
        refusal = await self._cannot_create(workspace, address)
        if refusal is not None or address is None:
            ctx.stats.skipped += 1
            progress.errors.append(
                RecordError(f"remote:{record.remote_id}", "pull", refusal or "", False)
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

    async def _cannot_create(self, workspace_id: str, address: str | None) -> str | None:
        """Why no contact is created from a record, or ``None``. Without an address the
        record could not be matched again (each run would create another contact); a person
        erased here must not come back (an erasure without propagation leaves them in the
        CRM)."""
        if address is None:
            return "the record has no e-mail address, so no contact is created for it"
        if self._erased is not None:
            key = ("email", self._erased.digest("email", address))
            if await self._erased.erased(workspace_id, [key]):
                return (
                    "the person was erased here (GDPR Art. 17): no contact is created again; "
                    "erase the record in the CRM too"
                )
        return None

    def _note_sources(
        self,
        ctx: RunContext,
        contact_id: str,
        plan: RecordPlan,
        record: RemoteRecord,
        progress: Progress,
    ) -> None:
        written = []
        for name, value in plan.pull.items():
            digest = self._digest(value)
            if digest is None:
                continue
            remote_name = ctx.mappings[name].remote
            at = record.field_times.get(remote_name, record.modified_at)
            written.append(FieldSource(name, ctx.provider, digest, at))
        if written:
            progress.sources[contact_id] = written

    def _event(
        self,
        ctx: RunContext,
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


def _pull_error(record: RemoteRecord, plan: RecordPlan) -> RecordError:
    message = "; ".join(f"{e.local_field}: {e.message}" for e in plan.errors)
    return RecordError(f"remote:{record.remote_id}", "pull", message, False)
