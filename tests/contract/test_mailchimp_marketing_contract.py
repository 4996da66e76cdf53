"""Every Mailchimp Marketing operation's request satisfies Mailchimp's Marketing API spec
(the reconstructed Swagger 2.0 copy in shared/provider-specs, see its README)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from campaignflow.integrations.connector import RequestContext
from campaignflow.integrations.providers.mailchimp_marketing import MAILCHIMP_MARKETING
from tests.contract.conftest import context, operation_request, prepared
from tests.contract.prism import send
from tests.contract.strategies import emails, few

# One set of Prism servers per test process (xdist group); the first test waits for them to
# load their specs (slow on a busy 2-core machine).
pytestmark = [pytest.mark.xdist_group("prism"), pytest.mark.timeout(240)]

CREDENTIALS = {"api_key": "0123456789abcdef0123456789abcdef-us6"}
STATUSES = ["subscribed", "unsubscribed", "cleaned", "pending", "transactional"]

UPSERT_MEMBER = [
    {"listId": "a1b2c3d4e5", "email": "alice@example.com"},
    {
        "listId": "a1b2c3d4e5",
        "email": "Bob.Smith@Example.com",
        "statusIfNew": "pending",
        "status": "subscribed",
        "mergeFields": {"FNAME": "Bob", "LNAME": "Smith", "ADDRESS": {"addr1": "1 Main St"}},
        "language": "fr",
        "vip": True,
        "skipMergeValidation": True,
    },
]


def _mailchimp(prism: Mapping[str, str]) -> RequestContext:
    return context(MAILCHIMP_MARKETING, CREDENTIALS, {"baseUrl": prism["mailchimp_marketing"]})


@pytest.mark.parametrize("params", UPSERT_MEMBER)
async def test_upsert_member_requests_satisfy_the_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession, params: dict[str, Any]
) -> None:
    request = operation_request(MAILCHIMP_MARKETING, "upsert_member", params, _mailchimp(prism))
    member = hashlib.md5(params["email"].lower().encode()).hexdigest()
    assert request.url.split("?")[0].endswith(f"/lists/a1b2c3d4e5/members/{member}")
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()
    assert verdict.status == 200


@few
@given(email=emails, status_if_new=st.sampled_from(STATUSES), vip=st.booleans())
async def test_any_accepted_member_passes_the_spec(
    prism: Mapping[str, str],
    http: aiohttp.ClientSession,
    email: str,
    status_if_new: str,
    vip: bool,
) -> None:
    params = {"listId": "L1", "email": email, "statusIfNew": status_if_new, "vip": vip}
    request = operation_request(MAILCHIMP_MARKETING, "upsert_member", params, _mailchimp(prism))
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()


@pytest.mark.parametrize(
    "params",
    [
        {"listId": "a1b2c3d4e5", "email": "alice@example.com", "add": ["vip"]},
        {"listId": "a1b2c3d4e5", "email": "alice@example.com", "remove": ["trial"]},
        {
            "listId": "a1b2c3d4e5",
            "email": "alice@example.com",
            "add": ["customer", "Black Friday 2026"],
            "remove": ["lead"],
            "isSyncing": True,
        },
    ],
)
async def test_update_tags_requests_satisfy_the_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession, params: dict[str, Any]
) -> None:
    request = operation_request(MAILCHIMP_MARKETING, "update_tags", params, _mailchimp(prism))
    verdict = await send(http, request)
    assert verdict.accepted, verdict.messages()
    assert verdict.status == 204


async def test_the_connection_test_request_satisfies_the_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession
) -> None:
    ctx = _mailchimp(prism)
    assert MAILCHIMP_MARKETING.test is not None
    verdict = await send(http, prepared(MAILCHIMP_MARKETING, MAILCHIMP_MARKETING.test(ctx), ctx))
    assert verdict.accepted, verdict.messages()
    assert verdict.status == 200


async def test_requests_without_the_basic_credentials_are_refused_by_the_spec(
    prism: Mapping[str, str], http: aiohttp.ClientSession
) -> None:
    """The oracle checks authentication too: the Authorization header is what it demands."""
    request = operation_request(
        MAILCHIMP_MARKETING, "upsert_member", UPSERT_MEMBER[0], _mailchimp(prism)
    )
    del request.headers["Authorization"]
    verdict = await send(http, request)
    assert verdict.status == 401


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("upsert_member", {"listId": "a1b2c3d4e5", "email": "not an address"}),
        ("upsert_member", {"listId": "a/../b", "email": "a@example.com"}),
        ("upsert_member", {"listId": "L1", "email": "a@example.com", "statusIfNew": "bogus"}),
        ("upsert_member", {"listId": "L1", "email": "a@example.com", "status": "archived"}),
        ("update_tags", {"listId": "L1", "email": "a@example.com"}),  # nothing to change
        ("update_tags", {"listId": "L1", "email": "a@example.com", "add": ["x"], "remove": ["x"]}),
        ("update_tags", {"listId": "L1", "email": "a@example.com", "add": [""]}),
    ],
)
def test_parameters_the_spec_would_refuse_are_refused_before_any_request(
    operation: str, params: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        MAILCHIMP_MARKETING.operation(operation).params.model_validate(params)
