"""Contacts: who events are about, the identities they are known by, and how two merge.

A contact is known within a workspace by its userId, each of its anonymousIds and its email
(lower-cased, stripped); one identity belongs to one contact. Everything here is pure: time
and new ids are handed in. Resolving a batch of events against the contacts a store loaded for it
lives in :mod:`campaignflow.domain.identity_resolution`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any, Final, Literal

from campaignflow.domain.consent import granted_purposes, merge_documents
from campaignflow.domain.schedules import ScheduleError, check_timezone

IdentityKind = Literal["user_id", "anonymous_id", "email"]
USER_ID: Final = "user_id"
ANONYMOUS_ID: Final = "anonymous_id"
EMAIL: Final = "email"

IdentityKey = tuple[str, str, str]
"""(workspace id, kind, value): the primary key of an identity."""
ContactKey = tuple[str, str]
"""(workspace id, contact id)."""

MAX_EMAIL_LENGTH = 320
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(?:\.[^@\s.]+)+")


@dataclass(frozen=True, slots=True)
class ContactRecord:
    workspace_id: str
    id: str
    user_id: str | None
    email: str | None
    timezone: str | None
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None
    # The consent now, as ``contacts.consent`` holds it ({purpose: {granted, at, source}});
    # read with the contact, written only by the consent store (see domain.consent).
    consent: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> ContactKey:
        return (self.workspace_id, self.id)

    def to_variables(self) -> dict[str, Any]:
        """The contact as CEL's and the templates' ``contact`` variable: its traits, then its
        columns over them (``id``, ``userId``, ``email``, ``timezone``; ``None`` left out),
        and ``consent`` as ``{purpose: granted}``, always present (``has()`` is only needed
        for a purpose, not for the map)."""
        variables = dict(self.traits)
        variables["id"] = self.id
        for name, value in (("userId", self.user_id), ("email", self.email)):
            if value is not None:
                variables[name] = value
        if self.timezone is not None:
            variables["timezone"] = self.timezone
        variables["consent"] = granted_purposes(self.consent)
        return variables


# --------------------------------------------------------------------------- single values


def normalize_email(value: object) -> str | None:
    """``value`` stripped and lower-cased if it looks like an address (``local@domain.tld``,
    at most 320 characters), else ``None``."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email):
        return None
    return email


def valid_timezone(value: object) -> str | None:
    """``value`` if it is an IANA time zone name, else ``None``."""
    if not isinstance(value, str):
        return None
    try:
        check_timezone(value)
    except ScheduleError:
        return None
    return value


def timezone_from(traits: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    """The zone an event declares: ``traits.timezone``, else ``context.timezone``, whichever
    is first a valid IANA name."""
    return valid_timezone(traits.get("timezone")) or valid_timezone(context.get("timezone"))


def merge_traits(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow merge, later wins; a trait set to ``None`` (JSON null) is removed."""
    merged = dict(current)
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, null removes, the rest replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


# --------------------------------------------------------------------------- two contacts


def choose_survivor(
    first: ContactRecord, second: ContactRecord
) -> tuple[ContactRecord, ContactRecord]:
    """(survivor, absorbed) when two contacts turn out to be one person: the one with a userId,
    else the older one (ids are time-ordered, so the id breaks a tie of creation times)."""

    def rank(contact: ContactRecord) -> tuple[bool, datetime, str]:
        return (contact.user_id is None, contact.created_at, contact.id)

    return (first, second) if rank(first) <= rank(second) else (second, first)


def merge_contacts(
    survivor: ContactRecord, absorbed: ContactRecord, now: datetime
) -> ContactRecord:
    """The survivor after absorbing the other: the absorbed traits under its own, its own
    userId, email and time zone where it has them, known since the earlier creation, seen
    last at the later sighting, the later consent per purpose. (Identities, consent history
    and the other rows of the absorbed contact move to it: the store re-points them.)"""
    seen = [at for at in (survivor.last_seen_at, absorbed.last_seen_at) if at is not None]
    return replace(
        survivor,
        user_id=survivor.user_id or absorbed.user_id,
        email=survivor.email or absorbed.email,
        timezone=survivor.timezone or absorbed.timezone,
        traits={**absorbed.traits, **survivor.traits},
        created_at=min(survivor.created_at, absorbed.created_at),
        updated_at=now,
        last_seen_at=max(seen, default=None),
        consent=merge_documents(survivor.consent, absorbed.consent)
        if absorbed.consent
        else survivor.consent,
    )


def mergeable(first: ContactRecord, second: ContactRecord) -> bool:
    """Two contacts may be one person unless each has its own, different userId."""
    return first.user_id is None or second.user_id is None or first.user_id == second.user_id


# --------------------------------------------------------------------------- the API's changes


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact created through the API; it needs at least one identity."""

    workspace_id: str
    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None  # already normalised
    timezone: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)

    def identities(self) -> list[IdentityKey]:
        return [
            (self.workspace_id, kind, value)
            for kind, value in (
                (USER_ID, self.user_id),
                (ANONYMOUS_ID, self.anonymous_id),
                (EMAIL, self.email),
            )
            if value is not None
        ]


class Keep(Enum):
    """A field a :class:`ContactChange` leaves as it is."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP


@dataclass(frozen=True, slots=True)
class ContactChange:
    """A PATCH: fields left at :data:`KEEP` stay, ``None`` clears; ``traits`` is an RFC 7396
    merge patch of the traits (``None`` clears them all)."""

    user_id: str | Keep | None = KEEP
    email: str | Keep | None = KEEP
    timezone: str | Keep | None = KEEP
    traits: Mapping[str, Any] | Keep | None = KEEP


def apply_change(record: ContactRecord, change: ContactChange, now: datetime) -> ContactRecord:
    traits = record.traits
    if change.traits is None:
        traits = {}
    elif change.traits is not KEEP:
        traits = merge_patch(record.traits, change.traits)
    return replace(
        record,
        user_id=record.user_id if change.user_id is KEEP else change.user_id,
        email=record.email if change.email is KEEP else change.email,
        timezone=record.timezone if change.timezone is KEEP else change.timezone,
        traits=traits,
        updated_at=now,
    )


def changed_identities(
    before: ContactRecord, after: ContactRecord
) -> tuple[list[IdentityKey], list[IdentityKey]]:
    """(identities to remove, identities to add) when the userId or email changed."""
    removed: list[IdentityKey] = []
    added: list[IdentityKey] = []
    for kind, old, new in (
        (USER_ID, before.user_id, after.user_id),
        (EMAIL, before.email, after.email),
    ):
        if old != new:
            removed.extend([(before.workspace_id, kind, old)] if old is not None else [])
            added.extend([(after.workspace_id, kind, new)] if new is not None else [])
    return removed, added
