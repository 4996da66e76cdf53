"""The access log: one structured, masked line per request, tied to the request by its id."""

from __future__ import annotations

from typing import Any

import httpx

from tests._support.log_capture import captured_logs, json_lines
from tests.integration.api.conftest import ClientFactory, make_settings

EMAIL = "jane.doe@example.com"
SECRET = "s3cr3t-query-value"


def _access_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "campaignflow.access"]


async def test_each_request_is_one_masked_access_line(client: httpx.AsyncClient) -> None:
    with captured_logs() as stream:
        response = await client.get(
            f"/api/v1/contacts/{EMAIL}?q=jane.doe%40example.com&token={SECRET}",
            headers={"X-Request-ID": "req-42"},
        )

    assert SECRET not in stream.getvalue()
    assert EMAIL not in stream.getvalue()
    (line,) = _access_lines(json_lines(stream))
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["method"] == "GET"
    assert line["path"] == ("/api/v1/contacts/***@example.com?q=***@example.com&token=[REDACTED]")
    assert line["status"] == response.status_code
    assert 0 < line["duration_ms"] < 10_000
    assert line["client_ip"] == "127.0.0.1"
    assert line["request_id"] == "req-42"
    assert response.headers["x-request-id"] == "req-42"


async def test_a_request_without_a_usable_id_gets_a_fresh_one(client: httpx.AsyncClient) -> None:
    with captured_logs() as stream:
        first = await client.get("/healthz", headers={"X-Request-ID": "no spaces allowed"})
        second = await client.get("/healthz")

    logged = [line["request_id"] for line in _access_lines(json_lines(stream))]
    answered = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert logged == answered
    assert len(set(logged)) == 2
    assert "no spaces allowed" not in logged


async def test_the_access_log_can_be_switched_off(app_client: ClientFactory) -> None:
    with captured_logs() as stream:
        async with app_client(make_settings(access_log=False)) as client:
            response = await client.get("/healthz")

    assert response.status_code == 200
    assert _access_lines(json_lines(stream)) == []
