"""The e-mail channel, end to end through the API: an alert's test message sent through a
SendGrid connection to Prism serving SendGrid's own mail-send spec (a request that breaks the
spec is refused by Prism, so this is the contract), and to the fault server to read what the
message says and to see a provider's refusal reported."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest

from tests._support.faults import Respond, fault_server
from tests._support.prism_pool import PrismPool

pytestmark = [pytest.mark.xdist_group("prism"), pytest.mark.timeout(240)]

MAIL_SEND = "/v3/mail/send"
RECIPIENTS = ["oncall@example.com", "lead@example.com"]


@pytest.fixture(scope="session")
def mail_spec(prism_pool: PrismPool) -> Mapping[str, str]:
    return prism_pool.urls({"sendgrid_mail": "sendgrid/tsg_mail_v3.json"})


async def _email_channel(client: httpx.AsyncClient, base_url: str) -> str:
    connection = await client.post(
        "/api/v1/connections",
        json={
            "name": "mail",
            "provider": "sendgrid",
            "credentials": {"token": "SG.test-key"},
            "settings": {"baseUrl": base_url, "defaultFrom": "alerts@example.com"},
        },
    )
    assert connection.status_code == 201, connection.text
    channel = await client.post(
        "/api/v1/alert-channels",
        json={
            "name": "on-call",
            "kind": "email",
            "connectionId": connection.json()["id"],
            "recipients": RECIPIENTS,
        },
    )
    assert channel.status_code == 201, channel.text
    assert "recipients" not in channel.json()  # addresses are sealed, shown only as a hint
    return str(channel.json()["id"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_alert_email_satisfies_sendgrids_mail_send_spec(
    client: httpx.AsyncClient, mail_spec: Mapping[str, str]
) -> None:
    channel = await _email_channel(client, mail_spec["sendgrid_mail"])
    result = await client.post(f"/api/v1/alert-channels/{channel}/test")
    assert result.status_code == 200, result.text
    assert result.json()["ok"] is True, result.json()
    assert result.json()["status"] == 202


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_alert_email_names_the_alert_and_goes_to_every_recipient(
    client: httpx.AsyncClient,
) -> None:
    async with fault_server() as server:
        server.script(MAIL_SEND, Respond(202), Respond(401, {"errors": [{"message": "bad key"}]}))
        channel = await _email_channel(client, server.url)
        sent = (await client.post(f"/api/v1/alert-channels/{channel}/test")).json()
        refused = (await client.post(f"/api/v1/alert-channels/{channel}/test")).json()
    assert sent["ok"] is True
    assert refused["ok"] is False
    assert refused["status"] == 401
    body = server.received(MAIL_SEND)[0].json
    assert body["from"]["email"] == "alerts@example.com"
    recipients = [to["email"] for p in body["personalizations"] for to in p["to"]]
    assert sorted(recipients) == sorted(RECIPIENTS)
    assert "test" in body["subject"].lower()
