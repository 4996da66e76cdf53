"""The contact cipher: sensitive fields leave their columns sealed and come back intact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.contacts import ContactRecord
from campaignflow.errors import SealedDataError
from campaignflow.security.contact_fields import StoredContact
from tests._support.ciphers import contact_cipher

CIPHER = contact_cipher()
NOW = datetime(2026, 3, 1, tzinfo=UTC)

trait_names = st.sampled_from(["phone", "Phone", "EMAIL", "plan", "age", "address", "x"])
# Traits arrive as JSON parsed by orjson, whose integers fit in 64 bits.
json_integers = st.integers(min_value=-(2**63), max_value=2**64 - 1)
trait_values = st.one_of(st.text(max_size=30), json_integers, st.booleans())
traits = st.dictionaries(trait_names, trait_values, max_size=6)


def contact(email: str | None = "ada@x.io", **trait: Any) -> ContactRecord:
    return ContactRecord("acme", "c1", "u1", email, "Europe/Paris", trait, NOW, NOW, None)


def reopened(stored: StoredContact, record: ContactRecord) -> ContactRecord:
    """The record as a later read builds it from the stored columns."""
    row = ContactRecord(
        record.workspace_id, record.id, record.user_id, stored.email, record.timezone,
        stored.traits, record.created_at, record.updated_at, record.last_seen_at,
    )  # fmt: skip
    return CIPHER.open(row, stored.sealed)[0]


@given(st.one_of(st.none(), st.emails()), traits)
def test_a_contact_comes_back_as_it_was_sealed(email: str | None, values: dict[str, Any]) -> None:
    record = contact(email, **values)
    stored = CIPHER.seal(record)
    assert reopened(stored, record) == record
    assert stored.email is None
    assert not {name.lower() for name in stored.traits} & {"email", "phone"}
    assert (stored.sealed is None) == (
        email is None and not {"phone", "Phone", "EMAIL"} & set(values)
    )


def test_the_columns_hold_no_sensitive_value() -> None:
    stored = CIPHER.seal(contact(phone="+44 20 7946 0000", plan="pro"))
    assert stored.traits == {"plan": "pro"}
    assert stored.sealed is not None
    assert "ada@x.io" not in stored.sealed
    assert "7946" not in stored.sealed
    assert stored.key_id == "test-key"


def test_nested_traits_are_not_matched() -> None:
    """The documented contract: top-level trait keys only."""
    stored = CIPHER.seal(contact(address={"phone": "+1 555"}))
    assert stored.traits == {"address": {"phone": "+1 555"}}


@pytest.mark.parametrize(("workspace", "contact_id"), [("other", "c1"), ("acme", "c2")])
def test_a_sealed_document_does_not_open_for_another_contact(
    workspace: str, contact_id: str
) -> None:
    stored = CIPHER.seal(contact(phone="+1 555"))
    elsewhere = ContactRecord(workspace, contact_id, None, None, None, {}, NOW, NOW, None)
    with pytest.raises(SealedDataError):
        CIPHER.open(elsewhere, stored.sealed)


def test_a_field_removed_from_the_list_stays_readable() -> None:
    record = contact(phone="+1 555")
    stored = CIPHER.seal(record)
    email_only = contact_cipher(["email"])
    row = ContactRecord("acme", "c1", "u1", None, "Europe/Paris", stored.traits, NOW, NOW, None)
    opened, previous = email_only.open(row, stored.sealed)
    assert opened == record
    # ...and its next write keeps the phone in the clear, the email sealed.
    rewritten = email_only.seal(opened, previous)
    assert rewritten.traits == {"phone": "+1 555"}
    assert rewritten.email is None
    assert rewritten.sealed != stored.sealed


def test_email_stays_in_the_clear_when_not_listed() -> None:
    stored = contact_cipher(["phone"]).seal(contact())
    assert (stored.email, stored.sealed) == ("ada@x.io", None)


def test_an_unchanged_document_is_not_sealed_again() -> None:
    record = contact(phone="+1 555")
    first = CIPHER.seal(record)
    _, previous = CIPHER.open(record, first.sealed)
    assert CIPHER.seal(record, previous).sealed == first.sealed
    changed = contact(phone="+1 556")
    assert CIPHER.seal(changed, previous).sealed != first.sealed


def test_email_lookups_use_a_keyed_digest() -> None:
    digest = CIPHER.email_digest("ada@x.io")
    assert "@" not in digest
    assert "ada" not in digest
    assert CIPHER.stored_key(("acme", "email", "ada@x.io")) == ("acme", "email", digest)
    assert CIPHER.stored_key(("acme", "user_id", "u1")) == ("acme", "user_id", "u1")
    assert contact_cipher(["phone"]).email_digest("ada@x.io") == digest  # whatever the list
