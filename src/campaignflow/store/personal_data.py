"""Where a person's data lives in the database, and how to find (and delete) their rows.

One declarative list, :data:`PERSONAL_DATA`, names every table that can hold a person's data
and how that person's rows are found in it; erasure (:mod:`campaignflow.store.erasure`)
deletes by it and the export reads by it, so a table added to one is added to both.
:data:`NOT_PERSONAL` and :data:`KEPT` account for every other table, with the reason; a unit
test checks that every table of the schema is in exactly one of the three.

A person is a :class:`Person`: the contacts the erasure resolved to, their identity values
(userId, anonymousIds, email, phone) and, once found, the ids of the executions about them.
The lists are in deletion order: rows that locate other rows (executions, sync links,
identities, the contact) go after the rows they locate, so a job that stops half-way finds the
rest again when it resumes. A table may name rows erasure leaves on purpose (``kept``): the
records of processing that prove the erasure reached the providers, which the job writes after
its deletions and which must outlive a retry of it.

Pure: statements are built here and executed by the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Select,
    Table,
    delete,
    false,
    not_,
    or_,
    select,
    tuple_,
)

from campaignflow.domain.processing import Activity
from campaignflow.store import tables as t


class Locator(Enum):
    """How a person's rows are found in a table."""

    CONTACT = "contact"  # a column holds one of the person's contact ids
    SUBJECT = "subject"  # an execution subject: a contact id, or an identity value given by API
    EXECUTION = "execution"  # a column holds the id of one of the person's executions
    EVENT = "event"  # events: by contact id, userId or anonymousId
    IDENTITY_VALUE = "identity_value"  # a free-form key that may be one of their identities
    SYNC_RECORD = "sync_record"  # a sync error's record: a contact id or "remote:<CRM id>"


@dataclass(frozen=True, slots=True)
class PersonalTable:
    table: Table
    locator: Locator
    column: str  # the column the locator matches
    holds: str  # what personal data a row of it can hold, for the docs and the export
    kept: tuple[tuple[str, str], ...] = ()  # (column, value): the person's rows erasure keeps


@dataclass(frozen=True, slots=True)
class Person:
    """Everything the rows of one person are found by, within one workspace."""

    workspace_id: str
    contact_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    anonymous_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()  # normalised
    phones: tuple[str, ...] = ()
    execution_ids: tuple[str, ...] = ()
    remote_ids: tuple[str, ...] = field(default=())  # their CRM record ids (sync links)

    @property
    def subjects(self) -> tuple[str, ...]:
        """What an execution's ``subject_id`` is for this person: a contact id when the router
        started it; whatever identity an API caller gave otherwise."""
        return (*self.contact_ids, *self.user_ids, *self.anonymous_ids, *self.emails)

    @property
    def identity_values(self) -> tuple[str, ...]:
        return (*self.user_ids, *self.anonymous_ids, *self.emails, *self.phones)


# Deletion order: children before the rows that locate them.
EXECUTION_CHILDREN: tuple[PersonalTable, ...] = (
    PersonalTable(t.execution_steps, Locator.EXECUTION, "execution_id", "step outputs, errors"),
    PersonalTable(t.tasks, Locator.EXECUTION, "execution_id", "event payloads of event tasks"),
    PersonalTable(t.waits, Locator.EXECUTION, "execution_id", "correlation value (e.g. an id)"),
    PersonalTable(t.dead_letters, Locator.EXECUTION, "execution_id", "the failed step's input"),
    PersonalTable(t.message_deliveries, Locator.EXECUTION, "execution_id", "who was messaged"),
)
EXECUTIONS = PersonalTable(
    t.executions, Locator.SUBJECT, "subject_id", "contact snapshot, input, state (sealed keys)"
)
PERSON_TABLES: tuple[PersonalTable, ...] = (
    PersonalTable(t.entries, Locator.SUBJECT, "subject_id", "which journeys they entered"),
    PersonalTable(t.events, Locator.EVENT, "contact_id", "every event (payload, sealed traits)"),
    PersonalTable(t.trigger_dedup, Locator.IDENTITY_VALUE, "dedup_key", "a dedup key's value"),
    PersonalTable(t.consent_records, Locator.CONTACT, "contact_id", "consent and its proof"),
    PersonalTable(t.frequency_ledger, Locator.CONTACT, "contact_id", "messages they were sent"),
    PersonalTable(
        t.processing_log,
        Locator.CONTACT,
        "contact_id",
        "records of processing",
        kept=(("activity", Activity.ERASURE_PROPAGATED.value),),  # the proof of propagation
    ),
    PersonalTable(t.sync_run_errors, Locator.SYNC_RECORD, "record", "CRM error messages"),
    PersonalTable(t.contact_field_sources, Locator.CONTACT, "contact_id", "field digests"),
    PersonalTable(t.sync_links, Locator.CONTACT, "contact_id", "their CRM record id"),
    PersonalTable(t.contact_identities, Locator.CONTACT, "contact_id", "userId, anonymousIds"),
    PersonalTable(t.contacts, Locator.CONTACT, "id", "the contact (sealed email, phone)"),
)
PERSONAL_DATA: tuple[PersonalTable, ...] = (*EXECUTION_CHILDREN, EXECUTIONS, *PERSON_TABLES)

