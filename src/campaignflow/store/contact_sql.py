"""The contact store's SQL, written once and named: every statement filters by workspace.

The portable statements (SQLAlchemy Core) serve the API and SQLite. The router's hot path on
PostgreSQL takes arrays instead (see :mod:`pg_batch`): one statement per kind of change, with a
few parameters each, whatever the batch size. Both paths are tested by the same suite.

Reads return the record's columns then ``sealed`` (:data:`STORED_COLUMNS`), which the
:class:`~campaignflow.security.contact_fields.ContactCipher` opens; writes set ``sealed`` and
``key_id`` beside them, and ``email`` identities hold blind-index digests.

Bulk statements bind ``b_``-prefixed names for the row they address (SQLAlchemy reserves the
column names of an UPDATE's SET clause).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import Select, bindparam, delete, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from campaignflow.domain.contacts import ContactRecord
from campaignflow.store.tables import (
    consent_records,
    contacts,
    frequency_ledger,
    processing_log,
)
from campaignflow.store.tables import contact_identities as identities

# In the order of ContactRecord's fields, so a row builds a record positionally.
CONTACT_FIELDS = tuple(field.name for field in fields(ContactRecord))
CONTACT_COLUMNS = tuple(contacts.c[name] for name in CONTACT_FIELDS)
#: What every read selects: the record's columns, then the sealed sensitive fields.
STORED_COLUMNS = (*CONTACT_COLUMNS, contacts.c.sealed)
#: The record's columns the contact writers set: all but ``consent``, which only the consent
#: store writes (under the row's lock), so resolving events never overwrites a concurrent change.
RECORD_WRITTEN = tuple(name for name in CONTACT_FIELDS if name != "consent")
#: What every write sets.
WRITTEN_FIELDS = (*RECORD_WRITTEN, "sealed", "key_id")


def record_of(values: Sequence[Any]) -> ContactRecord:
    """A record from its columns in :data:`CONTACT_FIELDS` order (a null consent: none)."""
    workspace_id, contact_id, user_id, email, zone, traits, created, updated, seen, consent = values
    return ContactRecord(
        workspace_id, contact_id, user_id, email, zone, traits, created, updated, seen,
        consent or {},
    )  # fmt: skip


_CONTACT = (
    contacts.c.workspace_id == bindparam("workspace"),
    contacts.c.id == bindparam("contact"),
)

GET_CONTACT = select(*STORED_COLUMNS).where(*_CONTACT)
LOCK_CONTACT = GET_CONTACT.with_for_update()
INSERT_CONTACTS = insert(contacts)
DELETE_CONTACT = delete(contacts).where(*_CONTACT)
DELETE_IDENTITIES_OF_CONTACT = delete(identities).where(
    identities.c.workspace_id == bindparam("workspace"),
    identities.c.contact_id == bindparam("contact"),
)

# Parameters: the row's b_workspace and b_id, then every column it sets.
UPDATE_CONTACTS = (
    update(contacts)
    .where(
        contacts.c.workspace_id == bindparam("b_workspace"),
        contacts.c.id == bindparam("b_id"),
    )
    .values(
        user_id=bindparam("user_id"),
        email=bindparam("email"),
        timezone=bindparam("timezone"),
        traits=bindparam("traits"),
        created_at=bindparam("created_at"),
        updated_at=bindparam("updated_at"),
        last_seen_at=bindparam("last_seen_at"),
        sealed=bindparam("sealed"),
        key_id=bindparam("key_id"),
    )
)

# Identity rows (workspace_id, kind, value, contact_id, created_at); one that is taken already
# is skipped, and only those inserted come back.
_IDENTITY_KEY = (identities.c.workspace_id, identities.c.kind, identities.c.value)
INSERT_IDENTITIES = {
    "postgresql": postgresql.insert(identities).on_conflict_do_nothing().returning(*_IDENTITY_KEY),
    "sqlite": sqlite.insert(identities).on_conflict_do_nothing().returning(*_IDENTITY_KEY),
}
# Parameters: b_workspace, b_kind, b_value.
DELETE_IDENTITY = delete(identities).where(
    identities.c.workspace_id == bindparam("b_workspace"),
    identities.c.kind == bindparam("b_kind"),
    identities.c.value == bindparam("b_value"),
)
# A merge: every identity of the absorbed contact goes to the survivor. Parameters:
# b_workspace, b_absorbed, b_survivor.
MOVE_IDENTITIES = (
    update(identities)
    .where(
        identities.c.workspace_id == bindparam("b_workspace"),
        identities.c.contact_id == bindparam("b_absorbed"),
    )
    .values(contact_id=bindparam("b_survivor"))
)
# Parameters: b_workspace, b_id.
DELETE_CONTACTS = delete(contacts).where(
    contacts.c.workspace_id == bindparam("b_workspace"), contacts.c.id == bindparam("b_id")
)


def lookup(keys: list[tuple[str, str, str]]) -> Select[Any]:
    """The owners of identities (kind, value, then the contact's columns), portable form."""
    return (
        select(identities.c.kind, identities.c.value, *STORED_COLUMNS)
        .join(
            contacts,
            (contacts.c.workspace_id == identities.c.workspace_id)
            & (contacts.c.id == identities.c.contact_id),
        )
        .where(tuple_(*_IDENTITY_KEY).in_(keys))
        .order_by(contacts.c.workspace_id, contacts.c.id)
        .with_for_update(of=contacts)
    )


def list_contacts(*, email: bool, user_id: bool, anonymous_id: bool, before: bool) -> Select[Any]:
    """Newest first (ids are time-ordered); ``before`` is the last id of the previous page.
    Each identity filter (parameters ``email``, ``user_id``, ``anonymous_id``) keeps the
    contact owning that identity. Parameters: workspace, limit."""
    statement = select(*STORED_COLUMNS).where(contacts.c.workspace_id == bindparam("workspace"))
    for kind, wanted in (("email", email), ("user_id", user_id), ("anonymous_id", anonymous_id)):
        if wanted:
            owner = select(identities.c.contact_id).where(
                identities.c.workspace_id == bindparam("workspace"),
                identities.c.kind == kind,
                identities.c.value == bindparam(kind),
            )
            statement = statement.where(contacts.c.id.in_(owner.scalar_subquery()))
    if before:
        statement = statement.where(contacts.c.id < bindparam("before"))
    return statement.order_by(contacts.c.id.desc()).limit(bindparam("limit"))


# A time trigger's audience, a page at a time in id order. Parameters: workspace, after, limit.
CONTACT_PAGE = (
    select(*STORED_COLUMNS)
    .where(contacts.c.workspace_id == bindparam("workspace"), contacts.c.id > bindparam("after"))
    .order_by(contacts.c.id)
    .limit(bindparam("limit"))
)

# Contacts changed after a (updated_at, id) position, oldest first: a CRM sync's local changes.
# Parameters: workspace, after_at, after_id, limit.
CHANGED_SINCE = (
    select(*STORED_COLUMNS)
    .where(
        contacts.c.workspace_id == bindparam("workspace"),
        tuple_(contacts.c.updated_at, contacts.c.id)
        > tuple_(bindparam("after_at"), bindparam("after_id")),
    )
    .order_by(contacts.c.updated_at, contacts.c.id)
    .limit(bindparam("limit"))
)
# Parameters: workspace, ids (expanding).
CONTACTS_BY_ID = select(*STORED_COLUMNS).where(
    contacts.c.workspace_id == bindparam("workspace"),
    contacts.c.id.in_(bindparam("ids", expanding=True)),
)

# --------------------------------------------------------------------------- sealing old rows

# Rows written before sensitive fields were sealed (migration 0006 marked them), in key order
# after a cursor. Parameters: after_workspace, after_id, limit.
PENDING_SEALING = (
    select(*STORED_COLUMNS)
    .where(
        contacts.c.needs_sealing,
        tuple_(contacts.c.workspace_id, contacts.c.id)
        > tuple_(bindparam("after_workspace"), bindparam("after_id")),
    )
    .order_by(contacts.c.workspace_id, contacts.c.id)
    .limit(bindparam("limit"))
    .with_for_update()
)
# Parameters: b_workspace, b_id, email, traits, sealed, key_id.
SEAL_CONTACT = (
    update(contacts)
    .where(
        contacts.c.workspace_id == bindparam("b_workspace"),
        contacts.c.id == bindparam("b_id"),
    )
    .values(
        email=bindparam("email"),
        traits=bindparam("traits"),
        sealed=bindparam("sealed"),
        key_id=bindparam("key_id"),
        needs_sealing=False,
    )
)
# Email identities still holding an address (digests are base64url: they have no "@").
# Parameters: workspace, contacts (expanding).
PLAIN_EMAIL_IDENTITIES = select(identities.c.workspace_id, identities.c.value).where(
    identities.c.workspace_id == bindparam("workspace"),
    identities.c.contact_id.in_(bindparam("contacts", expanding=True)),
    identities.c.kind == "email",
    identities.c.value.contains("@"),
)
# Parameters: b_workspace, b_value (the address), digest.
DIGEST_IDENTITY = (
    update(identities)
    .where(
        identities.c.workspace_id == bindparam("b_workspace"),
        identities.c.kind == "email",
        identities.c.value == bindparam("b_value"),
    )
    .values(value=bindparam("digest"))
)

# --------------------------------------------------------------------------- key rotation

# Sealed rows not under the active key, in key order after a cursor. Parameters: active,
# after_workspace, after_id, limit.
STALE_SEALED = (
    select(contacts.c.workspace_id, contacts.c.id, contacts.c.sealed)
    .where(
        contacts.c.sealed.is_not(None),
        contacts.c.key_id != bindparam("active"),
        tuple_(contacts.c.workspace_id, contacts.c.id)
        > tuple_(bindparam("after_workspace"), bindparam("after_id")),
    )
    .order_by(contacts.c.workspace_id, contacts.c.id)
    .limit(bindparam("limit"))
)
# Compare-and-set: a contact written meanwhile keeps what that write sealed.
# Parameters: b_workspace, b_id, old, new, new_key_id.
REWRAP_SEALED = (
    update(contacts)
    .where(
        contacts.c.workspace_id == bindparam("b_workspace"),
        contacts.c.id == bindparam("b_id"),
        contacts.c.sealed == bindparam("old"),
    )
    .values(sealed=bindparam("new"), key_id=bindparam("new_key_id"))
)


# --------------------------------------------------------------------------- PostgreSQL arrays

_RETURNED = ", ".join(f"c.{name}" for name in (*CONTACT_FIELDS, "sealed"))

PG_LOOKUP = f"""
SELECT i.kind, i.value, {_RETURNED}
FROM unnest($1::text[], $2::text[], $3::text[]) AS k(workspace_id, kind, value)
CROSS JOIN LATERAL (
  SELECT * FROM contact_identities i
  WHERE i.workspace_id = k.workspace_id AND i.kind = k.kind AND i.value = k.value
  LIMIT 1
) i
JOIN contacts c ON c.workspace_id = i.workspace_id AND c.id = i.contact_id
ORDER BY c.workspace_id, c.id
FOR UPDATE OF c
"""  # noqa: S608 - built from the table's column names, no input
"""Lock the contacts owning the identities, in key order (no deadlock between routers). The
lateral subquery makes each key a primary-key probe: a plain join lets the planner hash the
whole identities table, which it does on a table it has not analysed yet. ``LIMIT 1`` (the key
is unique) keeps the planner from pulling the subquery up into exactly that join."""

PG_INSERT_IDENTITIES = """
INSERT INTO contact_identities (workspace_id, kind, value, contact_id, created_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING workspace_id, kind, value
"""

PG_DELETE_IDENTITIES = """
DELETE FROM contact_identities i
USING unnest($1::text[], $2::text[], $3::text[]) AS k(workspace_id, kind, value)
WHERE i.workspace_id = k.workspace_id AND i.kind = k.kind AND i.value = k.value
"""

PG_MOVE_IDENTITIES = """
UPDATE contact_identities AS i SET contact_id = m.survivor
FROM unnest($1::text[], $2::text[], $3::text[]) AS m(workspace_id, absorbed, survivor)
WHERE i.workspace_id = m.workspace_id AND i.contact_id = m.absorbed
"""

PG_INSERT_CONTACTS = """
INSERT INTO contacts (workspace_id, id, user_id, email, timezone, traits, created_at,
                      updated_at, last_seen_at, sealed, key_id)
SELECT workspace_id, id, user_id, email, timezone, traits::jsonb, created_at, updated_at,
       last_seen_at, sealed, key_id
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[])
     AS v(workspace_id, id, user_id, email, timezone, traits, created_at, updated_at,
          last_seen_at, sealed, key_id)
"""

PG_UPDATE_CONTACTS = """
UPDATE contacts AS c
SET user_id = v.user_id, email = v.email, timezone = v.timezone, traits = v.traits::jsonb,
    created_at = v.created_at, updated_at = v.updated_at, last_seen_at = v.last_seen_at,
    sealed = v.sealed, key_id = v.key_id
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[])
     AS v(workspace_id, id, user_id, email, timezone, traits, created_at, updated_at,
          last_seen_at, sealed, key_id)
WHERE c.workspace_id = v.workspace_id AND c.id = v.id
"""

PG_DELETE_CONTACTS = """
DELETE FROM contacts c
USING unnest($1::text[], $2::text[]) AS k(workspace_id, id)
WHERE c.workspace_id = k.workspace_id AND c.id = k.id
"""


# A merge moves what belonged to the absorbed contact to its survivor (store.contacts).
MOVE_ABSORBED_ROWS = tuple(
    update(table)
    .where(
        table.c.workspace_id == bindparam("b_workspace"),
        table.c.contact_id == bindparam("b_absorbed"),
    )
    .values(contact_id=bindparam("b_survivor"))
    for table in (consent_records, processing_log, frequency_ledger)
)
SET_CONSENT = (
    update(contacts)
    .where(contacts.c.workspace_id == bindparam("b_workspace"), contacts.c.id == bindparam("b_id"))
    .values(consent=bindparam("consent"))
)
