"""A journey end to end: send through SendGrid, wait for the message to be opened.

SendGrid is Stoplight Prism serving SendGrid's own Mail Send spec, so the request the worker
sends is checked against the provider's contract (Prism answers 202 only to a valid request;
the connection's ``baseUrl`` points at it, as a user would point it at a sandbox). The open is
a signed SendGrid event webhook, signed with a key generated here and set on the connection,
carrying the tracking arguments the send put in ``custom_args`` — as SendGrid echoes them.
Everything else is real: the app, its connections API, the secret store, the executor with its
guards, the worker, the in-process bus and router, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from campaignflow.api.app import create_app
from campaignflow.engine.clock import SystemClock
from campaignflow.engine.model import idempotency_key
from campaignflow.engine.runtime import Engine
from campaignflow.engine.worker import Worker
from campaignflow.integrations.runtime import open_integrations
from campaignflow.store.database import Database
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import contact_cipher
from tests._support.consent import set_consent
from tests._support.prism_pool import PrismPool
from tests.integration.api.conftest import TOKEN, make_settings

# One set of Prism servers per test process (xdist group); the first test waits for them to
# load their specs (slow on a busy 2-core machine).
pytestmark = [pytest.mark.xdist_group("prism"), pytest.mark.timeout(240)]

SIGNER = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    SIGNER.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()

SEND = {
    "id": "send",
    "type": "action",
    "config": {
        "action": "sendgrid.send_email",
        "connection": "mail",
        "params": {
            "to": "{{ contact.email }}",
            "subject": "Your cart, {{ contact.first_name | default: 'friend' }}",
            "html": "<p>Still thinking about it?</p>",
            "categories": ["cart"],
        },
    },
    "next": "wait-open",
}
WAIT = {
    "id": "wait-open",
    "type": "wait_for_event",
    "config": {"event": "email.opened", "timeout": "P3D", "onTimeout": "not-opened"},
    "next": "opened",
}
JOURNEY = {
    "workflowId": "cart-mail",
    "name": "Cart mail",
    "triggers": [{"type": "behavior", "event": "cart_updated"}],
    "start": "send",
    "errorHandling": {"retryPolicy": "exponential", "maxRetries": 2},
    "nodes": [
        SEND,
        WAIT,
        {"id": "opened", "type": "end"},
        {"id": "not-opened", "type": "end"},
    ],
}


@pytest.fixture(scope="module")
def sendgrid_prism(prism_pool: PrismPool) -> str:
    return prism_pool.urls({"mail": "sendgrid/tsg_mail_v3.json"})["mail"]


@dataclass
class Platform:
    http: httpx.AsyncClient
    worker: Worker
    database: Database

    async def drain(self) -> None:
        for _ in range(100):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")

    async def start(self, user_id: str) -> Any:
        """The journey as a site starts it: an event of the contact (routed in-process)."""
        event = {"type": "track", "userId": user_id, "event": "cart_updated", "properties": {}}
        accepted = await self.http.post("/api/v1/events", json=event)
        assert accepted.status_code == 202, accepted.text
        await self.drain()
        page = await self.ok("GET", "/api/v1/executions", params={"workflow": "cart-mail"})
        assert len(page["items"]) == 1, page
        return page["items"][0]

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.status_code in (200, 201), (path, response.text)
        return response.json()


@pytest.fixture
async def platform(database: Database) -> AsyncIterator[Platform]:
    settings = make_settings()
    engine = Engine.on(database, clock=SystemClock(), contact_cipher=contact_cipher())
    integrations = open_integrations(database, settings, engine.contacts.cipher)
    app = create_app(settings, database=database, engine=engine, integrations=integrations)
    try:
        async with serving(app, bearer(TOKEN)) as http:
            yield Platform(http, engine.worker(integrations.executors()), database)
    finally:
        await integrations.aclose()
        await engine.wakeup.aclose()


def signed_sendgrid_event(items: list[dict[str, Any]], timestamp: int) -> dict[str, Any]:
    body = json.dumps(items).encode() + b"\r\n"  # SendGrid's own line ending, signed as sent
    stamp = str(timestamp)
    signature = SIGNER.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "content": body,
        "headers": {
            "Content-Type": "application/json",
            "Authorization": "",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        },
    }


async def test_a_mail_sent_through_sendgrid_then_opened_completes_the_journey(
    platform: Platform, sendgrid_prism: str
) -> None:
    connection = await platform.ok(
        "POST",
        "/api/v1/connections",
        json={
            "name": "mail",
            "provider": "sendgrid",
            "credentials": {"token": "SG.test-key"},
            "settings": {
                "baseUrl": sendgrid_prism,
                "webhookPublicKey": PUBLIC_KEY,
                "defaultFrom": "shop@example.com",
            },
        },
    )
    ann = await platform.ok(
        "POST", "/api/v1/contacts", json={"userId": "ann", "email": "ann@example.com"}
    )
    await set_consent(platform.database, ann["id"], "email_marketing")  # a marketing mail
    await platform.ok("POST", "/api/v1/workflows", json=JOURNEY)
    await platform.ok("POST", "/api/v1/workflows/cart-mail/activate")
    started = await platform.start("ann")

    waiting = await platform.ok("GET", f"/api/v1/executions/{started['id']}")
    assert waiting["status"] == "waiting", str(waiting["error"])
    sent = next(step for step in waiting["steps"] if step["nodeId"] == "send")
    assert sent["status"] == "completed", sent
    assert sent["output"]["status"] == 202  # Prism accepted it: it fits SendGrid's contract
    assert sent["delivery"]["status"] == "sent"

    send_id = idempotency_key(started["id"], "", "send", 1, 0)
    opened = {
        "email": "ann@example.com",
        "timestamp": int(time.time()) + 1,
        "event": "open",
        "sg_event_id": "open-evt-1",
        "sg_message_id": "msg-1.filter",
        "useragent": "Mozilla/5.0",
        "sg_machine_open": False,
        # SendGrid echoes each personalization's custom_args as top-level keys.
        "cf_workspace": "default",
        "cf_send": send_id,
        "cf_execution": started["id"],
        "cf_node": "send",
    }
    hook = signed_sendgrid_event([opened], int(time.time()))
    received = await platform.http.post(f"/api/v1/webhooks/sendgrid/{connection['id']}", **hook)
    assert received.status_code == 200, received.text
    await platform.drain()

    done = await platform.ok("GET", f"/api/v1/executions/{started['id']}")
    assert done["status"] == "completed", done
    assert [step["nodeId"] for step in done["steps"]][-1] == "opened"
    waited = next(step for step in done["steps"] if step["nodeId"] == "wait-open")
    assert waited["output"]["event"] == "email.opened"
    delivery = next(step for step in done["steps"] if step["nodeId"] == "send")["delivery"]
    assert delivery["status"] == "opened"
    assert [entry["event"] for entry in delivery["events"]] == ["sent", "opened"]

    # The same webhook again (SendGrid delivers at least once) changes nothing.
    again = await platform.http.post(f"/api/v1/webhooks/sendgrid/{connection['id']}", **hook)
    assert again.status_code == 200
    await platform.drain()
    assert await platform.ok("GET", f"/api/v1/executions/{started['id']}") == done


async def test_a_send_prism_refuses_fails_without_retry_and_reaches_the_dead_letters(
    platform: Platform, sendgrid_prism: str
) -> None:
    """No sender and no default sender: the builder refuses before anything is sent, and the
    step fails at once (a retry could not help) into the dead-letter queue."""
    await platform.ok(
        "POST",
        "/api/v1/connections",
        json={
            "name": "mail",
            "provider": "sendgrid",
            "credentials": {"token": "SG.test-key"},
            "settings": {"baseUrl": sendgrid_prism},
        },
    )
    bo = await platform.ok(
        "POST", "/api/v1/contacts", json={"userId": "bo", "email": "bo@example.com"}
    )
    await set_consent(platform.database, bo["id"], "email_marketing")
    await platform.ok("POST", "/api/v1/workflows", json=JOURNEY)
    await platform.ok("POST", "/api/v1/workflows/cart-mail/activate")
    started = await platform.start("bo")

    failed = await platform.ok("GET", f"/api/v1/executions/{started['id']}")
    assert failed["status"] == "failed"
    step = next(step for step in failed["steps"] if step["nodeId"] == "send")
    assert step["attempt"] == 1  # not retried: a retry could not help
    assert "defaultFrom" in step["error"]["message"]
    letters = await platform.ok("GET", "/api/v1/dead-letters")
    assert [letter["nodeId"] for letter in letters["items"]] == ["send"]
