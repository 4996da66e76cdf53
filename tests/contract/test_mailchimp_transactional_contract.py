"""Every Mailchimp Transactional (Mandrill) operation's request satisfies Mailchimp's own
OpenAPI file, with the API key in the body where the spec wants it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from campaignflow.integrations.connector import RequestContext
from campaignflow.integrations.providers.mailchimp_transactional import MAILCHIMP_TRANSACTIONAL
from tests.contract.conftest import TRACKING, context, operation_request, prepared
from tests.contract.prism import send
from tests.contract.strategies import emails, few, texts

# One set of Prism servers per test process (xdist group); the first test waits for them to
# load their specs (slow on a busy 2-core machine).
pytestmark = [pytest.mark.xdist_group("prism"), pytest.mark.timeout(240)]

CREDENTIALS = {"api_key": "md-contract-test-key"}

SEND_MESSAGE = [
    {"to": "alice@example.com", "from": "shop@example.com", "subject": "Hi", "html": "<b>Hi</b>"},
    {
        "to": ["alice@example.com", "bob@example.org"],
        "from": "shop@example.com",
        "fromName": "The Shop",
        "subject": "Receipt *|ORDER|*",
        "text": "Thanks for order *|ORDER|*",
        "replyTo": "help@example.com",
        "tags": ["receipt", "2026"],
        "mergeVars": {"ORDER": "A-1042", "TOTAL": "19.99"},
        "mergeLanguage": "mailchimp",
        "trackOpens": True,
        "trackClicks": False,
        "subaccount": "eu-shop",
    },
]
SEND_TEMPLATE = [
    {"to": "alice@example.com", "from": "shop@example.com", "templateName": "welcome"},
    {
        "to": ["alice@example.com"],
        "from": "shop@example.com",
        "templateName": "order-shipped",
        "templateContent": {"header": "<h1>On its way</h1>"},
        "mergeVars": {"firstName": "Alice"},
        "mergeLanguage": "handlebars",
        "subject": "Shipped",
    },
]


def _mandrill(prism: Mapping[str, str]) -> RequestContext:
    return context(MAILCHIMP_TRANSACTIONAL, CREDENTIALS, {"baseUrl": prism["mandrill"]})


@pytest.mark.parametrize(
    ("operation", "params"),
    [("send_message", p) for p in SEND_MESSAGE] + [("send_template", p) for p in SEND_TEMPLATE],
)
async def test_send_requests_satisfy_the_spec_and_carry_the_tracking_metadata(
    prism: Mapping[str, str],
    http: aiohttp.ClientSession,
    operation: str,
    params: dict[str, Any],
) -> None:
    request = operation_request(MAILCHIMP_TRANSACTIONAL, operation, params, _mandrill(prism))
    sent = json.loads(request.body or b"{}")
    assert sent["key"] == CREDENTIALS["api_key"]
    assert sent["message"]["metadata"] == TRACKING
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()
    assert verdict.status == 200
    assert isinstance(verdict.body, list)  # one result per recipient


@few
@given(to=st.lists(emails, min_size=1, max_size=3, unique=True), sender=emails, html=texts)
async def test_any_accepted_addresses_pass_the_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession, to: list[str], sender: str, html: str
) -> None:
    params = {"to": to, "from": sender, "html": html}
    request = operation_request(MAILCHIMP_TRANSACTIONAL, "send_message", params, _mandrill(prism))
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()


async def test_the_connection_test_request_satisfies_the_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession
) -> None:
    ctx = _mandrill(prism)
    connector = MAILCHIMP_TRANSACTIONAL
    assert connector.test is not None
    verdict = await send(http, prepared(connector, connector.test(ctx), ctx))
    assert verdict.accepted, verdict.messages()
    assert verdict.body == {"PING": "PONG!"}


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("send_message", {"to": "a@example.com", "from": "b@example.com"}),  # no content
        ("send_message", {"to": "a@@example.com", "from": "b@example.com", "text": "x"}),
        ("send_message", {"to": "a@example.com", "from": "b@example", "text": "x"}),
        ("send_message", {"to": "a@example.com", "text": "x", "tags": ["_reserved"]}),
        ("send_message", {"to": "a@example.com", "text": "x", "mergeVars": {"N": 5}}),
        ("send_message", {"to": "a@example.com", "text": "x", "mergeLanguage": "jinja"}),
        ("send_template", {"to": "a@example.com", "from": "b@example.com"}),  # no template
        ("send_template", {"to": "a@example.com", "templateName": "t", "key": "smuggled"}),
    ],
)
def test_parameters_the_spec_would_refuse_are_refused_before_any_request(
    operation: str, params: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        MAILCHIMP_TRANSACTIONAL.operation(operation).params.model_validate(params)
