"""Reading everything held about one person, for the right of access and portability
(GDPR Art. 15, 20), by the same list erasure deletes by.

Which tables hold a person's rows, and how the rows are found, is
:data:`~campaignflow.store.personal_data.PERSONAL_DATA`, with the person as erasure sees them
(:class:`~campaignflow.store.personal_data.Person`: the contact, its identities, its CRM
records, its executions). This module adds only how each table's rows appear in the document
(:data:`RENDERINGS`): under which member, in which order (a unique key, walked in keyset pages,
so a person with a million events is never held whole), without which columns (internal ones
that mean nothing to the person: lease owners, key ids, digests) and with which sealed values
opened. A table added to ``PERSONAL_DATA`` without a rendering fails a unit test; one rendered
as a section of its own (:attr:`Place.DOCUMENT`) appears in the export with no other change.

Rows come back as JSON-ready dicts in the API's camelCase. Every statement filters by
``workspace_id`` and the person, through :func:`~campaignflow.store.personal_data.condition`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

from sqlalchemy import select

from campaignflow.domain.contacts import ContactRecord, normalize_email
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.sealed_records import open_event_payload, open_execution
from campaignflow.store import personal_data as pd
from campaignflow.store import tables as t
from campaignflow.store.database import Database
from campaignflow.store.erasure import phones_of
from campaignflow.store.personal_data import Keyset, Person, PersonalTable

Row = dict[str, Any]
Render = Callable[[ContactCipher, str, Row], Row]  # (cipher, workspace, columns) -> exported row


class Place(Enum):
    """Where a table's rows appear in the document."""

    DOCUMENT = "document"  # an array of its own, ``"<member>": [...]``, in PERSONAL_DATA order
    EXECUTION = "execution"  # an array in each of the person's executions
    FIXED = "fixed"  # a part of the document's head, laid out by the export service


@dataclass(frozen=True, slots=True)
class Rendering:
    """How one personal table's rows appear in the export."""

    member: str  # its member in the document (for FIXED: its path in the head)
    place: Place
    order: tuple[str, ...]  # a unique key: the rows' order and their pages' keyset
    omit: frozenset[str] = frozenset()  # columns meaningless to the person (and workspace_id)
    render: Render | None = None  # opens sealed values; default: the columns in camelCase
    newest_first: bool = False

    @property
    def hidden(self) -> frozenset[str]:
        return self.omit | {"workspace_id"}

    @property
    def read(self) -> frozenset[str]:
        """The hidden columns read all the same: the key, and an execution child's execution."""
        needed = {*self.order, "execution_id"} if self.place is Place.EXECUTION else {*self.order}
        return frozenset(needed)

    @property
    def path(self) -> str:
        """Where the rows are in the document (``executions[].steps``)."""
        return f"executions[].{self.member}" if self.place is Place.EXECUTION else self.member


def _event(cipher: ContactCipher, workspace_id: str, row: Row) -> Row:
    """An event as received: its columns, then its payload's members, sealed ones opened."""
    payload, sealed = row.pop("payload"), row.pop("sealed")
    opened = open_event_payload(cipher, workspace_id, row["message_id"], payload, sealed)
    return {**_camel(row), **opened}


def _execution(cipher: ContactCipher, workspace_id: str, row: Row) -> Row:
    """An execution with its contact snapshot, input and started-by event opened."""
    return _camel(open_execution(cipher, workspace_id, row["id"], row))


def _omit(*columns: str) -> frozenset[str]:
    return frozenset(columns)


_SEALING = _omit("sealed", "key_id", "needs_sealing")

RENDERINGS: Mapping[str, Rendering] = MappingProxyType(
    {
        "execution_steps": Rendering(
            "steps", Place.EXECUTION, ("execution_id", "seq"), _omit("execution_id")
        ),
        "tasks": Rendering(
            "tasks", Place.EXECUTION, ("id",), _omit("id", "execution_id", "lease_owner")
        ),
        "waits": Rendering(
            "waits", Place.EXECUTION, ("execution_id", "token"), _omit("execution_id", "subject_id")
        ),
        "dead_letters": Rendering(
            "deadLetters", Place.EXECUTION, ("id",), _omit("workflow_version", "token")
        ),
        "message_deliveries": Rendering(
            "deliveries", Place.EXECUTION, ("sent_at", "send_id"), _omit("token")
        ),
        "executions": Rendering(
            "executions",
            Place.DOCUMENT,
            ("id",),
            _omit("subject_id", "revision", "idempotency_key", "key_id", "needs_sealing"),
            render=_execution,
        ),
        "entries": Rendering("journeyEntries", Place.DOCUMENT, ("workflow_id", "subject_id")),
        "events": Rendering(
            "events",
            Place.DOCUMENT,
            ("timestamp", "message_id", "received_at"),  # unique whatever the primary key
            _omit("contact_id", "key_id", "needs_sealing"),
            render=_event,
        ),
        "trigger_dedup": Rendering("dedupKeys", Place.DOCUMENT, ("scope", "dedup_key")),
        "consent_records": Rendering("consent.history", Place.FIXED, ("id",), _omit("contact_id")),
        "frequency_ledger": Rendering(
            "frequencyLedger", Place.DOCUMENT, ("sent_at", "send_id"), _omit("contact_id")
        ),
        "processing_log": Rendering(
            "processingLog", Place.DOCUMENT, ("id",), _omit("contact_id"), newest_first=True
        ),
        "sync_run_errors": Rendering(
            "crmSyncErrors", Place.DOCUMENT, ("run_id", "record", "direction")
        ),
        "contact_field_sources": Rendering(
            "fieldSources", Place.DOCUMENT, ("contact_id", "field"), _omit("contact_id", "digest")
        ),
        "sync_links": Rendering(
            "crmLinks",
            Place.FIXED,
            ("connection_id", "contact_id"),
            _omit("contact_id", "fields", "pending_push", "push_attempts"),
        ),
        "contact_identities": Rendering(
            "identities", Place.FIXED, ("created_at", "kind", "value"), _omit("contact_id")
        ),
        # Read through the contact store, which opens the sealed fields; ``consent.current``
        # is its consent column.
        "contacts": Rendering("contact", Place.FIXED, ("id",), _SEALING),
    }
)


