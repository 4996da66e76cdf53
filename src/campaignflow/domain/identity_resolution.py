"""Resolving a batch of events to contacts, in order, without I/O.

:class:`BatchResolver` applies a batch of events to the contacts a store loaded for it and
says what to write (:class:`ResolutionPlan`), so the store runs a constant number of statements
whatever the batch size. Time and new ids are handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from campaignflow.domain.contacts import (
    ANONYMOUS_ID,
    EMAIL,
    USER_ID,
    ContactKey,
    ContactRecord,
    IdentityKey,
    choose_survivor,
    merge_contacts,
    merge_traits,
    mergeable,
    normalize_email,
    timezone_from,
)
from campaignflow.domain.events import Event


def email_identity(event: Event) -> str | None:
    """The address a ``track`` event with neither userId nor anonymousId is known by: its
    ``context.traits.email``, normalised. Provider webhooks (an open, a bounce) name the
    recipient by address only; this lets them reach the contact holding that email."""
    if event.type != "track" or event.user_id or event.anonymous_id:
        return None
    traits = event.context.get("traits")
    return normalize_email(traits.get("email")) if isinstance(traits, dict) else None


def identity_keys(events: Iterable[Event]) -> set[IdentityKey]:
    """Every identity a batch mentions: what the store loads before resolving it. An alias's
    previousId may be a userId or an anonymousId, so both are looked up."""
    keys: set[IdentityKey] = set()
    for event in events:
        workspace = event.workspace_id
        if event.user_id:
            keys.add((workspace, USER_ID, event.user_id))
        if event.anonymous_id:
            keys.add((workspace, ANONYMOUS_ID, event.anonymous_id))
        if (address := email_identity(event)) is not None:
            keys.add((workspace, EMAIL, address))
        if event.type == "alias" and event.previous_id:
            keys.add((workspace, USER_ID, event.previous_id))
            keys.add((workspace, ANONYMOUS_ID, event.previous_id))
        if event.type == "identify":
            email = normalize_email(event.traits.get("email"))
            if email is not None:
                keys.add((workspace, EMAIL, email))
    return keys


@dataclass(frozen=True, slots=True)
class ResolutionPlan:
    """What resolving a batch changes, ready for bulk statements."""

    records: list[ContactRecord]  # one per event, in order
    inserts: list[ContactRecord]  # new contacts
    updates: list[ContactRecord]  # loaded contacts that changed (or were seen later)
    absorbed: list[tuple[str, str, str]]  # (workspace, absorbed id, survivor id)
    new_identities: list[tuple[str, str, str, str]]  # (workspace, kind, value, contact id)
    removed_identities: list[IdentityKey]


SIGHTING_GRANULARITY = timedelta(minutes=5)
"""``last_seen_at`` of a contact that changes nothing else moves in steps of at least this."""


def _sighted(contact: ContactRecord, at: datetime) -> ContactRecord:
    """``contact`` last seen ``at``: :func:`dataclasses.replace` without its cost, since this
    runs for (nearly) every event of a batch."""
    c = contact
    return ContactRecord(
        c.workspace_id, c.id, c.user_id, c.email, c.timezone, c.traits, c.created_at,
        c.updated_at, at, c.consent,
    )  # fmt: skip


def _key(workspace_id: str, kind: str, value: str | None) -> IdentityKey | None:
    return (workspace_id, kind, value) if value else None


class BatchResolver:
    """Applies events, in order, to the contacts loaded for them; :meth:`plan` says what to
    write. Rules per event type:

    - ``identify``: the contacts owning its userId, anonymousId and email (those without
      another userId) merge into one; it gets the identities not yet taken, the traits
      (shallow merge, null removes), the email and time zone the traits (or context) declare.
    - ``alias``: the contact of ``previousId`` (a userId or an anonymousId) merges into the
      userId's contact; an unknown userId is given to the previousId's contact instead, and
      an unknown previousId is attached to the userId's contact as an anonymousId.
    - ``track``, ``page``, ``screen``: the userId's contact (or the anonymousId's, when it has
      no userId yet); new identities of the event are attached to it. No trait changes. A
      ``track`` with neither id but an address (:func:`email_identity`) goes to the contact
      with that email, or to a new contact holding it.
    - ``group``: the contact as for ``track``, with no change but the sighting.

    Unknown identities make new contacts; every contact's ``last_seen_at`` is its latest event.
    """

    def __init__(
        self,
        contacts: Iterable[ContactRecord],
        owners: Mapping[IdentityKey, str],
        *,
        looked_up: Iterable[IdentityKey],
        now: datetime,
        new_id: Callable[[], str],
    ) -> None:
        self._now = now
        self._new_id = new_id
        self._contacts = {contact.key: contact for contact in contacts}
        self._loaded = frozenset(self._contacts)
        self._owner = {key: (key[0], contact_id) for key, contact_id in owners.items()}
        self._original = dict(self._owner)
        self._looked_up = frozenset(looked_up)
        self._merged_into: dict[ContactKey, ContactKey] = {}
        self._changed: set[ContactKey] = set()
        self._results: list[ContactRecord] = []

    def apply(self, event: Event) -> ContactRecord:
        if event.type == "identify":
            contact = self._identify(event)
        elif event.type == "alias" and event.user_id and event.previous_id:
            contact = self._alias(event, event.user_id, event.previous_id)
        else:
            contact = self._visit(event, attach=event.type in ("track", "page", "screen"))
        if self._sighting_due(contact, event.timestamp):
            contact = self._put(_sighted(contact, event.timestamp))
        self._results.append(contact)
        return contact

    def plan(self) -> ResolutionPlan:
        inserts, updates, absorbed = [], [], []
        for key, contact in self._contacts.items():
            final = self._find(key)
            if final != key:
                if key in self._loaded:
                    absorbed.append((key[0], key[1], final[1]))
            elif key not in self._loaded:
                inserts.append(contact)
            elif key in self._changed:
                updates.append(contact)
        added, removed = self._identity_changes()
        records = [
            self._contacts[self._find(r.key)] if r.key in self._merged_into else r
            for r in self._results
        ]
        return ResolutionPlan(records, inserts, updates, absorbed, added, removed)

    # ------------------------------------------------------------------ event types

    def _visit(self, event: Event, *, attach: bool) -> ContactRecord:
        workspace = event.workspace_id
        user = _key(workspace, USER_ID, event.user_id)
        anonymous = _key(workspace, ANONYMOUS_ID, event.anonymous_id)
        if user is None and anonymous is None and (address := email_identity(event)):
            return self._by_email(workspace, address)
        contact = self._owned(user)
        if contact is None:
            candidate = self._owned(anonymous)
            if candidate is not None and (user is None or candidate.user_id is None):
                contact = candidate
        if contact is None:
            return self._create(workspace, user, anonymous)
        if attach:
            contact = self._claim(self._claim(contact, user), anonymous)
        return contact

    def _by_email(self, workspace: str, email: str) -> ContactRecord:
        """The contact with this email, else a new one holding it (so the next event with the
        address, or an identify that declares it, finds this one: no duplicate)."""
        key = (workspace, EMAIL, email)
        return self._owned(key) or self._create(workspace, key, email=email)

    def _identify(self, event: Event) -> ContactRecord:
        workspace, user_id = event.workspace_id, event.user_id or None
        email = normalize_email(event.traits.get("email"))
        keys = (
            _key(workspace, USER_ID, user_id),
            _key(workspace, ANONYMOUS_ID, event.anonymous_id),
            _key(workspace, EMAIL, email),
        )
        contact = self._owned(keys[0])
        for key in keys[1:]:
            other = self._owned(key)
            if other is None or (contact is not None and other.key == contact.key):
                continue
            if user_id is not None and other.user_id not in (None, user_id):
                continue  # another user's device or address: not this person
            if contact is None:
                contact = other
            elif mergeable(contact, other):
                contact = self._merge(*choose_survivor(contact, other))
        if contact is None:
            contact = self._create(workspace)
        contact = self._claim(self._claim(contact, keys[0]), keys[1])
        return self._update_profile(contact, event, email)

    def _alias(self, event: Event, user_id: str, previous_id: str) -> ContactRecord:
        workspace = event.workspace_id
        user = (workspace, USER_ID, user_id)
        target = self._owned(user)
        previous = self._owned((workspace, USER_ID, previous_id)) or self._owned(
            (workspace, ANONYMOUS_ID, previous_id)
        )
        if target is None and previous is not None:
            target = self._put(replace(previous, user_id=user_id, updated_at=self._now))
        elif target is not None and previous is not None and previous.key != target.key:
            target = self._merge(target, previous)
        if target is None:
            target = self._create(workspace)
        target = self._claim(target, user)
        if previous is None:
            target = self._claim(target, (workspace, ANONYMOUS_ID, previous_id))
        return target

    # ------------------------------------------------------------------ changes

    def _update_profile(
        self, contact: ContactRecord, event: Event, email: str | None
    ) -> ContactRecord:
        """An identify's traits, email and time zone."""
        traits = merge_traits(contact.traits, event.traits)
        zone = timezone_from(event.traits, event.context)
        if zone is None:
            cleared = "timezone" in event.traits and event.traits["timezone"] is None
            zone = None if cleared else contact.timezone
        address = contact.email
        if "email" in event.traits and event.traits["email"] is None:
            address = None
        elif email is not None:
            owner = self._owned((contact.workspace_id, EMAIL, email))
            address = email if owner is None or owner.key == contact.key else address
        if address != contact.email:
            self._set_email(contact, address)
        if (traits, zone, address) == (contact.traits, contact.timezone, contact.email):
            return contact
        return self._put(
            replace(contact, traits=traits, timezone=zone, email=address, updated_at=self._now)
        )

    def _set_email(self, contact: ContactRecord, address: str | None) -> None:
        """Replace the identity of the contact's email (those acquired by merges stay)."""
        if contact.email is not None:
            old = (contact.workspace_id, EMAIL, contact.email)
            owner = self._owner.get(old)
            if owner is None and old not in self._original and old not in self._looked_up:
                self._original[old] = contact.key  # not loaded, but the contact's own
            elif owner is not None and self._find(owner) == contact.key:
                del self._owner[old]
        if address is not None:
            self._owner.setdefault((contact.workspace_id, EMAIL, address), contact.key)

    def _create(
        self, workspace_id: str, *keys: IdentityKey | None, email: str | None = None
    ) -> ContactRecord:
        """A new contact with those of ``keys`` nobody has (its userId, if one is free;
        ``email`` only with its free identity among ``keys``)."""
        free = [key for key in keys if key is not None and key not in self._owner]
        user_id = next((key[2] for key in free if key[1] == USER_ID), None)
        now = self._now
        contact = ContactRecord(
            workspace_id, self._new_id(), user_id, email, None, {}, now, now, None
        )
        self._contacts[contact.key] = contact
        for key in free:
            self._owner[key] = contact.key
        return contact

    def _claim(self, contact: ContactRecord, key: IdentityKey | None) -> ContactRecord:
        """Give ``contact`` the identity unless another contact (or it) has it already."""
        if key is None or key in self._owner:
            return contact
        self._owner[key] = contact.key
        if key[1] == USER_ID and contact.user_id is None:
            return self._put(replace(contact, user_id=key[2], updated_at=self._now))
        return contact

    def _merge(self, survivor: ContactRecord, absorbed: ContactRecord) -> ContactRecord:
        self._merged_into[absorbed.key] = survivor.key
        return self._put(merge_contacts(survivor, absorbed, self._now))

    def _sighting_due(self, contact: ContactRecord, at: datetime) -> bool:
        """Whether ``at`` moves ``last_seen_at``. A contact written anyway (new, or changed in
        this batch) takes every later sighting; one that would be written only for its
        sighting waits until it is :data:`SIGHTING_GRANULARITY` later than the stored one, so
        a busy contact's row is not rewritten for every event it sends."""
        seen = contact.last_seen_at
        if seen is None:
            return True
        if contact.key in self._changed or contact.key not in self._loaded:
            return at > seen
        return at - seen >= SIGHTING_GRANULARITY

    def _put(self, contact: ContactRecord) -> ContactRecord:
        self._contacts[contact.key] = contact
        self._changed.add(contact.key)
        return contact

    # ------------------------------------------------------------------ lookups

    def _find(self, key: ContactKey) -> ContactKey:
        while key in self._merged_into:
            key = self._merged_into[key]
        return key

    def _owned(self, key: IdentityKey | None) -> ContactRecord | None:
        owner = self._owner.get(key) if key is not None else None
        return None if owner is None else self._contacts[self._find(owner)]

    def _identity_changes(self) -> tuple[list[tuple[str, str, str, str]], list[IdentityKey]]:
        """Identities to insert and to delete, beyond those that move with a merged contact."""
        added: list[tuple[str, str, str, str]] = []
        removed: list[IdentityKey] = []
        for key in self._owner.keys() | self._original.keys():
            now_owner = self._owner.get(key)
            after = self._find(now_owner) if now_owner is not None else None
            was = self._original.get(key)
            if after == (self._find(was) if was is not None else None):
                continue
            if was is not None:
                removed.append(key)
            if after is not None:
                added.append((*key, after[1]))
        # In key order: two routers claiming overlapping identities wait for each other in the
        # same order, never in a cycle.
        return sorted(added), sorted(removed)
