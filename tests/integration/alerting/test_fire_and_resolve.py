"""The done criterion of alerting: a provider answering 500 makes executions fail, the rule
fires, each channel gets exactly one fire notification, a second evaluation sends nothing, the
provider recovers and the window passes, and each channel gets exactly one resolve.

The signature is checked by an implementation written here from the documented scheme
(docs/alerting.md), not by the code under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import timedelta

from campaignflow.domain.alerting import AlertRule, validate_rule
from campaignflow.services.alerts import ChannelRequest
from tests._support.faults import Received, Respond
from tests.integration.alerting.conftest import WORKSPACE, Stage, calling

SECRET = "whsec-0123456789abcdef"
PROVIDER, SIGNED, SLACK = "/provider", "/hooks/signed", "/hooks/slack"


def verify(request: Received, secret: str, tolerance_s: int = 300) -> None:
    """A receiver's check, per docs/alerting.md: t=<unix>,v1=<hex HMAC-SHA256("t.body")>."""
    header = request.headers["campaignflow-signature"]
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    assert abs(time.time() - timestamp) <= tolerance_s, "a stale timestamp is a replay"
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"])


async def _channels(stage: Stage) -> list[str]:
    signed = await stage.alerts.create_channel(
        WORKSPACE,
        None,
        ChannelRequest(
            name="ops-webhook", kind="webhook", url=stage.server.url + SIGNED, secret=SECRET
        ),
    )
    slack = await stage.alerts.create_channel(
        WORKSPACE,
        None,
        ChannelRequest(name="ops-slack", kind="slack", url=stage.server.url + SLACK),
    )
    return [signed.record.id, slack.record.id]


async def _failing_rule(stage: Stage, channels: list[str], **extra: object) -> str:
    rule = await stage.alerts.create_rule(
        WORKSPACE,
        None,
        {
            "name": "calls failing",
            "metric": "executions.failed",
            "filters": {"workflowId": "calling"},
            "comparator": ">=",
            "threshold": 2,
            "window": "5m",
            "severity": "critical",
            "channels": channels,
            **extra,
        },
    )
    return rule.id


async def test_a_rule_fires_once_and_resolves_once_driven_by_the_fault_server(
    stage: Stage,
) -> None:
    stage.server.script(PROVIDER, then=Respond(500))
    workflow = await stage.deploy(calling(stage.server.url + PROVIDER))
    channels = await _channels(stage)
    await _failing_rule(stage, channels)

    await stage.run(workflow, 3)
    outcome = await stage.evaluator.run_once()
    assert (outcome.notifications_queued, outcome.sent) == (2, 2)
    [fired] = stage.server.received(SIGNED)
    verify(fired, SECRET)
    assert fired.json["type"] == "alert.fire"
    assert (fired.json["ruleName"], fired.json["value"], fired.json["severity"]) == (
        "calls failing",
        3.0,
        "critical",
    )
    [slack] = stage.server.received(SLACK)
    assert slack.json["text"].startswith("[FIRING] calls failing")
    assert [block["type"] for block in slack.json["blocks"]] == ["header", "section", "context"]

    stage.clock.advance(timedelta(seconds=30))
    await stage.evaluator.run_once()  # still failing: no second notification
    assert len(stage.server.received(SIGNED)) == 1
    assert len(stage.server.received(SLACK)) == 1

    stage.server.script(PROVIDER, then=Respond(200))
    ids = await stage.run(workflow, 2)
    assert {(await stage.executions.get(WORKSPACE, i)).status for i in ids} == {"completed"}
    stage.clock.advance(timedelta(minutes=6))  # the failures leave the window
    await stage.evaluator.run_once()
    await stage.evaluator.run_once()
    signed = stage.server.received(SIGNED)
    assert [r.json["type"] for r in signed] == ["alert.fire", "alert.resolve"]
    verify(signed[1], SECRET)
    assert signed[0].json["incidentId"] == signed[1].json["incidentId"]
    assert signed[0].json["id"] != signed[1].json["id"]  # receivers dedupe by it
    assert [r.json["text"][:10] for r in stage.server.received(SLACK)] == [
        "[FIRING] c",
        "[RESOLVED]",
    ]
    [incident] = await stage.alerts.list_incidents(
        WORKSPACE, status=None, rule_id=None, before=None, limit=10
    )
    assert incident.status == "resolved"
    assert incident.resolved_at == stage.clock.now()