def personal(name: str) -> PersonalTable:
    """The :data:`~campaignflow.store.personal_data.PERSONAL_DATA` entry of table ``name``."""
    (entry,) = (entry for entry in pd.PERSONAL_DATA if entry.table.name == name)
    return entry


def sections(place: Place) -> tuple[PersonalTable, ...]:
    """The personal tables rendered at ``place``, in ``PERSONAL_DATA`` order."""
    return tuple(e for e in pd.PERSONAL_DATA if RENDERINGS[e.table.name].place is place)


def person_of(contact: ContactRecord, identities: Sequence[Row], links: Sequence[Row]) -> Person:
    """The person an export is about, as an erasure of the contact finds them
    (:meth:`~campaignflow.store.erasure.ErasureStore.resolve`): the contact, its userIds and
    anonymousIds (its :attr:`Place.FIXED` ``identities`` rows), its address and phone numbers
    as erasure normalises them, its CRM record ids (its ``crmLinks``)."""
    email = normalize_email(contact.email)
    return Person(
        contact.workspace_id,
        contact_ids=(contact.id,),
        user_ids=_unique(
            [row["value"] for row in identities if row["kind"] == "user_id"]
            + ([contact.user_id] if contact.user_id else [])
        ),
        anonymous_ids=_unique(row["value"] for row in identities if row["kind"] == "anonymous_id"),
        emails=(email,) if email else (),
        phones=phones_of([contact]),
        remote_ids=_unique(row["remoteId"] for row in links if row["remoteId"]),
    )


class ContactExportStore:
    """The reads of an export, on ``database``; sealed values opened with ``cipher``."""

    def __init__(self, database: Database, cipher: ContactCipher) -> None:
        self._db = database
        self._cipher = cipher

    async def pages(
        self, entry: PersonalTable, person: Person, size: int
    ) -> AsyncIterator[list[Row]]:
        """The person's rows of ``entry``, rendered, ``size`` at a time (each page one read)."""
        rendering = RENDERINGS[entry.table.name]
        async for rows in self._walk(entry, person, size):
            yield [self._render(rendering, person.workspace_id, row) for row in rows]

    async def rows(self, entry: PersonalTable, person: Person, size: int = 500) -> list[Row]:
        """All the person's rows of a small table (their identities, their CRM links)."""
        return [row async for page in self.pages(entry, person, size) for row in page]

    async def by_execution(
        self, entry: PersonalTable, person: Person, size: int
    ) -> dict[str, list[Row]]:
        """The rows of ``person.execution_ids`` in an execution's child table, by execution."""
        rendering = RENDERINGS[entry.table.name]
        found: dict[str, list[Row]] = {}
        async for rows in self._walk(entry, person, size):
            for row in rows:
                rendered = self._render(rendering, person.workspace_id, row)
                found.setdefault(row["execution_id"], []).append(rendered)
        return found

    async def crm_links(self, person: Person) -> list[Row]:
        """The CRM records the person is linked to, by connection name: which connection (its
        name and provider), the record's id, when it was last synced."""
        links = await self.rows(personal("sync_links"), person)
        c = t.connections.c
        query = select(c.id, c.name, c.provider).where(
            c.workspace_id == person.workspace_id,
            c.id.in_(sorted({link["connectionId"] for link in links})),
        )
        named = {row.id: row for row in await self._all(query)} if links else {}
        for link in links:
            connection = named.get(link["connectionId"])
            link["connection"] = connection.name if connection else None
            link["provider"] = connection.provider if connection else None
        return sorted(links, key=lambda link: (link["connection"] or "", link["connectionId"]))

    # ------------------------------------------------------------------ helpers

    async def _walk(
        self, entry: PersonalTable, person: Person, size: int
    ) -> AsyncIterator[list[Row]]:
        """The raw rows (the rendered columns and :attr:`Rendering.read`), in keyset pages."""
        rendering = RENDERINGS[entry.table.name]
        columns = [
            column.name
            for column in entry.table.columns
            if column.name not in rendering.hidden or column.name in rendering.read
        ]
        keyset = Keyset(rendering.order, size, newest_first=rendering.newest_first)
        while True:
            rows = await self._all(pd.select_rows(entry, person, keyset, columns))
            if rows:
                yield [dict(row._mapping) for row in rows]
            if len(rows) < size:
                return
            keyset = replace(keyset, after=tuple(getattr(rows[-1], c) for c in keyset.order))

    def _render(self, rendering: Rendering, workspace_id: str, row: Row) -> Row:
        shown = {name: value for name, value in row.items() if name not in rendering.hidden}
        if rendering.render is None:
            return _camel(shown)
        return rendering.render(self._cipher, workspace_id, shown)

    async def _all(self, query: Any) -> list[Any]:
        async with self._db.read() as connection:
            return list((await connection.execute(query)).all())


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _camel(row: Mapping[str, Any]) -> Row:
    """A row's mapping with the API's member names (``node_id`` → ``nodeId``)."""
    return {_camel_name(name): value for name, value in row.items()}


def _camel_name(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)
