"""Contacts as a use case: create, read, list and change them (deleting one is an erasure:
:mod:`campaignflow.services.erasures`).

REST (and later GraphQL) translate onto these methods; the event router resolves contacts in
its own transaction through :meth:`ContactStore.resolve_events`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from campaignflow.domain.contacts import (
    KEEP,
    ContactChange,
    ContactRecord,
    NewContact,
    normalize_email,
    valid_timezone,
)
from campaignflow.errors import InvalidValue
from campaignflow.store.contacts import ContactStore

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ContactService:
    """Rules of the contacts resource over a :class:`ContactStore`."""

    store: ContactStore
    clock: Clock = utc_now

    async def create(self, new: NewContact) -> ContactRecord:
        """Create a contact known by at least one identity; :class:`AlreadyExists` when
        another contact has one of them."""
        new = replace(new, email=_email(new.email), timezone=_zone(new.timezone))
        if not new.identities():
            raise InvalidValue("A contact needs at least one of userId, anonymousId and email.")
        return await self.store.create(new, self.clock())

    async def get(self, workspace_id: str, contact_id: str) -> ContactRecord:
        return await self.store.get(workspace_id, contact_id)

    async def list_contacts(
        self,
        workspace_id: str,
        *,
        email: str | None = None,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[ContactRecord]:
        """Newest first; ``email`` matches whatever its case and surrounding spaces."""
        if email is not None:
            email = normalize_email(email) or email.strip().lower()
        return await self.store.list(
            workspace_id,
            email=email,
            user_id=user_id,
            anonymous_id=anonymous_id,
            before=before,
            limit=limit,
        )

    async def update(
        self, workspace_id: str, contact_id: str, change: ContactChange
    ) -> ContactRecord:
        """Apply a merge patch; a new userId or email must not belong to another contact."""
        if change.email is not KEEP:
            change = replace(change, email=_email(change.email))
        if change.timezone is not KEEP:
            change = replace(change, timezone=_zone(change.timezone))
        return await self.store.update(workspace_id, contact_id, change, self.clock())


def _email(value: str | None) -> str | None:
    """The address lower-cased and stripped; :class:`InvalidValue` if it is none."""
    if value is None:
        return None
    email = normalize_email(value)
    if email is None:
        raise InvalidValue(f"{value!r} is not an email address.")
    return email


def _zone(value: str | None) -> str | None:
    if value is not None and valid_timezone(value) is None:
        raise InvalidValue(f"{value!r} is not an IANA time zone name such as Europe/Berlin.")
    return value
