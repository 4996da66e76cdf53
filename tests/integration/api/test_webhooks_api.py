"""Provider webhooks through the real app, router and worker, on SQLite and PostgreSQL.

Connections are made through ``/api/v1/connections`` as a user would. The app's engine runs on
a clock the test sets: SendGrid's published vector is signed in September 2020, so the replay
window is checked by moving that clock, not by re-signing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from sqlalchemy import func, select

from campaignflow.api.app import create_app
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.runtime import Engine, builtin_executors
from campaignflow.engine.worker import Worker
from campaignflow.integrations.webhooks.signatures import hubspot_v3_signature
from campaignflow.store.database import Database
from campaignflow.store.deliveries import DeliveryStore
from campaignflow.store.ids import new_id
from campaignflow.store.tables import events, suppressions
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import TOKEN, make_settings, workflow
from tests.unit.integrations.test_webhook_signatures import (
    SENDGRID_BODY,
    SENDGRID_KEY,
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
)

SIGNED_AT = datetime.fromtimestamp(int(SENDGRID_TIMESTAMP), UTC)
BASE = "http://testserver"
SIGNER = ec.generate_private_key(ec.SECP256R1())
OUR_KEY = base64.b64encode(
    SIGNER.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
PROBLEM = "application/problem+json"


@dataclass
class Hooks:
    http: httpx.AsyncClient
    clock: ManualClock
    worker: Worker
    database: Database
    app: FastAPI

    async def connect(self, provider: str, credentials: dict[str, str], **settings: Any) -> str:
        body = {
            "name": f"{provider.replace('_', '-')}-{new_id().lower()}",
            "provider": provider,
            "credentials": credentials,
            "settings": settings,
        }
        created = await self.http.post("/api/v1/connections", json=body)
        assert created.status_code == 201, created.text
        connection_id: str = created.json()["id"]
        return connection_id

    async def sendgrid(self, connection_id: str, body: bytes, **headers: str) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/webhooks/sendgrid/{connection_id}",
            content=body,
            headers={"Content-Type": "application/json", "Authorization": "", **headers},
        )

    async def signed_sendgrid(self, connection_id: str, items: list[dict[str, Any]]) -> Any:
        body = json.dumps(items).encode()
        stamp = str(int(self.clock.now().timestamp()))
        signature = SIGNER.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return await self.sendgrid(connection_id, body, **_sendgrid_headers(signature, stamp))

    async def drain(self) -> None:
        for _ in range(100):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")

    async def count(self, table: Any, **where: str) -> int:
        query = select(func.count()).select_from(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        async with self.database.read() as connection:
            return int((await connection.execute(query)).scalar_one())


def _sendgrid_headers(signature: bytes | str, stamp: str) -> dict[str, str]:
    text = signature if isinstance(signature, str) else base64.b64encode(signature).decode()
    return {
        "X-Twilio-Email-Event-Webhook-Signature": text,
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


VECTOR_HEADERS = _sendgrid_headers(SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP)


@pytest.fixture
async def hooks(database: Database) -> AsyncIterator[Hooks]:
    clock = ManualClock(SIGNED_AT + timedelta(seconds=30))
    engine = Engine.on(database, clock=clock, contact_cipher=contact_cipher())
    app = create_app(make_settings(), database=database, engine=engine)
    executors, http_executor = builtin_executors()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url=BASE, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as http:
                yield Hooks(http, clock, engine.worker(executors), database, app)
    finally:
        await http_executor.aclose()
        await engine.wakeup.aclose()


def _sg(event: str, email: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    return {
        "email": email,
        "timestamp": int(SIGNED_AT.timestamp()),
        "event": event,
        "sg_event_id": f"{event}-{email}-{extra.get('sg_event_id', '')}",
        "sg_message_id": "msg-1.filter-1",
        **extra,
    }


# --------------------------------------------------------------------------- SendGrid


async def test_sendgrids_published_vector_is_accepted_and_a_tampered_one_refused(
    hooks: Hooks,
) -> None:
    connection = await hooks.connect("sendgrid", {"token": "SG.k"}, webhookPublicKey=SENDGRID_KEY)

    accepted = await hooks.sendgrid(connection, SENDGRID_BODY, **VECTOR_HEADERS)
    tampered = await hooks.sendgrid(
        connection, SENDGRID_BODY.replace(b"dropped", b"delivered"), **VECTOR_HEADERS
    )
    reserialised = await hooks.sendgrid(connection, SENDGRID_BODY.rstrip(), **VECTOR_HEADERS)

    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {
        "accepted": 1,
        "ignored": 0,
        "rejected": [],
        "suppressed": 1,  # dropped for a bounced address
        "deliveries": 0,
    }
    for refused in (tampered, reserialised):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"].endswith("webhook-unauthenticated")
    stored = await hooks.count(
        events, message_id="sendgrid:" + json.loads(SENDGRID_BODY)[0]["sg_event_id"]
    )
    assert stored == 1


async def test_a_stale_timestamp_an_unknown_connection_and_a_wrong_provider_look_alike(
    hooks: Hooks,
) -> None:
    connection = await hooks.connect("sendgrid", {"token": "SG.k"}, webhookPublicKey=SENDGRID_KEY)
    mandrill = await hooks.connect("mailchimp_transactional", {"api_key": "k", "webhook_key": "w"})
    hooks.clock.advance(timedelta(minutes=6))  # past the five-minute replay window

    stale = await hooks.sendgrid(connection, SENDGRID_BODY, **VECTOR_HEADERS)
    unknown = await hooks.sendgrid("01NOSUCHCONNECTION00000000", SENDGRID_BODY, **VECTOR_HEADERS)
    wrong_provider = await hooks.sendgrid(mandrill, SENDGRID_BODY, **VECTOR_HEADERS)
    unsigned = await hooks.sendgrid(connection, SENDGRID_BODY)

    answers = [stale, unknown, wrong_provider, unsigned]
    assert {r.status_code for r in answers} == {401}
    details = {(r.json()["type"], r.json()["detail"]) for r in answers}
    assert len(details) == 1  # nothing tells a guessed connection id from a bad signature
    assert await hooks.count(events) == 0
    assert await hooks.count(suppressions) == 0


async def test_a_redelivered_webhook_has_no_second_effect(hooks: Hooks) -> None:
    connection = await hooks.connect("sendgrid", {"token": "SG.k"}, webhookPublicKey=OUR_KEY)
    batch = [_sg("spamreport"), _sg("open"), _sg("processed")]

    first = await hooks.signed_sendgrid(connection, batch)
    again = await hooks.signed_sendgrid(connection, batch)

    assert first.status_code == again.status_code == 200, again.text
    assert (first.json()["accepted"], first.json()["ignored"]) == (2, 1)
    assert (first.json()["suppressed"], again.json()["suppressed"]) == (1, 0)
    assert await hooks.count(events) == 2
    assert await hooks.count(suppressions) == 1
    check = await hooks.http.get("/api/v1/suppressions/check", params={"email": "ADA@example.com"})
    assert check.json()["suppressed"] is True
    assert check.json()["suppression"]["reason"] == "spam_report"
    assert check.json()["suppression"]["source"] == "sendgrid"
    assert check.json()["suppression"]["connectionId"] == connection


async def test_malformed_bodies_are_client_errors_with_pointers(hooks: Hooks) -> None:
    connection = await hooks.connect("sendgrid", {"token": "SG.k"}, webhookPublicKey=OUR_KEY)
    stamp = str(int(hooks.clock.now().timestamp()))

    def signed(body: bytes) -> dict[str, str]:
        signature = SIGNER.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return _sendgrid_headers(signature, stamp)

    not_json = await hooks.sendgrid(connection, b"{oops", **signed(b"{oops"))
    bad_events = b'[{"event": "open", "email": "nope", "timestamp": 1}]'
    invalid = await hooks.sendgrid(connection, bad_events, **signed(bad_events))
    wrong_type = await hooks.http.post(
        f"/api/v1/webhooks/sendgrid/{connection}",
        content=b"[]",
        headers={"Content-Type": "text/plain"},
    )

    assert not_json.status_code == 400
    assert not_json.json()["errors"][0]["pointer"] == ""
    assert invalid.status_code == 422
    pointers = {error["pointer"] for error in invalid.json()["errors"]}
    assert pointers == {"/0/email", "/0/timestamp", "/0/sg_event_id"}
    assert wrong_type.status_code == 415


# --------------------------------------------------------------------------- routing


async def _deploy(
    hooks: Hooks, workflow_id: str, nodes: list[dict[str, Any]], **changes: Any
) -> None:
    document = workflow(workflow_id, nodes=nodes, **changes)
    created = await hooks.http.post("/api/v1/workflows", json=document)
    assert created.status_code == 201, created.text
    activated = await hooks.http.post(f"/api/v1/workflows/{workflow_id}/activate")
    assert activated.status_code == 200, activated.text


GREET = {
    "id": "greet",
    "type": "action",
    "config": {"action": "log", "params": {"message": "Hello"}},
    "next": "done",
}
END = {"id": "done", "type": "end"}


async def test_email_events_reach_the_contact_with_that_address_its_waits_and_triggers(
    hooks: Hooks,
) -> None:
    connection = await hooks.connect("sendgrid", {"token": "SG.k"}, webhookPublicKey=OUR_KEY)
    contact = await hooks.http.post(
        "/api/v1/contacts", json={"userId": "u1", "email": "ada@example.com"}
    )
    assert contact.status_code == 201, contact.text
    contact_id = contact.json()["id"]
    wait = {
        "id": "wait-open",
        "type": "wait_for_event",
        "config": {"event": "email.opened"},
        "next": "greet",
    }
    await _deploy(hooks, "nurture", [wait, GREET, END])
    clicked_flow = workflow(
        "on-click", nodes=[GREET, END], triggers=[{"type": "behavior", "event": "email.clicked"}]
    )
    await _deploy(hooks, "on-click", clicked_flow["nodes"], triggers=clicked_flow["triggers"])
    started = await hooks.http.post("/api/v1/workflows/nurture/execute", json={"subject": "u1"})
    execution_id = started.json()["id"]
    await hooks.drain()
    assert (await hooks.http.get(f"/api/v1/executions/{execution_id}")).json()[
        "status"
    ] == "waiting"

    sent = await hooks.signed_sendgrid(
        connection, [_sg("open", email="Ada@Example.com "), _sg("click", url="https://x.io/a")]
    )
    assert sent.status_code == 200, sent.text
    await hooks.drain()

    waited = (await hooks.http.get(f"/api/v1/executions/{execution_id}")).json()
    assert waited["status"] == "completed"
    taken = next(step for step in waited["steps"] if step["nodeId"] == "wait-open")
    assert taken["output"]["event"] == "email.opened"
    assert taken["output"]["properties"]["provider"] == "sendgrid"
    clicked = (await hooks.http.get("/api/v1/executions", params={"workflow": "on-click"})).json()
    assert [item["subject"] for item in clicked["items"]] == [contact_id]
    assert clicked["items"][0]["input"]["url"] == "https://x.io/a"
    same = (await hooks.http.get("/api/v1/contacts", params={"email": "ada@example.com"})).json()
    assert [item["id"] for item in same["items"]] == [contact_id]  # no duplicate contact
    assert await hooks.count(events, contact_id=contact_id) == 2


async def test_an_unsubscribe_ends_executions_by_exit_criterion(hooks: Hooks) -> None:
    connection = await hooks.connect("sendgrid", {"token": "SG.k"}, webhookPublicKey=OUR_KEY)
    await hooks.http.post("/api/v1/contacts", json={"userId": "u1", "email": "ada@example.com"})
    pause = {"id": "pause", "type": "delay", "config": {"duration": "P3D"}, "next": "done"}
    await _deploy(hooks, "promo", [pause, END], exitCriteria=[{"event": "email.unsubscribed"}])
    started = await hooks.http.post("/api/v1/workflows/promo/execute", json={"subject": "u1"})
    await hooks.drain()

    await hooks.signed_sendgrid(connection, [_sg("unsubscribe")])

    ended = (await hooks.http.get(f"/api/v1/executions/{started.json()['id']}")).json()
    assert ended["status"] == "cancelled"
    assert ended["exitReason"]["event"] == "email.unsubscribed"


async def test_delivery_status_appears_on_the_step_that_sent_the_message(hooks: Hooks) -> None:
    connection = await hooks.connect("sendgrid", {"token": "SG.k"}, webhookPublicKey=OUR_KEY)
    await _deploy(hooks, "mailer", [GREET, END])
    started = await hooks.http.post("/api/v1/workflows/mailer/execute", json={"subject": "u1"})
    execution_id = started.json()["id"]
    await hooks.drain()
    await DeliveryStore(hooks.database).record_sent(
        workspace_id="default",
        send_id="send-1",
        execution_id=execution_id,
        node_id="greet",
        token="",
        connection_id=connection,
        provider="sendgrid",
        provider_message_id="msg-1",
        at=hooks.clock.now(),
    )
    tracking = {"cf_workspace": "default", "cf_send": "send-1", "cf_execution": execution_id}
    sent_at = int(hooks.clock.now().timestamp())

    opened = await hooks.signed_sendgrid(
        connection, [_sg("open", timestamp=sent_at + 2, **tracking)]
    )
    late = await hooks.signed_sendgrid(
        connection, [_sg("delivered", timestamp=sent_at + 1, **tracking)]
    )
    untracked = await hooks.signed_sendgrid(
        connection, [_sg("click", timestamp=sent_at + 3, sg_event_id="c")]
    )

    assert [r.json()["deliveries"] for r in (opened, late, untracked)] == [1, 1, 1]
    detail = (await hooks.http.get(f"/api/v1/executions/{execution_id}")).json()
    greet = next(step for step in detail["steps"] if step["nodeId"] == "greet")
    delivery = greet["delivery"]
    assert delivery["status"] == "clicked"  # found by the provider's message id, untracked
    assert delivery["provider"] == "sendgrid"
    assert delivery["providerMessageId"] == "msg-1"
    # In the order they happened, not the order they arrived in.
    assert [e["event"] for e in delivery["events"]] == ["sent", "delivered", "opened", "clicked"]
    assert all(
        step.get("delivery") is None for step in detail["steps"] if step["nodeId"] != "greet"
    )


# --------------------------------------------------------------------------- other providers


def _mandrill_signature(key: str, url: str, params: dict[str, str]) -> str:
    signed = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(key.encode(), signed.encode(), hashlib.sha1).digest()).decode()


async def test_mandrill_webhooks_are_verified_over_the_url_and_the_form(hooks: Hooks) -> None:
    connection = await hooks.connect(
        "mailchimp_transactional", {"api_key": "md-key", "webhook_key": "auth-key"}
    )
    path = f"/api/v1/webhooks/mailchimp_transactional/{connection}"
    event = {"event": "hard_bounce", "ts": 1600112490, "_id": "m1", "msg": {"email": "bo@x.io"}}
    params = {"mandrill_events": json.dumps([event])}
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    good = await hooks.http.post(
        path,
        content=urlencode(params),
        headers={
            **form,
            "X-Mandrill-Signature": _mandrill_signature("auth-key", BASE + path, params),
        },
    )
    forged = await hooks.http.post(
        path,
        content=urlencode(params),
        headers={**form, "X-Mandrill-Signature": _mandrill_signature("guess", BASE + path, params)},
    )
    check = await hooks.http.head(path)

    assert good.status_code == 200, good.text
    assert (good.json()["accepted"], good.json()["suppressed"]) == (1, 1)
    assert forged.status_code == 401
    assert check.status_code == 200  # Mandrill checks the URL with a HEAD when it is saved


async def test_mailchimp_marketing_webhooks_carry_the_secret_in_the_url(hooks: Hooks) -> None:
    connection = await hooks.connect(
        "mailchimp_marketing", {"api_key": "abc123-us6", "webhook_secret": "s3cret"}
    )
    path = f"/api/v1/webhooks/mailchimp_marketing/{connection}"
    form = {
        "type": "unsubscribe",
        "fired_at": "2020-09-14 19:41:00",
        "data[email]": "mc@x.io",
        "data[list_id]": "l1",
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    good = await hooks.http.post(
        path, params={"secret": "s3cret"}, content=urlencode(form), headers=headers
    )
    wrong = await hooks.http.post(
        path, params={"secret": "guess"}, content=urlencode(form), headers=headers
    )
    verified = await hooks.http.get(path, params={"secret": "s3cret"})
    unverified = await hooks.http.get(path)

    assert good.status_code == 200, good.text
    assert (good.json()["accepted"], good.json()["suppressed"]) == (1, 1)
    assert (wrong.status_code, verified.status_code, unverified.status_code) == (401, 200, 401)


async def test_hubspot_v3_webhooks_reach_the_record_and_stale_ones_do_not(hooks: Hooks) -> None:
    connection = await hooks.connect(
        "hubspot", {"token": "pat-na1-x", "client_secret": "hs-secret"}
    )
    path = f"/api/v1/webhooks/hubspot/{connection}"
    body = json.dumps(
        [
            {
                "eventId": 1,
                "subscriptionId": 2,
                "portalId": 62515,
                "occurredAt": int(hooks.clock.now().timestamp() * 1000),
                "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0,
                "objectId": 123,
                "propertyName": "hs_email_optout",
                "propertyValue": "true",
            }
        ]
    ).encode()

    async def send(at: datetime) -> httpx.Response:
        stamp = str(int(at.timestamp() * 1000))
        signature = hubspot_v3_signature("hs-secret", "POST", BASE + path, body, stamp)
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": signature,
        }
        return await hooks.http.post(path, content=body, headers=headers)

    good = await send(hooks.clock.now())
    stale = await send(hooks.clock.now() - timedelta(minutes=6))

    assert good.status_code == 200, good.text
    assert (good.json()["accepted"], good.json()["suppressed"]) == (1, 0)  # no address known
    assert stale.status_code == 401
    async with hooks.database.read() as db:
        row = (await db.execute(select(events.c.name, events.c.anonymous_id))).one()
    assert tuple(row) == ("email.unsubscribed", "hubspot:62515:123")


async def test_refused_webhooks_are_rate_limited_per_address(database: Database) -> None:
    limits = {"enabled": True, "anonymous_burst": 2, "anonymous_requests_per_second": 0.01}
    app = create_app(make_settings(rate_limit=limits), database=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            statuses = [
                (
                    await http.post(
                        "/api/v1/webhooks/sendgrid/01NOSUCHCONNECTION00000000",
                        content=b"[]",
                        headers={"Content-Type": "application/json"},
                    )
                ).status_code
                for _ in range(3)
            ]
    assert statuses == [401, 401, 429]


async def test_behind_a_trusted_proxy_the_signed_url_is_the_public_one(
    database: Database,
) -> None:
    """Mandrill signs the https URL it was given; the API behind a TLS-terminating proxy sees
    http. The proxy's X-Forwarded-Proto and -Host count only when the proxy is trusted."""
    public = "https://hooks.example.com"

    async def post(settings_overrides: dict[str, Any]) -> httpx.Response:
        app = create_app(make_settings(**settings_overrides), database=database)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 4000))
            async with httpx.AsyncClient(
                transport=transport, base_url=BASE, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as http:
                hooks = Hooks(http, ManualClock(SIGNED_AT), None, database, app)  # type: ignore[arg-type]
                connection = await hooks.connect(
                    "mailchimp_transactional", {"api_key": "k", "webhook_key": "auth-key"}
                )
                path = f"/api/v1/webhooks/mailchimp_transactional/{connection}"
                params = {"mandrill_events": "[]"}
                signature = _mandrill_signature("auth-key", public + path, params)
                return await http.post(
                    path,
                    content=urlencode(params),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Mandrill-Signature": signature,
                        "X-Forwarded-Proto": "https",
                        "X-Forwarded-Host": "hooks.example.com",
                        "Authorization": "",
                    },
                )

    trusted = await post({"network": {"trusted_proxies": ["10.0.0.0/8"]}})
    untrusted = await post({})

    assert trusted.status_code == 200, trusted.text
    assert untrusted.status_code == 401
