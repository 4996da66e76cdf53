"""The audit chain: any edit, deletion, insertion or reordering is found at the right seq."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from campaignflow.security.audit_chain import (
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    ChainVerifier,
    canonical,
    extend,
    link,
    verify,
)

_text = st.text(max_size=20)
_optional = st.none() | _text
_instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

events = st.builds(
    AuditEvent,
    workspace_id=st.just("acme"),
    id=st.text(alphabet="0123456789ABCDEF", min_size=4, max_size=26),
    occurred_at=_instants,
    actor_id=_optional,
    credential=_optional,
    action=_text,
    resource_type=_optional,
    resource_id=_optional,
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    path=_text,
    status=st.integers(100, 599),
    outcome=st.sampled_from(["success", "denied", "failure"]),
    ip=_optional,
    user_agent=_optional,
    request_id=_optional,
    details=st.none() | st.dictionaries(_text, _text, max_size=3),
)
chains = st.lists(events, min_size=1, max_size=12).map(lambda items: extend(None, items))

# What a changed field may become, per field of the event.
_EVENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "workspace_id": _text,
    "id": _text,
    "occurred_at": _instants,
    "actor_id": _optional,
    "credential": _optional,
    "action": _text,
    "resource_type": _optional,
    "resource_id": _optional,
    "method": _text,
    "path": _text,
    "status": st.integers(0, 999),
    "outcome": _text,
    "ip": _optional,
    "user_agent": _optional,
    "request_id": _optional,
    "details": st.none() | st.dictionaries(_text, _text, max_size=3),
}


def test_the_first_entry_links_to_64_zeros_and_seqs_count_from_one() -> None:
    event = AuditEvent(
        "acme", "A1", datetime(2026, 1, 1, tzinfo=UTC), "u1", "api_key:k1", "workflows.update",
        "workflows", "welcome", "PUT", "/api/v1/workflows/welcome", 200, "success",
        "203.0.113.9", "curl/8", "req-1",
    )  # fmt: skip
    first, second = extend(None, [event, event])

    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert len(first.hash) == 64
    assert first.hash != second.hash
    assert verify([first, second]) is None


def test_the_canonical_form_is_sorted_json_with_utc_microseconds() -> None:
    moment = datetime(2026, 3, 1, 10, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    event = AuditEvent(
        "acme", "A1", moment, None, None, "contacts.get", None, None, "GET", "/p", 200,
        "success", None, None, None,
    )  # fmt: skip

    text = canonical(1, event, GENESIS_HASH).decode()

    assert '"occurred_at":"2026-03-01T08:00:00.000000Z"' in text
    assert text.index('"action"') < text.index('"workspace_id"')
    assert '"hash"' not in text.replace('"prev_hash"', "")


def test_the_same_instant_in_another_zone_hashes_the_same() -> None:
    event = AuditEvent(
        "acme", "A1", datetime(2026, 3, 1, 8, tzinfo=UTC), None, None, "a", None, None,
        "GET", "/", 200, "success", None, None, None,
    )  # fmt: skip
    shifted = dataclasses.replace(
        event, occurred_at=event.occurred_at.astimezone(timezone(timedelta(hours=-5)))
    )
    assert link(event, 1, GENESIS_HASH).hash == link(shifted, 1, GENESIS_HASH).hash


@given(chains)
def test_an_untouched_chain_verifies(chain: list[AuditEntry]) -> None:
    assert verify(chain) is None


@given(chains, st.data())
def test_changing_any_field_of_an_event_is_found_at_its_seq(
    chain: list[AuditEntry], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(chain) - 1))
    name = data.draw(st.sampled_from(sorted(_EVENT_FIELDS)))
    entry = chain[index]
    value = data.draw(_EVENT_FIELDS[name])
    changed_event = dataclasses.replace(entry.event, **{name: value})
    assume(canonical(entry.seq, changed_event, entry.prev_hash) != canonical(
        entry.seq, entry.event, entry.prev_hash
    ))  # fmt: skip
    chain[index] = dataclasses.replace(entry, event=changed_event)

    assert verify(chain) == entry.seq


@given(chains, st.data())
def test_changing_seq_or_a_hash_is_found_at_that_entry(
    chain: list[AuditEntry], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(chain) - 1))
    entry = chain[index]
    change: dict[str, Any] = data.draw(
        st.sampled_from(
            [
                {"seq": entry.seq + data.draw(st.integers(1, 5))},
                {"prev_hash": "f" * 64},
                {"hash": "e" * 64},
            ]
        )
    )
    chain[index] = dataclasses.replace(entry, **change)

    assert verify(chain) == entry.seq


@given(chains.filter(lambda chain: len(chain) >= 2), st.data(), st.booleans())
def test_deleting_an_entry_but_the_last_is_found_where_it_was(
    chain: list[AuditEntry], data: st.DataObject, renumber: bool
) -> None:
    index = data.draw(st.integers(0, len(chain) - 2))
    removed = chain.pop(index)
    if renumber:  # the later rows moved down to close the gap
        chain[index:] = [dataclasses.replace(e, seq=e.seq - 1) for e in chain[index:]]

    assert verify(chain) == removed.seq


@given(chains, st.data(), events)
def test_an_inserted_entry_is_found_at_the_entry_after_it(
    chain: list[AuditEntry], data: st.DataObject, forged: AuditEvent
) -> None:
    index = data.draw(st.integers(0, len(chain) - 1))
    prev_hash = chain[index - 1].hash if index else GENESIS_HASH
    # The strongest forgery short of rehashing the rest: a sound link in the right place,
    # every later row renumbered.
    inserted = link(forged, index + 1, prev_hash)
    later = [dataclasses.replace(e, seq=e.seq + 1) for e in chain[index:]]
    tampered = [*chain[:index], inserted, *later]

    assert verify(tampered) == index + 2


@given(chains.filter(lambda chain: len(chain) >= 2), st.data(), st.booleans())
def test_swapping_two_entries_is_found_at_the_first_of_them(
    chain: list[AuditEntry], data: st.DataObject, keep_seq_order: bool
) -> None:
    first = data.draw(st.integers(0, len(chain) - 2))
    second = data.draw(st.integers(first + 1, len(chain) - 1))
    a, b = chain[first], chain[second]
    if keep_seq_order:  # the rows' contents swapped, their seqs left in place
        chain[first] = dataclasses.replace(b, seq=a.seq)
        chain[second] = dataclasses.replace(a, seq=b.seq)
    else:
        chain[first], chain[second] = b, a

    assert verify(chain) == a.seq


@given(chains, st.integers(1, 5))
def test_verifying_page_by_page_agrees_with_verifying_at_once(
    chain: list[AuditEntry], page: int
) -> None:
    chain[-1] = dataclasses.replace(chain[-1], hash="0" * 64)
    verifier = ChainVerifier()
    found = None
    for start in range(0, len(chain), page):
        found = verifier.feed(chain[start : start + page])
        if found is not None:
            break

    assert found == verify(chain) == len(chain)
    assert verifier.checked == len(chain) - 1
