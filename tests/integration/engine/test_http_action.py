"""The ``http`` action against a local sink: what is sent, what comes back, how it fails."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import pytest

from campaignflow import __version__
from campaignflow.engine.actions import ActionCall, ActionFailed
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.http_action import HttpExecutor, parse_retry_after
from tests._support.servers import free_port
from tests._support.sink import Sink, running_sink

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def http_call(url: str, *, key: str | None = None, **params: Any) -> ActionCall:
    return ActionCall(
        action="http",
        params={"url": url, **params},
        idempotency_key=key or f"key-{uuid.uuid4()}",
        workspace_id="ws",
        execution_id="ex",
        node_id="node",
        attempt=1,
    )


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with running_sink() as sink:
        yield sink


@pytest.fixture
async def executor() -> AsyncIterator[HttpExecutor]:
    executor = HttpExecutor(clock=ManualClock(NOW))
    yield executor
    await executor.aclose()


async def failure(executor: HttpExecutor, call: ActionCall) -> ActionFailed:
    with pytest.raises(ActionFailed) as caught:
        await executor.execute(call)
    return caught.value


# --- what is sent ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_sends_method_headers_and_json_body(
    sink: Sink, executor: HttpExecutor, method: str
) -> None:
    call = http_call(
        f"{sink.url}/echo?page=2",
        method=method,
        headers={"X-Trace": "abc"},
        body={"email": "ada@example.com", "tags": ["vip"], "score": 1.5},
    )
    output = await executor.execute(call)
    echoed = output["body"]
    assert echoed["method"] == method
    assert echoed["query"] == {"page": "2"}
    assert echoed["json"] == {"email": "ada@example.com", "tags": ["vip"], "score": 1.5}
    assert echoed["headers"]["x-trace"] == "abc"
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["headers"]["idempotency-key"] == call.idempotency_key
    assert echoed["headers"]["user-agent"] == f"campaignflow/{__version__}"


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
async def test_head_and_options_are_sent_too(
    sink: Sink, executor: HttpExecutor, method: str
) -> None:
    output = await executor.execute(http_call(f"{sink.url}/ok", method=method))
    assert output["status"] == 200
    assert sink.requests[-1]["method"] == method
    assert output["body"] is None or method == "OPTIONS"  # HEAD responses carry no body


async def test_no_body_is_sent_when_body_is_none(sink: Sink, executor: HttpExecutor) -> None:
    await executor.execute(http_call(f"{sink.url}/echo", method="POST"))
    recorded = sink.requests[-1]
    assert recorded["json"] is None
    assert recorded["headers"].get("content-length", "0") == "0"
    assert "content-type" not in recorded["headers"]


async def test_user_headers_override_idempotency_key_and_user_agent(
    sink: Sink, executor: HttpExecutor
) -> None:
    headers = {"idempotency-key": "mine-1", "USER-AGENT": "custom/1"}
    await executor.execute(http_call(f"{sink.url}/echo", headers=headers))
    sent = sink.requests[-1]["headers"]
    # Repeated headers are joined with ", " by the sink: one value means one header was sent.
    assert sent["idempotency-key"] == "mine-1"
    assert sent["user-agent"] == "custom/1"
    assert sink.effects == {"mine-1": 1}


async def test_retries_of_one_call_apply_once(sink: Sink, executor: HttpExecutor) -> None:
    call = http_call(f"{sink.url}/flaky/2", key="order-7")
    for _ in range(2):
        assert (await failure(executor, call)).retryable
    assert (await executor.execute(call))["body"] == {"ok": True, "attempt": 3}
    replay = await executor.execute(call)
    assert replay["headers"]["idempotent-replayed"] == "true"
    assert sink.effects == {"order-7": 1}
    assert sink.duplicates == 1


async def test_cookies_are_not_carried_between_calls(sink: Sink, executor: HttpExecutor) -> None:
    # A host name, not an IP address: aiohttp's default jar ignores cookies of IP addresses.
    base = sink.url.replace("127.0.0.1", "localhost")
    set_cookie = quote("sid=tenant-a-session; Path=/")
    await executor.execute(http_call(f"{base}/status/200?set_cookie={set_cookie}"))
    output = await executor.execute(http_call(f"{base}/echo"))
    assert "cookie" not in output["body"]["headers"]


# --- what comes back ------------------------------------------------------------------------


async def test_success_output_has_status_lowercased_headers_and_parsed_json(
    sink: Sink, executor: HttpExecutor
) -> None:
    call = http_call(f"{sink.url}/ok")
    output = await executor.execute(call)
    assert set(output) == {"status", "headers", "body", "truncated"}
    assert output["status"] == 200
    assert output["body"] == {"ok": True, "key": call.idempotency_key}
    assert output["truncated"] is False
    assert output["headers"]["content-type"].startswith("application/json")
    assert all(name == name.lower() for name in output["headers"])


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain", "hello", "hello"),
        ("application/json", "not json", "not json"),
        ("application/problem+json", '{"title": "ok"}', {"title": "ok"}),
    ],
)
async def test_body_is_json_only_when_declared_and_valid(
    sink: Sink, executor: HttpExecutor, content_type: str, body: str, expected: Any
) -> None:
    url = f"{sink.url}/status/200?body={quote(body)}&content_type={quote(content_type)}"
    assert (await executor.execute(http_call(url)))["body"] == expected


@pytest.mark.parametrize("status", [204, 304])
async def test_empty_body_is_none(sink: Sink, executor: HttpExecutor, status: int) -> None:
    output = await executor.execute(http_call(f"{sink.url}/status/{status}", method="GET"))
    assert output["status"] == status
    assert output["body"] is None


async def test_large_body_is_cut_and_marked(sink: Sink) -> None:
    executor = HttpExecutor(max_body_bytes=1000)
    try:
        big = await executor.execute(http_call(f"{sink.url}/echo", body={"data": "x" * 5000}))
        small = await executor.execute(http_call(f"{sink.url}/echo", body={"data": "x" * 10}))
    finally:
        await executor.aclose()
    assert big["truncated"] is True
    assert isinstance(big["body"], str)
    assert len(big["body"]) == 1000
    assert small["truncated"] is False
    assert small["body"]["json"] == {"data": "x" * 10}


async def test_get_follows_redirects_but_other_methods_do_not(
    sink: Sink, executor: HttpExecutor
) -> None:
    url = f"{sink.url}/status/302?location=/ok"
    assert (await executor.execute(http_call(url, method="GET")))["body"]["ok"] is True
    error = await failure(executor, http_call(url, method="POST"))
    assert not error.retryable
    assert error.details["status"] == 302
    assert sink.requests[-1]["path"] == "/status/302"  # the redirect was not followed


# --- HTTP failures --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_client_errors_are_not_retryable(
    sink: Sink, executor: HttpExecutor, status: int
) -> None:
    call = http_call(
        f"{sink.url}/status/{status}?api_key=hunter2",
        headers={"Authorization": "Bearer s3cret-token"},
    )
    error = await failure(executor, call)
    assert not error.retryable
    assert error.retry_after_s is None
    assert dict(error.details) == {"status": status, "body": f'{{"status":{status}}}'}
    assert f"HTTP {status}" in str(error)
    assert sink.url.removeprefix("http://") in str(error)
    assert "hunter2" not in str(error)
    assert "s3cret" not in str(error)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503])
async def test_transient_statuses_are_retryable(
    sink: Sink, executor: HttpExecutor, status: int
) -> None:
    error = await failure(executor, http_call(f"{sink.url}/status/{status}"))
    assert error.retryable
    assert error.retry_after_s is None
    assert error.details["status"] == status


async def test_retry_after_seconds_are_honoured(sink: Sink, executor: HttpExecutor) -> None:
    error = await failure(executor, http_call(f"{sink.url}/status/429?retry_after=7"))
    assert error.retryable
    assert error.retry_after_s == 7


async def test_retry_after_http_date_is_honoured(sink: Sink, executor: HttpExecutor) -> None:
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    error = await failure(executor, http_call(f"{sink.url}/status/503?retry_after={quote(when)}"))
    assert error.retry_after_s == 90


@pytest.mark.parametrize(
    "value",
    ["-5", "soon", "", "1.5e3", format_datetime(NOW - timedelta(minutes=1), usegmt=True)],
)
def test_unusable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


def test_retry_after_date_without_zone_is_utc() -> None:
    assert parse_retry_after("Sat, 01 Mar 2025 12:00:30", NOW) == 30


async def test_error_details_body_is_capped(sink: Sink, executor: HttpExecutor) -> None:
    error = await failure(executor, http_call(f"{sink.url}/status/500?body={'e' * 5000}"))
    assert error.details["body"] == "e" * 2048


# --- transport failures ---------------------------------------------------------------------


async def test_timeout_is_retryable_and_quick(sink: Sink, executor: HttpExecutor) -> None:
    started = time.monotonic()
    error = await failure(executor, http_call(f"{sink.url}/slow/1500?q=secret", timeout="PT0.2S"))
    assert time.monotonic() - started < 1.0
    assert error.retryable
    assert sink.url.removeprefix("http://") in str(error)
    assert "secret" not in str(error)


async def test_default_timeout_applies_without_a_timeout_param(sink: Sink) -> None:
    executor = HttpExecutor(default_timeout_s=0.2)
    try:
        started = time.monotonic()
        error = await failure(executor, http_call(f"{sink.url}/slow/1500"))
    finally:
        await executor.aclose()
    assert time.monotonic() - started < 1.0
    assert error.retryable


async def test_connection_reset_is_retryable(sink: Sink, executor: HttpExecutor) -> None:
    error = await failure(executor, http_call(f"{sink.url}/reset"))
    assert error.retryable
    assert sink.url.removeprefix("http://") in str(error)
    assert sink.effects == {}


async def test_connection_refused_is_retryable(executor: HttpExecutor) -> None:
    port = free_port()
    error = await failure(executor, http_call(f"http://127.0.0.1:{port}/ok?token=t0p"))
    assert error.retryable
    assert f"127.0.0.1:{port}" in str(error)
    assert "t0p" not in str(error)


@pytest.mark.parametrize(
    "params",
    [
        {"url": "ftp://example.com/file"},
        {"url": "example.com/path"},
        {"url": "http:///no-host"},
        {"url": "http://example.com:99999/"},
        {"url": "http://example.com/", "method": "TRACE"},
        {"url": "http://example.com/", "timeout": "soon"},
        {"url": "http://example.com/", "body": {"when": datetime.now}},
        {"url": "http://example.com/", "headers": {"X-Count": 3}},
    ],
)
async def test_invalid_requests_are_not_retryable(
    executor: HttpExecutor, params: dict[str, Any]
) -> None:
    call = ActionCall("http", params, "k", "ws", "ex", "node", 1)
    error = await failure(executor, call)
    assert not error.retryable
    assert str(error).startswith("invalid http request")


async def test_header_injection_is_refused_without_echoing_the_value(
    sink: Sink, executor: HttpExecutor
) -> None:
    headers = {"X-Token": "s3cret\r\nX-Evil: 1"}
    error = await failure(executor, http_call(f"{sink.url}/echo", headers=headers))
    assert not error.retryable
    assert "s3cret" not in str(error)
    assert sink.requests == []


# --- the pooled session ---------------------------------------------------------------------


async def test_calls_reuse_one_keep_alive_connection(sink: Sink, executor: HttpExecutor) -> None:
    for _ in range(3):
        await executor.execute(http_call(f"{sink.url}/ok"))
    ports = {recorded["peer_port"] for recorded in sink.requests}
    assert len(ports) == 1


async def test_concurrent_calls_share_the_connection_limit(sink: Sink) -> None:
    executor = HttpExecutor(connection_limit=2)
    try:
        calls = [executor.execute(http_call(f"{sink.url}/slow/50")) for _ in range(8)]
        outputs = await asyncio.gather(*calls)
    finally:
        await executor.aclose()
    assert [output["status"] for output in outputs] == [200] * 8
    assert len({recorded["peer_port"] for recorded in sink.requests}) == 2


async def test_aclose_refuses_later_calls_retryably(sink: Sink) -> None:
    executor = HttpExecutor()
    await executor.execute(http_call(f"{sink.url}/ok"))
    await executor.aclose()
    await executor.aclose()  # closing twice is harmless
    error = await failure(executor, http_call(f"{sink.url}/ok"))
    assert error.retryable
    assert len(sink.requests) == 1
