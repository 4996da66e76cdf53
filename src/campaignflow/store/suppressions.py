"""The suppression list: addresses no message may go to, kept as blind-index digests only.

An address is stored as the same keyed digest contact email identities use
(:meth:`ContactCipher.email_digest` of the normalised address), so the list answers "is this
address suppressed, and why?" without holding a single address. The first entry for an address
stays (a later bounce does not overwrite an unsubscribe, and a webhook delivered twice adds
nothing); removing it is a deliberate act (the API's ``DELETE``).

Every statement filters by ``workspace_id``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from campaignflow.domain.contacts import normalize_email
from campaignflow.errors import NotFound
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.store.database import Database
from campaignflow.store.tables import erased_identities, suppressions
from campaignflow.store.workflows import Clock, aware_now, utc_now

_SQLITE_DIGESTS_PER_QUERY = 500  # well under SQLite's bound on host parameters
_COLUMNS = (
    suppressions.c.workspace_id,
    suppressions.c.email_digest,
    suppressions.c.reason,
    suppressions.c.source,
    suppressions.c.connection_id,
    suppressions.c.provider_event_id,
    suppressions.c.created_at,
)
_INSERT: dict[str, Insert] = {
    "postgresql": postgresql.insert(suppressions)
    .on_conflict_do_nothing()
    .returning(suppressions.c.email_digest),
    "sqlite": sqlite.insert(suppressions)
    .on_conflict_do_nothing()
    .returning(suppressions.c.email_digest),
}
# An erased person's address (erased_identities, kind email) is refused like a suppressed one:
# the same blind-index digest, so one query answers both.
_SUPPRESSED = union(
    select(suppressions.c.email_digest).where(
        suppressions.c.workspace_id == bindparam("workspace"),
        suppressions.c.email_digest.in_(bindparam("digests", expanding=True)),
    ),
    select(erased_identities.c.digest).where(
        erased_identities.c.workspace_id == bindparam("workspace"),
        erased_identities.c.kind == "email",
        erased_identities.c.digest.in_(bindparam("digests", expanding=True)),
    ),
)


@dataclass(frozen=True, slots=True)
class SuppressionRecord:
    workspace_id: str
    email_digest: str
    reason: str
    source: str
    connection_id: str | None
    provider_event_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewSuppression:
    email: str
    reason: str  # bounce | unsubscribe | spam_report | manual
    source: str  # the provider, or "api"
    connection_id: str | None = None
    provider_event_id: str | None = None


def comparable(email: str) -> str:
    """The form an address is digested in: normalised when it is one, else stripped and
    lower-cased (so a lookup of a malformed address still finds what it would have added)."""
    return normalize_email(email) or email.strip().lower()


class SuppressionStore:
    def __init__(self, database: Database, cipher: ContactCipher, clock: Clock = utc_now) -> None:
        self._db = database
        self._cipher = cipher
        self._clock = clock

    def digest(self, email: str) -> str:
        return self._cipher.email_digest(comparable(email))

    async def suppressed(self, workspace_id: str, emails: Iterable[str]) -> set[str]:
        """Which of ``emails`` (as given) are suppressed, or belong to an erased person: one
        query per few hundred addresses, for the executor to check a send's recipients before
        sending."""
        by_digest: dict[str, list[str]] = {}
        for email in emails:
            by_digest.setdefault(self.digest(email), []).append(email)
        digests = sorted(by_digest)
        found: set[str] = set()
        async with self._db.read() as connection:
            for start in range(0, len(digests), _SQLITE_DIGESTS_PER_QUERY):
                chunk = digests[start : start + _SQLITE_DIGESTS_PER_QUERY]
                params = {"workspace": workspace_id, "digests": chunk}
                found.update((await connection.execute(_SUPPRESSED, params)).scalars())
        return {email for digest in found for email in by_digest[digest]}

    async def get(self, workspace_id: str, email: str) -> SuppressionRecord | None:
        """The entry of ``email``, if it is suppressed."""
        query = select(*_COLUMNS).where(_is(workspace_id, self.digest(email)))
        async with self._db.read() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else SuppressionRecord(**row._mapping)

    async def add(self, workspace_id: str, entries: Sequence[NewSuppression]) -> set[str]:
        """Suppress each address not suppressed yet (the first entry of an address in
        ``entries`` counts); returns the digests this call added."""
        now = aware_now(self._clock)
        rows: dict[str, dict[str, Any]] = {}
        for entry in entries:
            digest = self.digest(entry.email)
            rows.setdefault(digest, _row(workspace_id, digest, entry, now))
        if not rows:
            return set()
        async with self._db.transaction() as connection:
            result = await connection.execute(_INSERT[self._db.dialect], list(rows.values()))
            return set(result.scalars())

    async def remove(self, workspace_id: str, email: str) -> SuppressionRecord:
        """Lift the suppression of ``email``; :class:`NotFound` if it is not suppressed."""
        record = await self.get(workspace_id, email)
        statement = delete(suppressions).where(_is(workspace_id, self.digest(email)))
        async with self._db.transaction() as connection:
            removed = (await connection.execute(statement)).rowcount
        if record is None or not removed:
            raise NotFound("This address is not suppressed.")
        return record

    async def list(
        self,
        workspace_id: str,
        *,
        reason: str | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> builtins.list[SuppressionRecord]:
        """Newest first, starting after (older than) ``before`` = (created_at, digest)."""
        query = select(*_COLUMNS).where(suppressions.c.workspace_id == workspace_id)
        if reason is not None:
            query = query.where(suppressions.c.reason == reason)
        if before is not None:
            at, digest = before
            query = query.where(
                or_(
                    suppressions.c.created_at < at,
                    and_(suppressions.c.created_at == at, suppressions.c.email_digest < digest),
                )
            )
        query = query.order_by(
            suppressions.c.created_at.desc(), suppressions.c.email_digest.desc()
        ).limit(limit)
        async with self._db.read() as connection:
            rows = (await connection.execute(query)).all()
        return [SuppressionRecord(**row._mapping) for row in rows]


def _is(workspace_id: str, digest: str) -> Any:
    return and_(suppressions.c.workspace_id == workspace_id, suppressions.c.email_digest == digest)


def _row(workspace_id: str, digest: str, entry: NewSuppression, now: datetime) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "email_digest": digest,
        "reason": entry.reason,
        "source": entry.source,
        "connection_id": entry.connection_id,
        "provider_event_id": entry.provider_event_id,
        "created_at": now,
    }
