"""Right to erasure, the database side: erasure jobs, a person's rows deleted in bounded
batches, and the digests that keep an erased person out.

A job is held by one worker under a lease, as a CRM sync run is. Every batch of deletions
commits in its own short transaction together with the job's counts (``stats``), and only
while the worker still holds the lease: a job resumed after a crash repeats nothing it
counted, and a worker presumed dead cannot write over its successor.

What the job needs to find the person again after their contact is gone (their identities,
their CRM record ids) is kept *sealed* in ``subject["sealed"]`` until the job is final, then
dropped: the job record keeps only the contact ids and digests. The identity values never
appear in the clear in the job, its API answers or the logs.

Every statement filters by ``workspace_id`` except the claim, which looks across workspaces for
work and hands the workspace back with it.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.domain.contacts import EMAIL, ContactRecord, normalize_email
from campaignflow.errors import NotFound
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.ttl_cache import TTLCache
from campaignflow.store import personal_data as pd
from campaignflow.store.contacts import ContactStore
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.leases import update_if_held
from campaignflow.store.personal_data import Person
from campaignflow.store.tables import (
    contact_identities,
    contacts,
    erased_identities,
    erasure_jobs,
    executions,
    sync_links,
)

ACTIVE_EXECUTIONS = ("pending", "running", "waiting")
DEFAULT_BATCH = 500
EXECUTIONS_PER_BATCH = 100
MAX_ERROR = 1000
_DIGESTS_PER_QUERY = 400  # two parameters each: well under SQLite's bound
PHONE_KEYS = ("phone", "phonenumber", "phone_number", "mobile")


@dataclass(frozen=True, slots=True)
class ErasureJob:
    workspace_id: str
    id: str
    status: str
    subject: dict[str, Any]
    contact_ids: list[str]
    options: dict[str, Any]
    stats: dict[str, Any]
    propagation: dict[str, Any]
    error: str | None
    requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None
    attempts: int

    @property
    def resolved(self) -> bool:
        return bool(self.subject.get("resolved"))

    def public_subject(self) -> dict[str, Any]:
        """The subject as shown: how it was asked (an id or a digest), never the sealed part."""
        return {k: v for k, v in self.subject.items() if k not in ("sealed", "resolved")}


@dataclass(frozen=True, slots=True)
class Identities:
    """The identity values of the person, and their CRM records: what is sealed in the job."""

    user_ids: tuple[str, ...] = ()
    anonymous_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (connection id, CRM record id)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "userIds": self.user_ids,
                "anonymousIds": self.anonymous_ids,
                "emails": self.emails,
                "phones": self.phones,
                "links": self.links,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Identities:
        data = orjson.loads(raw)
        return cls(
            tuple(data["userIds"]),
            tuple(data["anonymousIds"]),
            tuple(data["emails"]),
            tuple(data["phones"]),
            tuple((c, r) for c, r in data["links"]),
        )

    def merged(self, other: Identities) -> Identities:
        def union(a: Sequence[Any], b: Sequence[Any]) -> tuple[Any, ...]:
            return tuple(dict.fromkeys([*a, *b]))

        return Identities(
            union(self.user_ids, other.user_ids),
            union(self.anonymous_ids, other.anonymous_ids),
            union(self.emails, other.emails),
            union(self.phones, other.phones),
            union(self.links, other.links),
        )


def normalize_phone(value: str) -> str:
    """Digits, with a leading ``+`` kept: ``+44 20 7946-0000`` and ``+442079460000`` are one
    number to the erased-identity list."""
    digits = "".join(ch for ch in value if ch.isdigit())
    return ("+" if value.strip().startswith("+") else "") + digits


def phones_of(records: Iterable[ContactRecord]) -> tuple[str, ...]:
    """The contacts' phone numbers, normalised, from the traits that hold one
    (:data:`PHONE_KEYS`): what an erasure stops and an export finds them by."""
    phones = (
        normalize_phone(str(value))
        for record in records
        for name, value in record.traits.items()
        if name.casefold() in PHONE_KEYS and value
    )
    return tuple(dict.fromkeys(phone for phone in phones if phone.strip("+")))


def identity_digest(cipher: ContactCipher, kind: str, value: str) -> str:
    """The keyed digest an erased identity is kept as. An email's is the blind index of the
    address (the one contact identities and the suppression list use, so the executor's
    suppression check can match it); the others are keyed digests under the same blind-index
    key, qualified by kind so equal values of two kinds differ."""
    if kind == EMAIL:
        return cipher.email_digest(value)
    return cipher.value_digest(orjson.dumps(["erased-identity", kind, value]).decode())


def erasure_context(workspace_id: str, job_id: str) -> str:
    return f"erasure:{workspace_id}/{job_id}"


_COLUMNS = tuple(erasure_jobs.c[name] for name in ErasureJob.__dataclass_fields__)


class ErasureStore:
    """Erasure jobs and the deletions they run, on a :class:`Database`."""

    def __init__(self, database: Database, cipher: ContactCipher) -> None:
        self.database = database
        self.cipher = cipher

    # ------------------------------------------------------------------ jobs

    async def create(
        self,
        workspace_id: str,
        subject: Mapping[str, Any],
        options: Mapping[str, Any],
        *,
        identities: Identities | None,
        requested_by: str | None,
        now: datetime,
    ) -> ErasureJob:
        """Queue a job. ``identities`` (an email or userId asked for) is sealed into it."""
        job_id = new_id()
        document = dict(subject)
        if identities is not None:
            document["sealed"] = self._seal(workspace_id, job_id, identities)
        values: dict[str, Any] = {
            "workspace_id": workspace_id,
            "id": job_id,
            "status": "queued",
            "subject": document,
            "contact_ids": [],
            "options": dict(options),
            "stats": {},
            "propagation": {},
            "error": None,
            "requested_by": requested_by,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "lease_owner": None,
            "lease_until": None,
            "attempts": 0,
        }
        async with self.database.transaction() as connection:
            await connection.execute(erasure_jobs.insert().values(**values))
        return _job(values)

    async def get(self, workspace_id: str, job_id: str) -> ErasureJob:
        query = select(*_COLUMNS).where(
            erasure_jobs.c.workspace_id == workspace_id, erasure_jobs.c.id == job_id
        )
        async with self.database.read() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            raise NotFound(f"Erasure {job_id!r} does not exist.")
        return _job(row._mapping)

    async def list(
        self, workspace_id: str, *, before: str | None, limit: int
    ) -> builtins.list[ErasureJob]:
        """Newest first (ids are time-ordered), older than the id ``before``."""
        query = select(*_COLUMNS).where(erasure_jobs.c.workspace_id == workspace_id)
        if before is not None:
            query = query.where(erasure_jobs.c.id < before)
        query = query.order_by(erasure_jobs.c.id.desc()).limit(limit)
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [_job(row._mapping) for row in rows]

    async def claim(
        self, owner: str, now: datetime, lease: timedelta, *, max_attempts: int
    ) -> ErasureJob | None:
        """Take a queued job, a running one whose worker's lease ran out (it resumes), or a
        ``partial`` one due for another attempt at its propagation. ``FOR UPDATE SKIP LOCKED``
        on PostgreSQL; a compare-and-set on SQLite (one writer at a time anyway)."""
        takeable = or_(
            erasure_jobs.c.status == "queued",
            and_(erasure_jobs.c.status == "running", erasure_jobs.c.lease_until < now),
            and_(
                erasure_jobs.c.status == "partial",
                erasure_jobs.c.attempts < max_attempts,
                erasure_jobs.c.lease_until < now,
            ),
        )
        query = (
            select(erasure_jobs.c.workspace_id, erasure_jobs.c.id, erasure_jobs.c.started_at)
            .where(takeable)
            .order_by(erasure_jobs.c.created_at)
            .limit(1)
        )
        if self.database.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        async with self.database.transaction() as connection:
            row = (await connection.execute(query)).first()
            if row is None:
                return None
            workspace_id, job_id, started_at = row
            statement = (
                update(erasure_jobs)
                .where(
                    erasure_jobs.c.workspace_id == workspace_id,
                    erasure_jobs.c.id == job_id,
                    takeable,
                )
                .values(
                    status="running",
                    lease_owner=owner,
                    lease_until=now + lease,
                    attempts=erasure_jobs.c.attempts + 1,
                    started_at=started_at or now,
                    error=None,
                )
                .returning(*_COLUMNS)
            )
            taken = (await connection.execute(statement)).first()
        return None if taken is None else _job(taken._mapping)

    async def renew(self, job: ErasureJob, owner: str, until: datetime) -> None:
        async with self.database.transaction() as connection:
            await self._hold(connection, job, owner, lease_until=until)

    async def finish(
        self,
        job: ErasureJob,
        owner: str,
        *,
        status: str,
        stats: Mapping[str, Any],
        propagation: Mapping[str, Any],
        error: str | None,
        now: datetime,
        retry_at: datetime | None = None,
    ) -> None:
        """End the attempt. A final job drops its sealed identities; a ``partial`` one with
        attempts left keeps them, for the next attempt at the propagation (due at
        ``retry_at``)."""
        subject = dict(job.subject)
        if retry_at is None:
            subject.pop("sealed", None)
        async with self.database.transaction() as connection:
            await self._hold(
                connection,
                job,
                owner,
                status=status,
                subject=subject,
                stats=dict(stats),
                propagation=dict(propagation),
                error=None if error is None else error[:MAX_ERROR],
                finished_at=now,
                lease_owner=None,
                lease_until=retry_at,
            )

    # ------------------------------------------------------------------ resolving the subject

    def identities_of(self, job: ErasureJob) -> Identities:
        sealed = job.subject.get("sealed")
        if sealed is None:
            return Identities()
        context = erasure_context(job.workspace_id, job.id)
        return Identities.from_json(self.cipher.sealer.open(sealed, context=context))

    async def resolve(self, job: ErasureJob, owner: str) -> ErasureJob:
        """Find the contacts of the subject and all their identities and CRM records, and keep
        them (sealed) in the job, so a resumed job still knows them once the contacts are
        gone. A job already resolved is returned as it is."""
        if job.resolved:
            return job
        asked = self.identities_of(job)
        contact_ids = await self._contacts_of(job, asked)
        found = asked.merged(await self._identities_of_contacts(job.workspace_id, contact_ids))
        subject = {**job.subject, "resolved": True}
        subject["sealed"] = self._seal(job.workspace_id, job.id, found)
        stats = {**job.stats, "contactsFound": len(contact_ids)}
        async with self.database.transaction() as connection:
            await self._hold(
                connection, job, owner, subject=subject, contact_ids=contact_ids, stats=stats
            )
        return replace(job, subject=subject, contact_ids=contact_ids, stats=stats)

    def person(self, job: ErasureJob) -> Person:
        found = self.identities_of(job)
        return Person(
            job.workspace_id,
            contact_ids=tuple(job.contact_ids),
            user_ids=found.user_ids,
            anonymous_ids=found.anonymous_ids,
            emails=found.emails,
            phones=found.phones,
            remote_ids=tuple(remote for _, remote in found.links),
        )

    async def _contacts_of(self, job: ErasureJob, asked: Identities) -> builtins.list[str]:
        ids: builtins.list[str] = []
        if "contactId" in job.subject:
            ids.append(str(job.subject["contactId"]))
        keys = [("user_id", value) for value in asked.user_ids]
        keys += [(EMAIL, self.cipher.email_digest(value)) for value in asked.emails]
        query = select(contact_identities.c.contact_id)
        async with self.database.read() as connection:
            for kind, value in keys:
                found = query.where(
                    contact_identities.c.workspace_id == job.workspace_id,
                    contact_identities.c.kind == kind,
                    contact_identities.c.value == value,
                )
                ids.extend(row.contact_id for row in (await connection.execute(found)).all())
            if "contactId" in job.subject:  # a contact id that does not exist names nobody
                existing = await _existing_contacts(connection, job.workspace_id, ids)
                ids = [i for i in ids if i in existing]
        return builtins.list(dict.fromkeys(ids))

    async def _identities_of_contacts(
        self, workspace_id: str, contact_ids: Sequence[str]
    ) -> Identities:
        if not contact_ids:
            return Identities()
        records = await ContactStore(self.database, self.cipher).get_many(workspace_id, contact_ids)
        emails = [r.email for r in records.values() if r.email]
        identity_query = select(contact_identities.c.kind, contact_identities.c.value).where(
            contact_identities.c.workspace_id == workspace_id,
            contact_identities.c.contact_id.in_(contact_ids),
            contact_identities.c.kind.in_(("user_id", "anonymous_id")),
        )
        link_query = select(sync_links.c.connection_id, sync_links.c.remote_id).where(
            sync_links.c.workspace_id == workspace_id,
            sync_links.c.contact_id.in_(contact_ids),
            sync_links.c.remote_id.is_not(None),
        )
        async with self.database.read() as connection:
            identities = (await connection.execute(identity_query)).all()
            links = (await connection.execute(link_query)).all()
        return Identities(
            user_ids=tuple(v for k, v in identities if k == "user_id"),
            anonymous_ids=tuple(v for k, v in identities if k == "anonymous_id"),
            emails=tuple(dict.fromkeys(e for e in (normalize_email(x) for x in emails) if e)),
            phones=phones_of(records.values()),
            links=tuple((c, r) for c, r in links),
        )

    # ------------------------------------------------------------------ the erasure

    async def remember(self, job: ErasureJob, person: Person, now: datetime) -> int:
        """Write the digests of every identity of the person to ``erased_identities`` (an
        event naming one is dropped at ingestion; an address is refused like a suppressed
        one). Idempotent; the number of digests new to the list."""
        kinds = (
            ("user_id", person.user_ids),
            ("anonymous_id", person.anonymous_ids),
            (EMAIL, person.emails),
            ("phone", person.phones),
        )
        rows = {
            (kind, identity_digest(self.cipher, kind, value)): {
                "workspace_id": job.workspace_id,
                "kind": kind,
                "digest": identity_digest(self.cipher, kind, value),
                "erasure_id": job.id,
                "created_at": now,
            }
            for kind, values in kinds
            for value in values
        }
        if not rows:
            return 0
        dialect_insert = (
            postgresql.insert if self.database.dialect == "postgresql" else sqlite.insert
        )
        statement = dialect_insert(erased_identities).on_conflict_do_nothing()
        async with self.database.transaction() as connection:
            result = await connection.execute(statement, builtins.list(rows.values()))
        return max(result.rowcount, 0)

    async def erase(
        self, job: ErasureJob, owner: str, person: Person, now: datetime, batch: int
    ) -> dict[str, Any]:
        """Delete every row of ``person`` (:data:`personal_data.PERSONAL_DATA`), active
        executions cancelled first; the job's counts per table afterwards."""
        stats = dict(job.stats)
        while True:
            ids = await self._execution_page(person, EXECUTIONS_PER_BATCH)
            if not ids:
                break
            page = replace(person, execution_ids=tuple(ids))
            await self._cancel(job, owner, page, stats, now)
            for entry in pd.EXECUTION_CHILDREN:
                await self._drain(job, owner, entry, page, stats=stats, batch=batch)
            executions_of_page = pd.PersonalTable(
                executions, pd.Locator.EXECUTION, "id", pd.EXECUTIONS.holds
            )
            await self._drain(
                job, owner, executions_of_page, page, stats=stats, batch=batch, name="executions"
            )
        for entry in pd.PERSON_TABLES:
            await self._drain(job, owner, entry, person, stats=stats, batch=batch)
        return stats

    async def _execution_page(self, person: Person, limit: int) -> builtins.list[str]:
        query = (
            select(executions.c.id)
            .where(pd.condition(pd.EXECUTIONS, person))
            .order_by(executions.c.id)
            .limit(limit)
        )
        async with self.database.read() as connection:
            return builtins.list((await connection.execute(query)).scalars())

    async def _cancel(
        self, job: ErasureJob, owner: str, page: Person, stats: dict[str, Any], now: datetime
    ) -> None:
        """Cancel the page's active executions: the revision moves, so a worker holding one
        of them writes nothing back (its compare-and-set fails) and its tasks go."""
        statement = (
            update(executions)
            .where(
                executions.c.workspace_id == page.workspace_id,
                executions.c.id.in_(page.execution_ids),
                executions.c.status.in_(ACTIVE_EXECUTIONS),
            )
            .values(
                status="cancelled",
                revision=executions.c.revision + 1,
                finished_at=now,
                updated_at=now,
                exit_reason={"reason": "erasure"},
            )
        )
        async with self.database.transaction() as connection:
            cancelled = (await connection.execute(statement)).rowcount
            if cancelled:
                stats["executionsCancelled"] = stats.get("executionsCancelled", 0) + cancelled
                await self._hold(connection, job, owner, stats=stats)

    async def _drain(
        self,
        job: ErasureJob,
        owner: str,
        entry: pd.PersonalTable,
        person: Person,
        *,
        stats: dict[str, Any],
        batch: int,
        name: str | None = None,
    ) -> None:
        """Delete the person's rows of one table, ``batch`` rows per transaction, each with
        the updated counts and only while ``owner`` holds the job."""
        key = str(name or entry.table.name)  # a plain str: orjson refuses subclasses as keys
        while True:
            async with self.database.transaction() as connection:
                deleted = (await connection.execute(pd.delete_batch(entry, person, batch))).rowcount
                if deleted:
                    stats[key] = stats.get(key, 0) + deleted
                    await self._hold(connection, job, owner, stats=stats)
            if deleted < batch:
                return

    # ------------------------------------------------------------------ internals

    def _seal(self, workspace_id: str, job_id: str, identities: Identities) -> str:
        context = erasure_context(workspace_id, job_id)
        return self.cipher.sealer.seal(identities.to_json(), context=context)

    async def _hold(
        self, connection: AsyncConnection, job: ErasureJob, owner: str, **values: Any
    ) -> None:
        key = (erasure_jobs.c.workspace_id == job.workspace_id, erasure_jobs.c.id == job.id)
        await update_if_held(connection, erasure_jobs, key, owner, f"erasure {job.id}", **values)


