"""Tenant isolation: an owner of workspace B, holding every permission, gets 404 for every route
that names one of workspace A's resources, sees none of them in lists, and changes nothing.

Every route with a path parameter must be covered by ``RESOURCES`` below, so a new route cannot
skip this test."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from campaignflow.api.app import create_app
from campaignflow.store.database import Database
from tests._support.routes import served_routes, signature_authenticated
from tests.integration.api.conftest import ClientFactory, make_settings, workflow

# Bodies that would be valid in A, so that a 404 cannot come from validation.
BODIES: dict[str, Any] = {
    "update_workflow": workflow("shared", name="Hijacked"),
    "replace_trigger": {"workflowId": "shared", "trigger": {"type": "behavior", "event": "y"}},
    "update_contact": {"traits": {"hijacked": True}},
    "update_consent": {"purposes": {"email_marketing": False}},
    "update_principal": {"name": "hijacked"},
    "put_grant": {"role": "viewer"},
    "execute_workflow": {"subject": "u1", "input": {}},
    "simulate_workflow": {"start": "2026-05-01T10:00:00Z", "input": {}},
    "start_authorization": {
        "redirectUri": "https://cf.example.com/api/v1/connections/authorize/callback"
    },
    "configure_sync": {
        "syncStrategy": "on-demand",
        "dataMapping": {"contactFields": {"email": "email"}},
    },
    "update_alert_channel": {"name": "hijacked"},
    "update_alert_rule": {"threshold": 99},
}


async def _seed(http: httpx.AsyncClient) -> dict[str, str]:
    """One of each resource in workspace A; returns path parameter -> id."""

    async def created(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    await created(await http.post("/api/v1/workflows", json=workflow("shared")))
    await created(await http.post("/api/v1/workflows/shared/activate"))
    trigger = await created(
        await http.post(
            "/api/v1/triggers",
            json={"workflowId": "shared", "trigger": {"type": "behavior", "event": "x"}},
        )
    )
    contact = await created(await http.post("/api/v1/contacts", json={"userId": "u1"}))
    principal = await created(
        await http.post("/api/v1/principals", json={"name": "a", "role": "viewer"})
    )
    key = await created(
        await http.post("/api/v1/api-keys", json={"name": "a", "principalId": principal["id"]})
    )
    await created(
        await http.put(
            f"/api/v1/workflows/shared/grants/{principal['id']}", json={"role": "editor"}
        )
    )
    client = await created(
        await http.post("/api/v1/oauth-clients", json={"name": "a", "role": "viewer"})
    )
    execution = await created(
        await http.post("/api/v1/workflows/shared/execute", json={"subject": "u1", "input": {}})
    )
    connection = await created(
        await http.post(
            "/api/v1/connections",
            json={"name": "crm", "provider": "pipedrive", "credentials": {"api_key": "pd-a"}},
        )
    )
    sync = f"/api/v1/connections/{connection['id']}/sync"
    await created(await http.put(sync, json=BODIES["configure_sync"]))
    response = await http.post(sync)
    assert response.status_code == 202, response.text
    run = response.json()
    erasure = await http.post("/api/v1/erasures", json={"userId": "someone-else"})
    assert erasure.status_code == 202, erasure.text
    channel = await created(
        await http.post(
            "/api/v1/alert-channels",
            json={"name": "ops", "kind": "slack", "url": "https://hooks.example.com/T/B/x"},
        )
    )
    rule = await created(
        await http.post(
            "/api/v1/alert-rules",
            json={
                "name": "failing",
                "metric": "executions.failed",
                "comparator": ">",
                "threshold": 1,
                "window": "5m",
                "channels": [channel["id"]],
            },
        )
    )
    return {
        "workflow_id": "shared",
        "trigger_id": trigger["id"],
        "contact_id": contact["id"],
        "principal_id": principal["id"],
        "key_id": key["id"],
        "client_id": client["clientId"],
        "execution_id": execution["id"],
        "connection_id": connection["id"],
        "run_id": run["id"],
        "erasure_id": erasure.json()["id"],
        # No dead letter is seeded: an id of the right shape stands for one; the store's
        # query is the same whether or not A holds it (covered in test_executions_api).
        "dead_letter_id": execution["id"],
        "channel_id": channel["id"],
        "rule_id": rule["id"],
        # No alert is seeded (only the evaluator opens one): an id of the right shape stands
        # for it; covered with real alerts in tests/integration/alerting.
        "alert_id": rule["id"],
    }


async def test_another_workspace_gets_404_for_every_resource_of_this_one(
    database: Database, app_client: ClientFactory
) -> None:
    async with app_client(make_settings("acme")) as a:
        ids = await _seed(a)
        before = {path: (await a.get(path)).json() for path in _readable(ids)}
        async with app_client(make_settings("globex")) as b:
            await b.post("/api/v1/workflows", json=workflow("mine"))  # B is not empty
            checked = 0
            for route in served_routes(create_app(make_settings(), database=database)):
                params = re.findall(r"\{(\w+)\}", route.path)
                # A webhook names no caller workspace: the provider's signature, checked against
                # the connection in its path, is all (test_webhooks_api covers who gets in).
                if not params or signature_authenticated(route):
                    continue
                missing = [p for p in params if p not in ids]
                assert not missing, f"{route.path}: add {missing} to the seeded resources"
                path = route.path.format(**ids)
                for method in route.methods:
                    body = BODIES.get(route.name, {}) if method != "GET" else None
                    response = await b.request(method, path, json=body)
                    assert response.status_code == 404, (method, path, response.text)
                    checked += 1
            assert checked > 25
            listings = ("workflows", "triggers", "contacts", "executions", "principals")
            for listing in (*listings, "connections", "alert-channels", "alert-rules"):
                page = (await b.get(f"/api/v1/{listing}")).json()
                assert not set(ids.values()) & {item.get("id") for item in page["items"]}
            keys = (await b.get("/api/v1/api-keys")).json()["items"]
            assert ids["key_id"] not in {k["id"] for k in keys}
            clients = (await b.get("/api/v1/oauth-clients")).json()["items"]
            assert ids["client_id"] not in {c["clientId"] for c in clients}
        after = {path: (await a.get(path)).json() for path in _readable(ids)}
    for path, body in before.items():
        if path.startswith("/api/v1/executions/"):
            continue  # its steps move on by themselves
        assert after[path] == body, path


def _readable(ids: dict[str, str]) -> list[str]:
    return [
        "/api/v1/workflows/shared",
        f"/api/v1/triggers/{ids['trigger_id']}",
        f"/api/v1/contacts/{ids['contact_id']}",
        f"/api/v1/principals/{ids['principal_id']}",
        f"/api/v1/api-keys/{ids['key_id']}",
        f"/api/v1/oauth-clients/{ids['client_id']}",
        "/api/v1/workflows/shared/grants",
        f"/api/v1/connections/{ids['connection_id']}",
        f"/api/v1/connections/{ids['connection_id']}/sync-runs/{ids['run_id']}",
        f"/api/v1/alert-channels/{ids['channel_id']}",
        f"/api/v1/alert-rules/{ids['rule_id']}",
    ]


@pytest.mark.parametrize("workspace", ["acme"])
async def test_a_key_of_one_workspace_never_reads_another(
    workspace: str, app_client: ClientFactory
) -> None:
    async with app_client(make_settings(workspace)) as a:
        await a.post("/api/v1/workflows", json=workflow("only-in-acme"))
    async with app_client(make_settings("globex")) as b:
        listed = (await b.get("/api/v1/workflows")).json()["items"]
        assert "only-in-acme" not in {item["workflowId"] for item in listed}
