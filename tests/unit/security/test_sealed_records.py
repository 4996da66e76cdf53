"""Sealed execution rows and event payloads: sensitive keys leave the stored JSON and come back
exactly; a sealed value opens only for the row it was sealed for."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.errors import SealedDataError
from campaignflow.security.sealed_records import (
    SEALED_EVENT,
    open_event_payload,
    open_execution,
    seal_event_payload,
    seal_execution,
    stored_state,
)
from tests._support.ciphers import contact_cipher

CIPHER = contact_cipher()
names = st.sampled_from(["email", "Email", "PHONE", "phone", "plan", "age", "name"])
values = st.one_of(st.text(max_size=20), st.integers(-(2**53), 2**53), st.booleans())
members = st.dictionaries(names, values, max_size=5)
payloads = st.fixed_dictionaries(
    {"properties": members, "traits": members, "context": st.fixed_dictionaries({})},
    optional={"previousId": st.text(max_size=5)},
).flatmap(
    lambda payload: st.builds(
        lambda traits: {**payload, "context": {"ip": "1.2.3.4", "traits": traits}}, members
    )
)


def sensitive_values(document: Any) -> list[Any]:
    """Every value under a sensitive key, anywhere in ``document``."""
    if not isinstance(document, dict):
        return []
    found = [v for k, v in document.items() if CIPHER.is_sensitive(k)]
    return found + [v for nested in document.values() for v in sensitive_values(nested)]


@given(payloads)
def test_an_event_payload_opens_back_exactly(payload: dict[str, Any]) -> None:
    stored, sealed = seal_event_payload(CIPHER, "acme", "m1", payload)
    assert sensitive_values(stored) == []
    assert (sealed is None) == (sensitive_values(payload) == [])
    assert open_event_payload(CIPHER, "acme", "m1", orjson.loads(orjson.dumps(stored)), sealed) == (
        payload
    )


def test_an_event_without_sensitive_keys_is_stored_as_it_came() -> None:
    payload = {"properties": {"plan": "pro"}, "traits": {}, "context": {"traits": {"a": 1}}}
    stored, sealed = seal_event_payload(CIPHER, "acme", "m1", payload)
    assert (stored, sealed) == (payload, None)


def test_an_event_value_does_not_open_for_another_event() -> None:
    stored, sealed = seal_event_payload(CIPHER, "acme", "m1", {"traits": {"email": "a@b.io"}})
    with pytest.raises(SealedDataError):
        open_event_payload(CIPHER, "acme", "m2", stored, sealed)


@given(members, members, payloads)
def test_an_execution_row_opens_back_as_the_engine_started_it(
    contact: dict[str, Any], input: dict[str, Any], event: dict[str, Any]
) -> None:
    state = {"live": 1, "seq": 0, "event": {**event, "messageId": "m1"}}
    stored = seal_execution(CIPHER, "acme", "x1", contact=contact, input=input, state=state)
    row = {"contact": stored.contact, "input": stored.input, "state": stored.state}
    assert sensitive_values(row) == []
    opened = open_execution(CIPHER, "acme", "x1", {**row, "sealed": stored.sealed})
    assert (opened["contact"], opened["input"]) == (contact, input)
    assert opened["state"]["event"] == state["event"]
    # A worker writing the state back stores the sealed event stripped again.
    assert stored_state(CIPHER, opened["state"]) == stored.state


def test_an_event_a_wait_took_later_is_written_as_it_is() -> None:
    """Only the started-by event is held by the sealed value; a later one replaces it."""
    state = {"event": {"messageId": "m1", "traits": {"email": "a@b.io"}}}
    stored = seal_execution(CIPHER, "acme", "x1", contact={}, input={}, state=state)
    assert stored.state[SEALED_EVENT] == "m1"
    later = {**stored.state, "event": {"messageId": "m2", "traits": {"email": "c@d.io"}}}
    assert stored_state(CIPHER, later) == later
    opened = open_execution(CIPHER, "acme", "x1", {**_row(later), "sealed": stored.sealed})
    assert opened["state"]["event"] == later["event"]


def test_an_execution_value_does_not_open_for_another_execution() -> None:
    stored = seal_execution(CIPHER, "acme", "x1", contact={"email": "a@b.io"}, input={}, state={})
    with pytest.raises(SealedDataError):
        open_execution(CIPHER, "acme", "x2", {**_row(stored.state), "sealed": stored.sealed})


def _row(state: dict[str, Any]) -> dict[str, Any]:
    return {"contact": {}, "input": {}, "state": state}