async def _existing_contacts(
    connection: AsyncConnection, workspace_id: str, ids: Iterable[str]
) -> set[str]:
    query = select(contacts.c.id).where(
        contacts.c.workspace_id == workspace_id, contacts.c.id.in_(builtins.list(ids))
    )
    return set((await connection.execute(query)).scalars())


def _job(row: Mapping[Any, Any]) -> ErasureJob:
    values = dict(row)
    values["subject"] = dict(values["subject"] or {})
    values["contact_ids"] = builtins.list(values["contact_ids"] or [])
    values["options"] = dict(values["options"] or {})
    values["stats"] = dict(values["stats"] or {})
    values["propagation"] = dict(values["propagation"] or {})
    return ErasureJob(**values)


class ErasedIdentities:
    """Is an identity on a workspace's erased list? Ingestion asks once per batch.

    Whether a workspace has erased anyone at all is remembered for ``cache_seconds``: the
    common case (nobody erased) costs no query. An erasure takes effect in other processes
    within that time (its job writes the digests before it deletes anything).
    """

    def __init__(
        self, database: Database, cipher: ContactCipher, cache_seconds: float = 5.0
    ) -> None:
        self._db = database
        self._cipher = cipher
        self._any: TTLCache[str, bool] = TTLCache(cache_seconds)

    def digest(self, kind: str, value: str) -> str:
        return identity_digest(self._cipher, kind, value)

    async def erased(self, workspace_id: str, keys: Iterable[tuple[str, str]]) -> set[str]:
        """Which of the ``(kind, digest)`` pairs are erased, as the set of their digests."""
        wanted = sorted(set(keys))
        if not wanted or not await self._any.get(workspace_id, self._loader(workspace_id)):
            return set()
        found: set[str] = set()
        async with self._db.read() as connection:
            for start in range(0, len(wanted), _DIGESTS_PER_QUERY):
                chunk = wanted[start : start + _DIGESTS_PER_QUERY]
                query = select(erased_identities.c.digest).where(
                    erased_identities.c.workspace_id == workspace_id,
                    tuple_(erased_identities.c.kind, erased_identities.c.digest).in_(chunk),
                )
                found.update((await connection.execute(query)).scalars())
        return found

    def _loader(self, workspace_id: str) -> Callable[[], Awaitable[bool]]:
        async def any_erased() -> bool:
            query = (
                select(erased_identities.c.digest)
                .where(erased_identities.c.workspace_id == workspace_id)
                .limit(1)
            )
            async with self._db.read() as connection:
                return (await connection.execute(query)).first() is not None

        return any_erased
