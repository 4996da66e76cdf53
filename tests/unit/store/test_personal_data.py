"""The map of where personal data lives: every table of the schema is accounted for, and the
statements built from it find exactly the person's rows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql

from campaignflow.store import personal_data as pd
from campaignflow.store.erasure import Identities, normalize_phone
from campaignflow.store.tables import metadata


def test_every_table_is_personal_not_personal_or_kept_on_purpose() -> None:
    personal = [entry.table.name for entry in pd.PERSONAL_DATA]
    named = [*personal, *pd.NOT_PERSONAL, *pd.KEPT]

    assert sorted(named) == sorted(metadata.tables)  # a new table must be classified
    assert len(named) == len(set(named))


def test_rows_that_locate_others_are_deleted_after_them() -> None:
    order = [entry.table.name for entry in pd.PERSONAL_DATA]

    assert order.index("executions") > max(order.index(e.table.name) for e in pd.EXECUTION_CHILDREN)
    assert order.index("sync_run_errors") < order.index("sync_links")  # remote ids
    assert order[-2:] == ["contact_identities", "contacts"]


def test_a_person_with_nothing_to_match_matches_no_row() -> None:
    person = pd.Person("acme")
    for entry in pd.PERSONAL_DATA:
        sql = str(pd.condition(entry, person).compile(dialect=postgresql.dialect()))
        assert "false" in sql.lower(), entry.table.name


def test_events_are_found_by_contact_user_id_and_anonymous_id_within_the_workspace() -> None:
    person = pd.Person("acme", contact_ids=("c1",), user_ids=("u1",), anonymous_ids=("a1",))
    (events,) = [e for e in pd.PERSONAL_DATA if e.table.name == "events"]
    statement = pd.delete_batch(events, person, 100).compile(dialect=postgresql.dialect())
    sql = str(statement)

    for column in ("workspace_id", "contact_id", "user_id", "anonymous_id"):
        assert f"events.{column}" in sql
    assert "LIMIT" in sql
    assert statement.params["workspace_id_1"] == "acme"
    assert 100 in statement.params.values()


@given(st.text(alphabet="+0123456789 -()./", min_size=1, max_size=30))
def test_a_phone_normalises_to_digits_with_its_leading_plus(raw: str) -> None:
    normal = normalize_phone(raw)

    assert normal.lstrip("+").isdigit() or normal.lstrip("+") == ""
    assert normal.startswith("+") == raw.strip().startswith("+")
    assert normalize_phone(normal) == normal


identities = st.builds(
    Identities,
    st.lists(st.text(max_size=20)).map(tuple),
    st.lists(st.text(max_size=20)).map(tuple),
    st.lists(st.emails()).map(tuple),
    st.lists(st.text(max_size=20)).map(tuple),
    st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5))).map(tuple),
)


@given(identities)
def test_identities_survive_sealing_as_json(found: Identities) -> None:
    assert Identities.from_json(found.to_json()) == found


@given(identities, identities)
def test_merging_keeps_every_identity_once(a: Identities, b: Identities) -> None:
    merged = a.merged(b)

    assert set(merged.user_ids) == {*a.user_ids, *b.user_ids}
    assert len(merged.emails) == len(set(merged.emails))
    assert set(merged.links) == {*a.links, *b.links}


def test_erasure_keeps_the_proof_of_propagation_that_the_export_still_reads() -> None:
    person = pd.Person("acme", contact_ids=("c1",))
    (log,) = [e for e in pd.PERSONAL_DATA if e.table.name == "processing_log"]
    keyset = pd.Keyset(("id",), 10)
    erased = pd.delete_batch(log, person, 100).compile(dialect=postgresql.dialect())
    read = pd.select_rows(log, person, keyset).compile(dialect=postgresql.dialect())

    assert str(erased).count("processing_log.activity != ") == 2  # the delete and its choice
    assert erased.params["activity_1"] == "erasure.propagated"
    assert "erasure.propagated" not in read.params.values()
    assert all(not e.kept for e in pd.PERSONAL_DATA if e is not log)  # nothing else is kept


def test_a_page_starts_after_the_last_rows_key_in_either_direction() -> None:
    person = pd.Person("acme", contact_ids=("c1",))
    (events,) = [e for e in pd.PERSONAL_DATA if e.table.name == "events"]
    order = ("timestamp", "message_id")
    forward = pd.Keyset(order, 50, after=("2026-03-27", "m9"))
    backward = pd.Keyset(order, 50, after=("2026-03-27", "m9"), newest_first=True)

    ahead = str(pd.select_rows(events, person, forward, ["message_id"]).compile())
    behind = str(pd.select_rows(events, person, backward).compile())

    assert "(events.timestamp, events.message_id) > (" in ahead
    assert ahead.index("ORDER BY events.timestamp, events.message_id") > 0
    assert ahead.startswith("SELECT events.message_id \nFROM")  # only the columns asked for
    assert "(events.timestamp, events.message_id) < (" in behind
    assert "ORDER BY events.timestamp DESC, events.message_id DESC" in behind
    assert "events.workspace_id = " in ahead
    assert "LIMIT" in ahead
