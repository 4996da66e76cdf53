"""The export is driven by the list erasure deletes by: every personal table has a place in the
document, a key its pages can walk without skipping rows, and no internal column in it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from campaignflow.domain.contacts import ContactRecord
from campaignflow.store import personal_data as pd
from campaignflow.store.contact_export import RENDERINGS, Place, person_of, sections

AT = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
# Columns that mean nothing to the person, or hold what they must not see in the clear.
INTERNAL = {"workspace_id", "key_id", "needs_sealing", "lease_owner", "digest", "revision"}


def test_every_personal_table_has_a_place_in_the_export() -> None:
    personal = [entry.table.name for entry in pd.PERSONAL_DATA]

    assert sorted(RENDERINGS) == sorted(personal)  # a new personal table must say where it goes


def test_the_document_sections_are_distinct_camel_case_members() -> None:
    members = [RENDERINGS[e.table.name].member for e in sections(Place.DOCUMENT)]

    assert len(members) == len(set(members))
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", member) for member in members)
    # the document's fixed head has these members: a section may not take one of them
    assert not {"contact", "identities", "consent", "suppression", "crmLinks"} & set(members)


def test_the_tables_found_by_execution_are_nested_in_the_executions() -> None:
    nested = {entry.table.name for entry in sections(Place.EXECUTION)}
    by_execution = {e.table.name for e in pd.PERSONAL_DATA if e.locator is pd.Locator.EXECUTION}

    assert nested == by_execution
    assert RENDERINGS["executions"].place is Place.DOCUMENT


@pytest.mark.parametrize("entry", pd.PERSONAL_DATA, ids=lambda entry: entry.table.name)
def test_each_tables_order_is_a_unique_key_so_no_page_skips_a_row(
    entry: pd.PersonalTable,
) -> None:
    table, rendering = entry.table, RENDERINGS[entry.table.name]
    walked = {*rendering.order, "workspace_id"}
    keys = [{c.name for c in table.primary_key.columns}] + [
        {c.name for c in index.columns} for index in table.indexes if index.unique
    ]

    assert set(rendering.order) <= set(table.c.keys())
    assert any(key <= walked for key in keys), rendering.order
    assert all(not table.c[name].nullable for name in rendering.order)  # row values compare


@pytest.mark.parametrize("entry", pd.PERSONAL_DATA, ids=lambda entry: entry.table.name)
def test_no_internal_column_and_no_sealed_blob_reaches_the_document(
    entry: pd.PersonalTable,
) -> None:
    rendering = RENDERINGS[entry.table.name]
    shown = set(entry.table.c.keys()) - rendering.hidden

    assert not shown & INTERNAL
    assert rendering.omit <= set(entry.table.c.keys())  # no stale name
    if "sealed" in shown:  # read to be opened, never shown as it is stored
        assert rendering.render is not None


def test_the_person_of_an_export_is_the_one_erasure_would_find() -> None:
    contact = ContactRecord(
        workspace_id="acme",
        id="c1",
        user_id="u-old",
        email=" Ada@Example.com ",
        timezone=None,
        traits={"Phone": "+44 20 7946-0001", "plan": "pro"},
        created_at=AT,
        updated_at=AT,
        last_seen_at=None,
    )
    identities = [
        {"kind": "user_id", "value": "u-ada", "createdAt": AT},
        {"kind": "anonymous_id", "value": "anon-1", "createdAt": AT},
        {"kind": "email", "value": "digest-of-the-address", "createdAt": AT},
    ]
    links = [{"connectionId": "k1", "remoteId": "501"}, {"connectionId": "k2", "remoteId": None}]

    person = person_of(contact, identities, links)

    assert person == pd.Person(
        "acme",
        contact_ids=("c1",),
        user_ids=("u-ada", "u-old"),
        anonymous_ids=("anon-1",),
        emails=("ada@example.com",),
        phones=("+442079460001",),
        remote_ids=("501",),
    )
    # executions the API started for any of those identities are the person's
    assert {"c1", "u-ada", "anon-1", "ada@example.com"} <= set(person.subjects)
