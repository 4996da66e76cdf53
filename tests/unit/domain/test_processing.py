"""The records of processing: the legal basis of each purpose, what counts as processing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.nodes import MessagePurpose
from campaignflow.domain.processing import (
    LEGAL_BASIS_OF_PURPOSE,
    MAX_RECIPIENT,
    Activity,
    LegalBasis,
    ProcessingEntry,
    Purpose,
    legal_basis_of,
    recipient_of,
    took_effect,
)
from campaignflow.store.tables import LEGAL_BASES

AT = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


def test_each_purpose_rests_on_the_basis_the_architecture_names() -> None:
    assert legal_basis_of("marketing") is LegalBasis.CONSENT
    assert legal_basis_of("transactional") is LegalBasis.CONTRACT
    assert legal_basis_of("crm_sync") is LegalBasis.LEGITIMATE_INTERESTS
    assert legal_basis_of("access_request") is LegalBasis.LEGAL_OBLIGATION


def test_every_purpose_has_a_basis_the_database_accepts() -> None:
    assert set(LEGAL_BASIS_OF_PURPOSE) == set(Purpose)
    assert {basis.value for basis in LegalBasis} == set(LEGAL_BASES)


@pytest.mark.parametrize("purpose", get_args(MessagePurpose))
def test_every_purpose_a_node_can_declare_has_a_basis(purpose: str) -> None:
    assert legal_basis_of(purpose) in LegalBasis


@given(st.text(max_size=20).filter(lambda text: text not in {p.value for p in Purpose}))
def test_a_purpose_without_a_decided_basis_is_refused(purpose: str) -> None:
    with pytest.raises(ValueError, match="no legal basis"):
        legal_basis_of(purpose)


def test_an_entry_takes_its_basis_from_its_purpose() -> None:
    entry = ProcessingEntry.of(
        workspace_id="acme",
        contact_id="c1",
        occurred_at=AT,
        activity=Activity.ACTION,
        purpose="transactional",
        recipient=recipient_of("sendgrid", "mail"),
    )

    assert (entry.activity, entry.legal_basis, entry.recipient) == (
        "action",
        LegalBasis.CONTRACT,
        "sendgrid (mail)",
    )


@pytest.mark.parametrize(
    "output",
    [
        {"sent": False, "skipped": "suppressed", "suppressedRecipients": 1},
        {"sent": False, "skipped": "consent", "reason": "no email_marketing consent"},
    ],
)
def test_a_skipped_send_disclosed_nothing(output: dict[str, Any]) -> None:
    assert took_effect(output) is False


@given(json_values)
def test_any_other_output_is_processing(output: Any) -> None:
    skipped = isinstance(output, dict) and output.get("sent") is False and "skipped" in output
    assert took_effect(output) is not skipped


def test_a_send_that_went_out_is_processing() -> None:
    assert took_effect({"sent": True, "messageId": "m-1"})
    assert took_effect({"sent": False})  # no rule skipped it: the provider declined, but has it
    assert took_effect(None)


def test_an_erasure_passed_on_to_a_provider_rests_on_a_legal_obligation() -> None:
    assert Activity.ERASURE_PROPAGATED.value == "erasure.propagated"
    assert legal_basis_of(Purpose.ERASURE) is LegalBasis.LEGAL_OBLIGATION


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.example.com/v1/people?email=ada%40example.com", "https://api.example.com"),
        ("http://user:secret@Hooks.Example.COM:8080/ada/42#x", "http://hooks.example.com:8080"),
        ("https://example.com:443/a", "https://example.com"),  # the scheme's own port
        ("http://example.com:443/a", "http://example.com:443"),
        ("http://[2001:db8::1]:9000/p?q=1", "http://[2001:db8::1]:9000"),
    ],
)
def test_a_request_to_a_url_is_received_by_its_origin(url: str, origin: str) -> None:
    assert recipient_of("http", url=url) == origin


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/=&%@.-", min_size=1, max_size=60),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=&%@.-", max_size=60),
)
def test_the_recipient_never_holds_the_urls_path_or_query(path: str, query: str) -> None:
    recipient = recipient_of("http", url=f"https://sink.example:8443/{path}?{query}")

    assert recipient == "https://sink.example:8443"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "https:///no-host", "not a url", ""])
def test_a_url_without_an_http_origin_has_no_recipient(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        recipient_of("http", url=url)


def test_a_recipient_fits_the_column() -> None:
    host = ".".join(["a" * 60] * 4)  # a valid 243-character host name

    assert len(recipient_of("http", url=f"https://{host}/x")) == MAX_RECIPIENT
    assert recipient_of("sendgrid", None) == "sendgrid (no connection)"
