"""Consent as a use case: read a contact's consent and its history, record what a person said.

REST (and GraphQL, when it grows consent) translate onto these methods; events carry consent
into the store through the router's batch (:meth:`ConsentStore.record_in`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from campaignflow.domain.consent import (
    API_SOURCE,
    MAX_SOURCE_LENGTH,
    ConsentChange,
    ConsentDocument,
    ConsentProof,
    is_purpose,
)
from campaignflow.domain.problems import to_pointer
from campaignflow.errors import InvalidField
from campaignflow.store.consents import ConsentRecord, ConsentStore
from campaignflow.store.workflows import Clock, aware_now, utc_now

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of our clock ``occurredAt`` may be (a client's clock runs a little fast). A
statement dated further ahead would stand against every real one until that date."""


@dataclass(frozen=True, slots=True)
class ConsentStatement:
    """What a client says a person decided: ``{purpose: granted}`` with its circumstances.
    ``occurred_at`` ``None``: now."""

    purposes: Mapping[str, bool]
    source: str = API_SOURCE
    proof: ConsentProof = field(default_factory=ConsentProof)
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsentService:
    """Rules of the consent resource over a :class:`ConsentStore`."""

    store: ConsentStore
    clock: Clock = utc_now

    async def current(self, workspace_id: str, contact_id: str) -> ConsentDocument:
        return await self.store.current(workspace_id, contact_id)

    async def record(
        self, workspace_id: str, contact_id: str, statement: ConsentStatement
    ) -> ConsentDocument:
        """Record the statement (each purpose a change, explicit: a repeat is a
        re-confirmation and is kept); the contact's consent after it. :class:`InvalidField`
        for a purpose that is no identifier or a date too far ahead."""
        now = aware_now(self.clock)
        occurred_at = _checked(statement, now)
        changes = [
            ConsentChange(
                purpose, granted, statement.source, occurred_at, statement.proof, explicit=True
            )
            for purpose, granted in sorted(statement.purposes.items())
        ]
        return await self.store.record(workspace_id, contact_id, changes, now)

    async def history(
        self,
        workspace_id: str,
        contact_id: str,
        *,
        purpose: str | None = None,
        occurred_before: datetime | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[ConsentRecord]:
        """Newest recorded first, after the cursor ``before``; only ``purpose``'s and those
        made before ``occurred_before`` when given."""
        return await self.store.history(
            workspace_id,
            contact_id,
            purpose=purpose,
            occurred_before=occurred_before,
            before=before,
            limit=limit,
        )


def _checked(statement: ConsentStatement, now: datetime) -> datetime:
    """When it occurred (now if not said), after checking what the API's schema checks too:
    this service is also called from outside the API."""
    if not statement.purposes:
        raise InvalidField("Name at least one purpose.", "/purposes")
    for purpose in statement.purposes:
        if not is_purpose(purpose):
            raise InvalidField(
                f"{purpose!r} is not a purpose: a lower-case letter, then up to 63 lower-case "
                "letters, digits or '_'.",
                to_pointer(("purposes", purpose)),
            )
    if not statement.source or len(statement.source) > MAX_SOURCE_LENGTH:
        raise InvalidField(f"The source takes 1 to {MAX_SOURCE_LENGTH} characters.", "/source")
    return _occurred_at(statement.occurred_at, now)


def _occurred_at(given: datetime | None, now: datetime) -> datetime:
    """``given`` in UTC (now if ``None``), between 1970 and a little past ``now``."""
    try:
        occurred_at = (given or now).astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00: no UTC instant represents it
        occurred_at = None
    if occurred_at is None or occurred_at < EARLIEST:
        raise InvalidField("occurredAt is before 1970 or out of range.", "/occurredAt")
    if occurred_at > now + FUTURE_TOLERANCE:
        raise InvalidField(
            "occurredAt is in the future; a statement is recorded when it was made.",
            "/occurredAt",
        )
    return occurred_at