# Tables that hold no person's data, and why.
NOT_PERSONAL: dict[str, str] = {
    "workspaces": "tenants",
    "workflows": "definitions",
    "workflow_versions": "definitions",
    "triggers": "definitions",
    "trigger_ticks": "a time trigger's fan-out position (a contact id cursor, no data)",
    "principals": "the platform's users and services, not the marketed people",
    "workflow_grants": "permissions",
    "api_keys": "credentials (hashed)",
    "oauth_clients": "credentials (hashed)",
    "revoked_tokens": "token ids",
    "signing_keys": "the platform's keys",
    "secrets": "integration credentials (sealed)",
    "connections": "provider accounts",
    "sync_runs": "counts and cursors of CRM sync runs",
    "privacy_settings": "a workspace's policies",
    "retention_runs": "counts of purges",
    "audit_anchors": "where a workspace's audit chain starts after retention (a hash)",
    # Alerting (issue 9): rules and counts about the platform, never about a person. A channel's
    # recipients and URLs are in the secret store; messages carry counts, not contacts.
    "alert_channels": "where alerts go (secrets sealed in the secret store)",
    "alert_rules": "alert rule definitions and their state",
    "alert_incidents": "alert firings: a metric's value against a threshold",
    "alert_notifications": "the alert outbox: counts and rule names, no contact data",
}

# Tables kept on purpose through an erasure, and why.
KEPT: dict[str, str] = {
    "erasure_jobs": "the record that the erasure was done (subject as an id or a digest only)",
    "erased_identities": "keyed digests that stop the person's data coming back",
    "suppressions": "keyed digests of addresses no message may go to",
    "audit_log": "append-only and hash-chained (SOC 2); holds paths and principal ids, and "
    "no contact data unless a request path carried it (see docs/erasure.md)",
}


def condition(entry: PersonalTable, person: Person) -> ColumnElement[bool]:
    """The rows of ``person`` in ``entry``'s table (within the workspace)."""
    table = entry.table
    in_workspace = table.c.workspace_id == person.workspace_id
    return in_workspace & _match(entry, person)


def _match(entry: PersonalTable, person: Person) -> ColumnElement[bool]:
    column = entry.table.c[entry.column]
    values: Sequence[str] = {
        Locator.CONTACT: person.contact_ids,
        Locator.SUBJECT: person.subjects,
        Locator.EXECUTION: person.execution_ids,
        Locator.IDENTITY_VALUE: person.identity_values,
        Locator.SYNC_RECORD: (
            *person.contact_ids,
            *(f"remote:{remote}" for remote in person.remote_ids),
        ),
        Locator.EVENT: person.contact_ids,
    }[entry.locator]
    clauses = [column.in_(values)] if values else []
    if entry.locator is Locator.EVENT:
        if person.user_ids:
            clauses.append(t.events.c.user_id.in_(person.user_ids))
        if person.anonymous_ids:
            clauses.append(t.events.c.anonymous_id.in_(person.anonymous_ids))
    return or_(*clauses) if clauses else false()


def erasable(entry: PersonalTable, person: Person) -> ColumnElement[bool]:
    """The rows of ``person`` in ``entry``'s table that erasure deletes: all but the kept."""
    kept = [entry.table.c[column] == value for column, value in entry.kept]
    found = condition(entry, person)
    return found & not_(or_(*kept)) if kept else found


@dataclass(frozen=True, slots=True)
class Keyset:
    """Which rows of a keyset walk: ``order`` names a unique key of the table (the walk's
    order), ``after`` the previous page's last values of it; ``limit`` rows at most."""

    order: tuple[str, ...]
    limit: int
    after: tuple[Any, ...] | None = None
    newest_first: bool = False


def select_rows(
    entry: PersonalTable, person: Person, keyset: Keyset, columns: Sequence[str] | None = None
) -> Select[Any]:
    """One page of the person's rows of ``entry``, kept ones included: what an export reads.
    ``columns`` (default: all) are the ones read."""
    table = entry.table
    chosen = table.columns if columns is None else [table.c[name] for name in columns]
    key = [table.c[name] for name in keyset.order]
    query = select(*chosen).where(condition(entry, person))
    if keyset.after is not None:
        position = tuple_(*key)
        beyond = position < keyset.after if keyset.newest_first else position > keyset.after
        query = query.where(beyond)
    ordered = [column.desc() for column in key] if keyset.newest_first else key
    return query.order_by(*ordered).limit(keyset.limit)


def delete_batch(entry: PersonalTable, person: Person, limit: int) -> Delete:
    """Delete up to ``limit`` of the person's rows of ``entry`` (:func:`erasable`): a bounded
    statement, so a person with 100,000 events is erased in many short transactions, not one
    long one."""
    key = _key(entry.table)
    chosen = select(*key).where(erasable(entry, person)).limit(limit)
    target = key[0].in_(chosen) if len(key) == 1 else tuple_(*key).in_(chosen)
    return delete(entry.table).where(erasable(entry, person), target)


def _key(table: Table) -> list[Any]:
    return list(table.primary_key.columns)