async def test_a_receiver_that_fails_once_gets_the_notification_on_retry_once(
    stage: Stage,
) -> None:
    stage.server.script(PROVIDER, then=Respond(500))
    stage.server.script(SIGNED, Respond(500))  # then the default: 200
    workflow = await stage.deploy(calling(stage.server.url + PROVIDER))
    channels = await _channels(stage)
    await _failing_rule(stage, channels)
    await stage.run(workflow, 2)

    first = await stage.evaluator.run_once()
    assert (first.sent, first.failed) == (1, 0)  # Slack got it; the webhook is to retry
    assert len(stage.server.received(SIGNED)) == 1
    await stage.evaluator.run_once()  # the retry is not due yet
    assert len(stage.server.received(SIGNED)) == 1

    stage.clock.advance(timedelta(seconds=30))
    await stage.evaluator.run_once()
    stage.clock.advance(timedelta(seconds=30))
    await stage.evaluator.run_once()
    attempts = stage.server.received(SIGNED)
    assert [r.behaviour for r in attempts] == [Respond(500), Respond(200, {"ok": True})]
    assert attempts[0].json["id"] == attempts[1].json["id"]
    verify(attempts[1], SECRET)
    assert len(stage.server.received(SLACK)) == 1  # the failing channel delayed no other


async def test_a_client_error_is_not_retried(stage: Stage) -> None:
    stage.server.script(PROVIDER, then=Respond(500))
    stage.server.script(SIGNED, then=Respond(410))
    workflow = await stage.deploy(calling(stage.server.url + PROVIDER))
    channels = await _channels(stage)
    await _failing_rule(stage, channels[:1])
    await stage.run(workflow, 2)
    outcome = await stage.evaluator.run_once()
    assert outcome.failed == 1
    stage.clock.advance(timedelta(minutes=4))  # past any retry, still in the window
    await stage.evaluator.run_once()
    assert len(stage.server.received(SIGNED)) == 1
    [incident] = await stage.alerts.list_incidents(
        WORKSPACE, status="firing", rule_id=None, before=None, limit=10
    )
    _, [notification] = await stage.alerts.get_incident(WORKSPACE, incident.id)
    assert (notification.status, notification.last_error) == ("failed", "HTTP 410")


async def test_evaluators_running_at_once_notify_once(stage: Stage) -> None:
    stage.server.script(PROVIDER, then=Respond(500))
    workflow = await stage.deploy(calling(stage.server.url + PROVIDER))
    channels = await _channels(stage)
    await _failing_rule(stage, channels[:1])
    await stage.run(workflow, 2)
    await asyncio.gather(*(stage.evaluator.run_once() for _ in range(4)))
    await stage.evaluator.run_once()
    assert len(stage.server.received(SIGNED)) == 1


async def test_repeat_after_the_interval_only(stage: Stage) -> None:
    stage.server.script(PROVIDER, then=Respond(500))
    workflow = await stage.deploy(calling(stage.server.url + PROVIDER))
    channels = await _channels(stage)
    await _failing_rule(stage, channels[:1], window="1h", repeatInterval="10m")
    await stage.run(workflow, 2)
    for _ in range(4):  # 0, 4, 8, 12 minutes: a repeat at 12 only
        await stage.evaluator.run_once()
        stage.clock.advance(timedelta(minutes=4))
    kinds = [(r.json["type"], r.json["sequence"]) for r in stage.server.received(SIGNED)]
    assert kinds == [("alert.fire", 0), ("alert.repeat", 1)]


async def test_the_catalog_counts_by_the_window(stage: Stage) -> None:
    """Each windowed metric counts only its window; the failure rate has no value below its
    minimum sample count."""
    stage.server.script(PROVIDER, then=Respond(500))
    workflow = await stage.deploy(calling(stage.server.url + PROVIDER))
    await stage.run(workflow, 2)
    stage.server.script(PROVIDER, then=Respond(200))
    await stage.run(workflow, 3)
    metrics = stage.evaluator.metrics
    now = stage.clock.now()

    async def value(metric: str, **extra: object) -> float | None:
        return await metrics.value(WORKSPACE, _rule(metric, **extra), now)

    assert await value("executions.failed") == 2
    assert await value("executions.failure_rate", filters={"minSamples": 5}) == 0.4
    assert await value("executions.failure_rate", filters={"minSamples": 6}) is None
    assert await value("executions.failed", filters={"workflowId": "other"}) == 0
    assert await value("dead_letters.open") == 2
    stage.clock.advance(timedelta(minutes=6))
    now = stage.clock.now()
    assert await value("executions.failed") == 0


def _rule(metric: str, **extra: object) -> AlertRule:
    rule, problems = validate_rule(
        {"name": "m", "metric": metric, "comparator": ">", "threshold": 0, "window": "5m", **extra}
    )
    assert rule is not None, problems
    return rule
