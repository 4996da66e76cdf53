"""The oracle works: a request that breaks the provider's spec is refused by Prism, with the
violation named. Without this, a Prism that accepted everything would pass every contract test.

Each case takes a request an operation really builds and breaks one thing in it, the kind of
slip a builder change could make.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
import pytest

from campaignflow.integrations.connector import Connector
from campaignflow.integrations.prepare import PreparedRequest
from campaignflow.integrations.providers.mailchimp_marketing import MAILCHIMP_MARKETING
from campaignflow.integrations.providers.mailchimp_transactional import MAILCHIMP_TRANSACTIONAL
from campaignflow.integrations.providers.sendgrid import SENDGRID
from tests.contract.conftest import context, operation_request
from tests.contract.prism import send

# One set of Prism servers per test process (xdist group); the first test waits for them to
# load their specs (slow on a busy 2-core machine).
pytestmark = [pytest.mark.xdist_group("prism"), pytest.mark.timeout(240)]

Body = dict[str, Any]


def _personalizations_as_object(body: Body) -> None:
    body["personalizations"] = body["personalizations"][0]
    del body["from"]


def _bad_recipient(body: Body) -> None:
    body["personalizations"][0]["to"][0]["email"] = "alice@example"


def _top_level_custom_args_object(body: Body) -> None:
    body["custom_args"] = {"cf_send": "snd_1"}  # the spec types it as a string


def _contacts_as_string(body: Body) -> None:
    body["contacts"] = "alice@example.com"


def _list_ids_not_uuids(body: Body) -> None:
    body["list_ids"] = ["newsletter"]


def _list_name_too_long(body: Body) -> None:
    body["name"] = "x" * 101


def _mandrill_without_key(body: Body) -> None:
    del body["key"]


def _mandrill_to_as_object(body: Body) -> None:
    body["message"]["to"] = body["message"]["to"][0]


def _mandrill_merge_var_number(body: Body) -> None:
    body["message"]["global_merge_vars"] = [{"name": "N", "content": 5}]


def _member_bogus_status(body: Body) -> None:
    body["status"] = "bogus"
    del body["status_if_new"]


def _tag_bogus_status(body: Body) -> None:
    body["tags"][0]["status"] = "on"


@dataclass(frozen=True)
class Case:
    connector: Connector
    credentials: Mapping[str, str]
    spec: str  # which Prism (conftest.SPEC_FILES)
    operation: str
    params: Mapping[str, Any]
    breaks: Callable[[Body], None]
    expected: str  # in one of the violations' messages

    @property
    def id(self) -> str:
        return self.breaks.__name__.strip("_")


SENDGRID_CREDENTIALS = {"token": "SG.x"}
MANDRILL_CREDENTIALS = {"api_key": "k"}
MAILCHIMP_CREDENTIALS = {"api_key": "k-us6"}
MAIL = {"to": "alice@example.com", "from": "shop@example.com", "subject": "Hi", "text": "Hi"}
MESSAGE = {"to": "alice@example.com", "from": "shop@example.com", "text": "Hi"}
CONTACTS = {"contacts": [{"email": "alice@example.com"}]}
MEMBER = {"listId": "L1", "email": "alice@example.com"}
CASES = [
    Case(SENDGRID, SENDGRID_CREDENTIALS, "sendgrid_mail", "send_email", MAIL,
         _personalizations_as_object, "personalizations must be array"),
    Case(SENDGRID, SENDGRID_CREDENTIALS, "sendgrid_mail", "send_email", MAIL,
         _bad_recipient, 'must match format "email"'),
    Case(SENDGRID, SENDGRID_CREDENTIALS, "sendgrid_mail", "send_email", MAIL,
         _top_level_custom_args_object, "custom_args must be string"),
    Case(SENDGRID, SENDGRID_CREDENTIALS, "sendgrid_contacts", "upsert_contacts", CONTACTS,
         _contacts_as_string, "contacts must be array"),
    Case(SENDGRID, SENDGRID_CREDENTIALS, "sendgrid_contacts", "upsert_contacts", CONTACTS,
         _list_ids_not_uuids, 'format "uuid"'),
    Case(SENDGRID, SENDGRID_CREDENTIALS, "sendgrid_lists", "create_list", {"name": "News"},
         _list_name_too_long, "must NOT have more than 100 characters"),
    Case(MAILCHIMP_TRANSACTIONAL, MANDRILL_CREDENTIALS, "mandrill", "send_message", MESSAGE,
         _mandrill_without_key, "required property 'key'"),
    Case(MAILCHIMP_TRANSACTIONAL, MANDRILL_CREDENTIALS, "mandrill", "send_message", MESSAGE,
         _mandrill_to_as_object, "message.to must be array"),
    Case(MAILCHIMP_TRANSACTIONAL, MANDRILL_CREDENTIALS, "mandrill", "send_message", MESSAGE,
         _mandrill_merge_var_number, "content must be string"),
    Case(MAILCHIMP_MARKETING, MAILCHIMP_CREDENTIALS, "mailchimp_marketing", "upsert_member",
         MEMBER, _member_bogus_status, "required property 'status_if_new'"),
    Case(MAILCHIMP_MARKETING, MAILCHIMP_CREDENTIALS, "mailchimp_marketing", "update_tags",
         {**MEMBER, "add": ["vip"]}, _tag_bogus_status,
         "must be equal to one of the allowed values"),
]  # fmt: skip


def _broken(request: PreparedRequest, breaks: Callable[[Body], None]) -> PreparedRequest:
    body = json.loads(request.body or b"{}")
    breaks(body)
    return replace(request, body=orjson.dumps(body), headers=dict(request.headers))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_a_request_that_breaks_the_spec_is_refused_with_the_violation_named(
    prism: Mapping[str, str], http: aiohttp.ClientSession, case: Case
) -> None:
    ctx = context(case.connector, case.credentials, {"baseUrl": prism[case.spec]})
    valid = operation_request(case.connector, case.operation, case.params, ctx)
    assert (await send(http, valid)).accepted  # the same request, unbroken, passes

    verdict = await send(http, _broken(valid, case.breaks))
    assert not verdict.accepted
    assert verdict.status in (400, 422)
    assert any(case.expected in message for message in verdict.messages()), verdict.messages()


async def test_a_request_without_the_api_key_is_refused(
    prism: Mapping[str, str], http: aiohttp.ClientSession
) -> None:
    ctx = context(SENDGRID, SENDGRID_CREDENTIALS, {"baseUrl": prism["sendgrid_mail"]})
    request = operation_request(SENDGRID, "send_email", MAIL, ctx)
    del request.headers["Authorization"]
    verdict = await send(http, request)
    assert verdict.status == 401
    assert "Invalid security scheme used" in verdict.messages()
