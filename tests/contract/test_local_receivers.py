"""Connectors without a provider spec (Slack incoming webhooks, the generic ``http`` connector,
signed webhooks) against a local server that records what arrives: the bytes on the wire are
what the receiver relies on."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from campaignflow.integrations.connector import Connector
from campaignflow.integrations.providers.generic_http import HTTP
from campaignflow.integrations.providers.slack import SLACK
from campaignflow.integrations.providers.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK,
    verify_outgoing_signature,
)
from tests.contract.conftest import NOW_UNIX, context, operation_request, prepared
from tests.contract.prism import send

SECRET = "whsec_0123456789abcdef0123456789abcdef"


@dataclass
class Arrived:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    arrived: list[Arrived] = field(default_factory=list)

    @property
    def last(self) -> Arrived:
        assert self.arrived, "nothing arrived"
        return self.arrived[-1]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box: list[Arrived] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        box.append(
            Arrived(request.method, request.path, dict(request.query), request.headers, body)
        )
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Receiver(f"http://127.0.0.1:{port}", box)
    finally:
        await runner.cleanup()


async def _deliver(
    http: aiohttp.ClientSession,
    connector: Connector,
    operation: str,
    params: Mapping[str, Any],
    credentials: Mapping[str, str],
    *,
    settings: Mapping[str, Any] | None = None,
) -> int:
    ctx = context(connector, credentials, settings)
    verdict = await send(http, operation_request(connector, operation, params, ctx))
    return verdict.status


# ------------------------------------------------------------------------------------- slack


async def test_slack_posts_the_message_as_json_to_the_webhook_url_and_nothing_else(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    params = {
        "text": "Journey *welcome* failed 3 times",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Alert*"}}],
        "username": "campaignflow",
        "iconEmoji": ":rotating_light:",
    }
    hook = receiver.url + "/services/T000/B000/XXXX"
    status = await _deliver(http, SLACK, "post_message", params, {"webhook_url": hook})
    assert status == 200
    arrived = receiver.last
    assert (arrived.method, arrived.path) == ("POST", "/services/T000/B000/XXXX")
    assert arrived.headers["Content-Type"] == "application/json"
    assert "Authorization" not in arrived.headers  # the URL is the credential
    assert json.loads(arrived.body) == {
        "text": params["text"],
        "blocks": params["blocks"],
        "username": "campaignflow",
        "icon_emoji": ":rotating_light:",
    }


# ------------------------------------------------------------------------------ generic http


@pytest.mark.parametrize(
    ("credentials", "header", "expected"),
    [
        ({"scheme": "bearer", "token": "tok"}, "Authorization", "Bearer tok"),
        (
            {"scheme": "basic", "username": "ann", "password": "pw:1"},
            "Authorization",
            "Basic " + base64.b64encode(b"ann:pw:1").decode(),
        ),
        (
            {"scheme": "api_key", "api_key": "k-1", "header_name": "X-Api-Token"},
            "X-Api-Token",
            "k-1",
        ),
    ],
)
async def test_http_request_goes_under_the_base_url_with_the_connections_chosen_auth(
    http: aiohttp.ClientSession,
    receiver: Receiver,
    credentials: dict[str, str],
    header: str,
    expected: str,
) -> None:
    params = {
        "method": "PUT",
        "path": "/v1/orders/42",
        "query": {"notify": "false"},
        "headers": {"X-Trace": "t-1"},
        "body": {"status": "shipped", "items": [1, 2]},
    }
    settings = {"baseUrl": receiver.url + "/api"}
    status = await _deliver(http, HTTP, "request", params, credentials, settings=settings)
    assert status == 200
    arrived = receiver.last
    assert (arrived.method, arrived.path, arrived.query) == (
        "PUT",
        "/api/v1/orders/42",
        {"notify": "false"},
    )
    assert arrived.headers[header] == expected
    assert arrived.headers["X-Trace"] == "t-1"
    assert arrived.headers["Idempotency-Key"] == "send:ex_01J9Z6:send-welcome"
    assert json.loads(arrived.body) == {"status": "shipped", "items": [1, 2]}


async def test_http_without_credentials_may_call_any_absolute_url(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    params = {"method": "GET", "url": receiver.url + "/status?verbose=1"}
    status = await _deliver(http, HTTP, "request", params, {"scheme": "none"})
    assert status == 200
    assert (receiver.last.method, receiver.last.path) == ("GET", "/status")
    assert "Authorization" not in receiver.last.headers
    assert receiver.last.body == b""


# ---------------------------------------------------------------------------- signed webhook


async def test_a_webhook_delivery_verifies_with_the_shared_secret_and_only_with_it(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    document = {"event": "order_completed", "total": 19.99, "items": ["a", "ü"]}
    settings = {"url": receiver.url + "/hooks/campaignflow"}
    status = await _deliver(
        http, WEBHOOK, "post", {"body": document}, {"secret": SECRET}, settings=settings
    )
    assert status == 200
    arrived = receiver.last
    assert arrived.path == "/hooks/campaignflow"
    assert json.loads(arrived.body) == document
    assert arrived.headers[IDEMPOTENCY_HEADER] == "send:ex_01J9Z6:send-welcome"
    signature = arrived.headers[SIGNATURE_HEADER]
    assert signature.startswith(f"t={NOW_UNIX},v1=")
    assert verify_outgoing_signature(SECRET, signature, arrived.body, now_unix=NOW_UNIX + 5)
    assert not verify_outgoing_signature(SECRET + "x", signature, arrived.body, now_unix=NOW_UNIX)
    assert not verify_outgoing_signature(SECRET, signature, arrived.body + b" ", now_unix=NOW_UNIX)
    assert not verify_outgoing_signature(SECRET, signature, arrived.body, now_unix=NOW_UNIX + 301)


async def test_the_webhook_connection_test_sends_a_signed_ping(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    ctx = context(WEBHOOK, {"secret": SECRET}, {"url": receiver.url + "/hook"})
    assert WEBHOOK.test is not None
    assert (await send(http, prepared(WEBHOOK, WEBHOOK.test(ctx), ctx))).status == 200
    arrived = receiver.last
    assert json.loads(arrived.body) == {"type": "ping"}
    signature = arrived.headers[SIGNATURE_HEADER]
    assert verify_outgoing_signature(SECRET, signature, arrived.body, now_unix=NOW_UNIX)
