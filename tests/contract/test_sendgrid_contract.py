"""Every SendGrid operation's request, as sent, satisfies SendGrid's own OpenAPI files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from campaignflow.integrations.providers.sendgrid import SENDGRID
from tests.contract.conftest import context, operation_request, prepared
from tests.contract.prism import send
from tests.contract.strategies import emails, few, names, plain_emails, texts

# One set of Prism servers per test process (xdist group); the first test waits for them to
# load their specs (slow on a busy 2-core machine).
pytestmark = [pytest.mark.xdist_group("prism"), pytest.mark.timeout(240)]

CREDENTIALS = {"token": "SG.contract-test-key"}
LIST_ID = "ca7a3796-e8a8-4029-9ccb-df8937940562"

SEND_EMAIL = [
    pytest.param(
        {"to": "alice@example.com", "from": "shop@example.com", "subject": "Hi", "text": "Hi!"},
        id="text",
    ),
    pytest.param(
        {
            "to": ["alice@example.com", "bob+promo@example.co.uk"],
            "from": "shop@example.com",
            "fromName": "The Shop",
            "subject": "Your cart",
            "text": "You left something behind.",
            "html": "<p>You left something behind.</p>",
            "categories": ["cart", "reminder"],
            "replyTo": "help@example.com",
            "sendAt": 1_790_003_600,
            "unsubscribeGroupId": 42,
        },
        id="everything-inline",
    ),
    pytest.param(
        {
            "to": "carol@example.com",
            "from": "shop@example.com",
            "templateId": "d-13b8f94fbcae4ec6b75270d6cb59f932",
            "dynamicTemplateData": {"firstName": "Carol", "items": [{"sku": "A1", "qty": 2}]},
        },
        id="dynamic-template",
    ),
]


def _sendgrid(prism: Mapping[str, str], spec: str, **settings: Any) -> Any:
    return context(SENDGRID, CREDENTIALS, {"baseUrl": prism[spec], **settings})


@pytest.mark.parametrize("params", SEND_EMAIL)
async def test_send_email_requests_satisfy_the_mail_send_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession, params: dict[str, Any]
) -> None:
    ctx = _sendgrid(prism, "sendgrid_mail")
    verdict = await send(http, operation_request(SENDGRID, "send_email", params, ctx))
    assert verdict.accepted, verdict.messages()
    assert verdict.status == 202


async def test_the_connections_default_sender_is_used_and_accepted(
    prism: Mapping[str, str], http: aiohttp.ClientSession
) -> None:
    ctx = _sendgrid(
        prism, "sendgrid_mail", defaultFrom="news@example.com", defaultFromName="Newsletter"
    )
    request = operation_request(
        SENDGRID, "send_email", {"to": "a@example.com", "templateId": "d-1"}, ctx
    )
    assert b'"from":{"email":"news@example.com","name":"Newsletter"}' in (request.body or b"")
    assert (await send(http, request)).accepted


@few
@given(
    params=st.fixed_dictionaries(
        {
            "to": st.lists(emails, min_size=1, max_size=3, unique=True),
            "from": emails,
            "subject": texts,
            "text": texts,
        },
        optional={
            "categories": st.lists(st.text(min_size=1, max_size=20), max_size=3, unique=True)
        },
    )
)
async def test_any_accepted_addresses_and_texts_pass_the_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession, params: dict[str, Any]
) -> None:
    ctx = _sendgrid(prism, "sendgrid_mail")
    verdict = await send(http, operation_request(SENDGRID, "send_email", params, ctx))
    assert verdict.accepted, verdict.messages()


@few
@given(
    contacts=st.lists(
        st.fixed_dictionaries(
            {"email": plain_emails},
            optional={
                "firstName": names,
                "lastName": names,
                "customFields": st.dictionaries(
                    st.sampled_from(["e1_T", "e2_N", "w3_D"]),
                    st.one_of(texts, st.integers(0, 10**6), st.floats(0, 1e6)),
                    max_size=2,
                ),
            },
        ),
        min_size=1,
        max_size=3,
    ),
    on_list=st.booleans(),
)
async def test_upsert_contacts_requests_satisfy_the_contacts_spec(
    prism: Mapping[str, str],
    http: aiohttp.ClientSession,
    contacts: list[dict[str, Any]],
    on_list: bool,
) -> None:
    params: dict[str, Any] = {"contacts": contacts}
    if on_list:
        params["listIds"] = [LIST_ID]
    ctx = _sendgrid(prism, "sendgrid_contacts")
    verdict = await send(http, operation_request(SENDGRID, "upsert_contacts", params, ctx))
    assert verdict.accepted, verdict.messages()
    assert verdict.status == 202


@pytest.mark.parametrize("name", ["Newsletter", "Ünïcødé — 2026 leads", "x" * 100])
async def test_create_list_requests_satisfy_the_lists_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession, name: str
) -> None:
    ctx = _sendgrid(prism, "sendgrid_lists")
    verdict = await send(http, operation_request(SENDGRID, "create_list", {"name": name}, ctx))
    assert verdict.accepted, verdict.messages()
    assert verdict.status == 201


@few
@given(addresses=st.lists(emails, min_size=1, max_size=5, unique=True))
async def test_suppress_global_requests_satisfy_the_suppressions_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession, addresses: list[str]
) -> None:
    """What an erasure's propagation sends: the addresses, once each (a repeat is folded)."""
    ctx = _sendgrid(prism, "sendgrid_suppressions")
    params = {"emails": [*addresses, addresses[0]]}
    request = operation_request(SENDGRID, "suppress_global", params, ctx)
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()
    assert verdict.status == 201
    assert request.body is not None
    assert orjson.loads(request.body) == {"recipient_emails": addresses}


async def test_the_connection_test_request_satisfies_the_lists_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession
) -> None:
    ctx = _sendgrid(prism, "sendgrid_lists")
    assert SENDGRID.test is not None
    verdict = await send(http, prepared(SENDGRID, SENDGRID.test(ctx), ctx))
    assert verdict.accepted, verdict.messages()
    assert verdict.status == 200


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("send_email", {"to": "alice@example", "from": "a@example.com", "templateId": "d-1"}),
        ("send_email", {"to": [], "from": "a@example.com", "templateId": "d-1"}),
        ("send_email", {"to": "a@example.com", "from": "a@example.com", "subject": "no body"}),
        ("send_email", {"to": "a@example.com", "templateId": "d-1", "categories": ["a", "a"]}),
        ("send_email", {"to": "a@example.com", "templateId": "d-1", "categories": ["c"] * 11}),
        ("send_email", {"to": "a@example.com", "templateId": "d-1", "subject": ""}),
        ("send_email", {"to": "a@example.com", "templateId": "d-1", "personalizations": {}}),
        ("upsert_contacts", {"contacts": []}),
        ("upsert_contacts", {"contacts": [{"email": "a@example.com", "firstName": "x" * 51}]}),
        ("upsert_contacts", {"contacts": [{"email": "a@example.com"}], "listIds": ["42"]}),
        ("create_list", {"name": ""}),
        ("create_list", {"name": "x" * 101}),
    ],
)
def test_parameters_the_spec_would_refuse_are_refused_before_any_request(
    operation: str, params: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        SENDGRID.operation(operation).params.model_validate(params)
