"""What `campaignflow serve` writes while it answers requests: JSON lines, one per request,
and none of the credentials or personal data the requests carried."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.conftest import TOKEN, Server

pytestmark = [pytest.mark.slow]

FORGED_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2VkLXNpZ25hdHVyZQ"
EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 2671"
QUERY_SECRET = "s3cr3t-query-value"


def test_the_server_logs_requests_without_credentials_or_personal_data(served: Server) -> None:
    event = {"type": "track", "userId": "u1", "event": "signed_up"}
    event["properties"] = {"email": EMAIL, "phone": PHONE}
    forged = httpx.post(
        f"{served.url}/api/v1/events",
        json=event,
        headers={"Authorization": f"Bearer {FORGED_TOKEN}"},
    )
    lookup = httpx.get(
        f"{served.url}/api/v1/contacts/{EMAIL}",
        params={"token": QUERY_SECRET},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )

    output = served.output()
    for seed in (FORGED_TOKEN, TOKEN, EMAIL, PHONE, QUERY_SECRET):
        assert seed not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    requests = [line for line in lines if line["logger"] == "campaignflow.access"]
    logged = [(line["method"], line["path"], line["status"]) for line in requests]
    assert ("POST", "/api/v1/events", forged.status_code) in logged
    assert (
        "GET",
        "/api/v1/contacts/***@example.com?token=[REDACTED]",
        lookup.status_code,
    ) in logged
    assert forged.status_code == 401
