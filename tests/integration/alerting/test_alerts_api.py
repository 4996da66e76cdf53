"""``/api/v1/alert-channels``, ``/alert-rules`` and ``/alerts`` over the real app: problems
with pointers, secrets that never come back, a channel's test message, and alerts that the
evaluator opened, read through the API."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
from sqlalchemy import insert

from campaignflow.integrations.runtime import open_integrations
from campaignflow.observability.alert_evaluator import open_evaluator
from campaignflow.security.contact_fields import contact_cipher_from
from campaignflow.security.rbac import Role
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.tables import dead_letters
from campaignflow.store.workflows import utc_now
from tests._support.faults import Respond, fault_server
from tests.integration.api.conftest import ClientFactory, make_settings
from tests.integration.api.test_authorization import make_key

RULE: dict[str, Any] = {
    "name": "dead letters piling up",
    "metric": "dead_letters.open",
    "comparator": ">",
    "threshold": 0,
    "severity": "warning",
}


def _pointers(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {problem["pointer"] for problem in response.json()["errors"]}


async def test_every_problem_of_a_rule_points_at_its_member(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/alert-rules",
        json={
            "name": "",
            "metric": "executions.failure_rate",
            "filters": {"workflowId": "w", "nodeId": "x", "minSamples": 0},
            "comparator": "=>",
            "threshold": "high",
            "window": "P1M",
            "for": "5 minutes",
            "severity": "urgent",
            "channels": ["nope"],
            "repeatInterval": "10s",
            "colour": "red",
        },
    )
    assert _pointers(response) == {
        "/name",
        "/filters/nodeId",
        "/filters/minSamples",
        "/comparator",
        "/threshold",
        "/window",
        "/for",
        "/severity",
        "/repeatInterval",
        "/colour",
    }
    unknown = await client.post("/api/v1/alert-rules", json={**RULE, "channels": ["nope"]})
    assert _pointers(unknown) == {"/channels/0"}
    assert _pointers(await client.post("/api/v1/alert-rules", json=[1])) == {""}


async def test_a_channel_keeps_its_secrets(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/alert-channels",
        json={"name": "ops", "kind": "webhook", "url": "https://hooks.example.com/in/s3cr3t-path"},
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    generated = channel["secret"]  # shown once
    assert len(generated) >= 32
    assert channel["hint"] == "https://hooks.example.com/…path"
    fetched = await client.get(f"/api/v1/alert-channels/{channel['id']}")
    listed = await client.get("/api/v1/alert-channels")
    for text in (fetched.text, listed.text):
        assert "s3cr3t" not in text
        assert generated not in text
    missing = await client.post("/api/v1/alert-channels", json={"name": "mail", "kind": "email"})
    assert _pointers(missing) == {"/recipients", "/connectionId"}
    bad_url = await client.post(
        "/api/v1/alert-channels", json={"name": "x", "kind": "slack", "url": "ftp://host/x"}
    )
    assert _pointers(bad_url) == {"/url"}
    kind = await client.patch(f"/api/v1/alert-channels/{channel['id']}", json={"kind": "slack"})
    assert _pointers(kind) == {"/kind"}
    taken = await client.post(
        "/api/v1/alert-channels",
        json={"name": "ops", "kind": "slack", "url": "https://hooks.example.com/x"},
    )
    assert taken.status_code == 409


async def test_the_test_message_is_signed_and_reports_the_receivers_answer(
    client: httpx.AsyncClient,
) -> None:
    async with fault_server() as server:
        server.script("/hook", Respond(200), Respond(503))
        secret = "a-secret-of-24-characters"
        created = await client.post(
            "/api/v1/alert-channels",
            json={"name": "ops", "kind": "webhook", "url": f"{server.url}/hook", "secret": secret},
        )
        assert "secret" not in created.json()  # given, not generated: never echoed
        path = f"/api/v1/alert-channels/{created.json()['id']}/test"
        first = (await client.post(path)).json()
        second = (await client.post(path)).json()
    assert first == {"ok": True, "message": "HTTP 200", "status": 200}
    assert second == {"ok": False, "message": "HTTP 503", "status": 503}
    request = server.received("/hook")[0]
    stamp, signature = (
        p.split("=", 1)[1] for p in request.headers["campaignflow-signature"].split(",")
    )
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + request.body, hashlib.sha256)
    assert signature == expected.hexdigest()
    assert request.json["type"] == "alert.test"


async def test_rules_patch_by_merge_and_alerts_are_listed_with_their_notifications(
    client: httpx.AsyncClient, database: Database
) -> None:
    async with fault_server() as server:
        channel = (
            await client.post(
                "/api/v1/alert-channels",
                json={"name": "s", "kind": "slack", "url": f"{server.url}/slack"},
            )
        ).json()
        created = await client.post(
            "/api/v1/alert-rules", json={**RULE, "channels": [channel["id"]]}
        )
        assert created.status_code == 201, created.text
        rule = created.json()
        assert rule["state"] == "ok"
        assert rule["definition"]["window"] is None  # a gauge has no window
        patched = await client.patch(
            f"/api/v1/alert-rules/{rule['id']}",
            json={"threshold": 1, "description": "two or more"},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["definition"]["threshold"] == 1.0
        assert patched.json()["definition"]["channels"] == [channel["id"]]
        await _dead_letters(database, 2)
        settings = make_settings()
        links = open_integrations(database, settings, contact_cipher_from(settings))
        try:
            await open_evaluator(database, links).run_once()
        finally:
            await links.aclose()
        firing = (await client.get("/api/v1/alerts", params={"status": "firing"})).json()
    [alert] = firing["items"]
    assert (alert["ruleId"], alert["value"], alert["threshold"]) == (rule["id"], 2.0, 1.0)
    detail = (await client.get(f"/api/v1/alerts/{alert['id']}")).json()
    assert [(n["kind"], n["status"]) for n in detail["notifications"]] == [("fire", "sent")]
    assert (await client.get("/api/v1/alerts", params={"status": "resolved"})).json()["items"] == []
    state = (await client.get(f"/api/v1/alert-rules/{rule['id']}")).json()
    assert (state["state"], state["incidentId"]) == ("firing", alert["id"])
    assert server.received("/slack")[0].json["text"].startswith("[FIRING] dead letters")


async def test_an_editor_writes_rules_but_not_channels(
    client: httpx.AsyncClient, app_client: ClientFactory
) -> None:
    editor = await make_key(client, Role.EDITOR)
    viewer = await make_key(client, Role.VIEWER)
    as_editor = {"Authorization": f"Bearer {editor}"}
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    channel = {"name": "c", "kind": "slack", "url": "https://hooks.example.com/x"}
    assert (
        await client.post("/api/v1/alert-channels", json=channel, headers=as_editor)
    ).status_code == 403
    assert (
        await client.post("/api/v1/alert-rules", json=RULE, headers=as_editor)
    ).status_code == 201
    assert (await client.get("/api/v1/alert-rules", headers=as_viewer)).status_code == 403


async def _dead_letters(database: Database, count: int) -> None:
    """Open dead letters, written as the worker writes them (the metric only counts them)."""
    rows = [
        {
            "workspace_id": "default",
            "id": new_id(),
            "execution_id": new_id(),
            "workflow_id": "w",
            "workflow_version": 1,
            "node_id": "n",
            "token": "",
            "status": "open",
            "attempts": 1,
            "errors": [],
            "input": {},
            "created_at": utc_now(),
            "resolved_at": None,
        }
        for _ in range(count)
    ]
    async with database.transaction() as connection:
        await connection.execute(insert(dead_letters), rows)
