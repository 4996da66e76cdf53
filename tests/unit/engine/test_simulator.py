"""The dry-run: the real interpreter on a virtual clock, with recorded messages and no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from campaignflow.engine.simulator import (
    EPOCH,
    MAX_STEPS,
    SimulationResult,
    parse_scenario,
    simulate,
)
from campaignflow.errors import InvalidDefinition, InvalidScenario

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "workflows"
CART = {"cartId": "c-1", "itemCount": 2, "total": 150}
ANN = {"email": "ann@example.com", "first_name": "Ann"}


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


def workflow(nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "workflowId": "dry-run",
        "name": "Dry run",
        "triggers": [{"type": "api"}],
        "errorHandling": extra.pop("errorHandling", {}),
        "nodes": nodes,
        **extra,
    }


def http(node_id: str, *, next: str = "done", **extra: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "action",
        "config": {"action": "http", "params": {"url": f"https://api.example.com/{node_id}"}},
        "next": next,
        **extra,
    }


END = {"id": "done", "type": "end"}


async def run(definition: dict[str, Any], scenario: object = None) -> SimulationResult:
    return await simulate(definition, parse_scenario(scenario or {}))


def path(result: SimulationResult) -> list[tuple[str, str]]:
    return [(step.node_id, str(step.status)) for step in result.path]


def at(result: SimulationResult, node_id: str) -> list[timedelta]:
    return [step.finished_at - result.start for step in result.path if step.node_id == node_id]


def show(result: SimulationResult) -> None:
    """Print the path (pytest -s shows it): the dry-run is for reading."""
    for step in result.path:
        print(f"{step.finished_at:%Y-%m-%d %H:%M:%S} {step.node_id:<22} {step.status}")


# ---------------------------------------------------------------------- the examples


async def test_abandoned_cart_order_within_the_hour_ends_as_purchased_and_sends_nothing() -> None:
    order = {"after": "PT1H", "event": "order_completed", "properties": {"cartId": "c-1"}}

    result = await run(
        example("abandoned-cart"), {"contact": ANN, "input": CART, "events": [order]}
    )
    show(result)

    assert path(result) == [("wait-for-order", "completed"), ("purchased", "completed")]
    assert result.messages == ()
    assert result.status == "completed"
    assert result.finished_at == EPOCH + timedelta(hours=1)
    assert result.path[0].output["properties"] == {"cartId": "c-1"}
    (event,) = result.events
    assert (event.matched, event.node_id) == (True, "wait-for-order")


async def test_abandoned_cart_without_an_order_sends_a_reminder_then_the_coupon() -> None:
    other_cart = {"after": "PT1H", "event": "order_completed", "properties": {"cartId": "c-2"}}

    result = await run(
        example("abandoned-cart"), {"contact": ANN, "input": CART, "events": [other_cart]}
    )
    show(result)

    assert [node for node, _ in path(result)] == [
        "wait-for-order",
        "send-reminder",
        "wait-again",
        "high-value",
        "send-coupon",
        "gave-up",
    ]
    reminder, coupon = result.messages
    assert reminder.at == EPOCH + timedelta(hours=4)
    assert reminder.action == "sendgrid.send_email"
    assert reminder.params["to"] == "ann@example.com"
    assert reminder.params["dynamicTemplateData"]["cartUrl"] == "https://shop.example.com/cart/c-1"
    assert coupon.at == EPOCH + timedelta(days=1, hours=4)
    assert coupon.target == "POST https://coupons.example.com/v1/coupons"
    assert coupon.params["body"] == {"email": "ann@example.com", "percentOff": 10, "cartId": "c-1"}
    assert not result.events[0].matched
    assert "correlation" in (result.events[0].reason or "")


async def test_abandoned_cart_small_cart_gets_no_coupon() -> None:
    result = await run(example("abandoned-cart"), {"contact": ANN, "input": {**CART, "total": 40}})

    assert path(result)[-2:] == [("high-value", "completed"), ("gave-up", "completed")]
    assert [message.node_id for message in result.messages] == ["send-reminder"]


async def test_welcome_series_waits_for_a_weekday_morning_in_the_contacts_zone() -> None:
    scenario = {
        "start": "2026-01-02T10:00:00Z",  # a Friday
        "contact": {**ANN, "timezone": "Europe/Berlin"},
    }

    result = await run(example("welcome-series"), scenario)
    show(result)

    assert result.status == "completed"
    sent = [(message.params["templateId"], message.at) for message in result.messages]
    assert sent == [
        ("d-welcome-1", datetime(2026, 1, 2, 10, tzinfo=UTC)),
        ("d-getting-started", datetime(2026, 1, 4, 10, tzinfo=UTC)),  # two days later, a Sunday
        ("d-trial-offer", datetime(2026, 1, 5, 8, tzinfo=UTC)),  # Monday 09:00 in Berlin
    ]


async def test_lead_scoring_joins_the_enrichment_and_files_a_sales_lead() -> None:
    enriched = {"output": {"status": 200, "headers": {}, "body": {"employees": 500}}}
    scenario = {
        "contact": {"email": "vp@big.example", "job_title": "VP Sales"},
        "actions": {"enrich": enriched},
    }

    result = await run(example("lead-scoring"), scenario)
    show(result)

    assert result.status == "completed"
    branches = {step.node_id: step.token for step in result.path}
    assert branches["enrich"] == "/gather:enrich"
    assert branches["note-request"] == "/gather:note-request"
    assert ("gathered", "completed") in path(result)
    crm = result.messages[-1]
    assert (crm.node_id, crm.params["properties"]["lifecyclestage"]) == (
        "crm-sql",
        "salesqualifiedlead",
    )
    assert result.messages[0].target is not None
    assert result.messages[0].target.startswith("GET https://enrichment.example.com/")


async def test_lead_scoring_falls_back_when_the_enrichment_fails_for_good() -> None:
    scenario = {
        "contact": {"email": "someone@small.example"},
        "actions": {"enrich": {"error": "404 no such company", "retryable": False}},
    }

    result = await run(example("lead-scoring"), scenario)

    assert path(result)[1:5] == [
        ("enrich", "failed"),
        ("enrichment-failed", "completed"),
        ("note-request", "completed"),
        ("gathered", "completed"),
    ]
    assert [message.node_id for message in result.messages][:1] == ["enrich"]
    assert result.messages[0].error == "404 no such company"


async def test_re_engagement_stops_at_a_click_and_retries_without_one() -> None:
    click = {"after": "P3D", "event": "email.clicked", "properties": {"campaign": "re-engagement"}}
    clicked = await run(example("re-engagement"), {"contact": ANN, "events": [click]})
    ignored = await run(example("re-engagement"), {"contact": ANN})
    show(ignored)

    assert clicked.path[0].output == {"variant": "miss-you"}  # fixed by the default executionId
    assert path(clicked)[-2:] == [("wait-click", "completed"), ("re-engaged", "completed")]
    assert len(ignored.messages) == 4  # three emails, then the CRM update
    assert at(ignored, "send-a") == [timedelta(0), timedelta(days=14), timedelta(days=28)]
    assert ignored.messages[-1].action == "hubspot.upsert_contact"


# ---------------------------------------------------------------------- failures


async def test_retries_happen_at_their_backoff_times_on_the_virtual_clock() -> None:
    policy = {
        "retryPolicy": "exponential",
        "maxRetries": 3,
        "initialInterval": "PT10S",
        "jitter": 0,
    }
    flaky = {"call": {"error": "503 Service Unavailable", "retryable": True, "times": 2}}

    result = await run(workflow([http("call"), END], errorHandling=policy), {"actions": flaky})

    assert path(result) == [
        ("call", "retrying"),
        ("call", "retrying"),
        ("call", "completed"),
        ("done", "completed"),
    ]
    seconds = [timedelta(seconds=s) for s in (0, 10, 30)]
    assert [message.at - result.start for message in result.messages] == seconds
    assert [message.attempt for message in result.messages] == [1, 2, 3]
    assert [message.error for message in result.messages] == ["503 Service Unavailable"] * 2 + [
        None
    ]
    assert len({message.idempotency_key for message in result.messages}) == 1
    assert result.path[2].output == {"status": 200, "headers": {}, "body": None}


async def test_a_non_retryable_failure_takes_the_error_path_at_once() -> None:
    nodes = [http("call", onError="fallback"), END, {"id": "fallback", "type": "end"}]
    broken = {"call": {"error": "400 Bad Request", "retryable": False}}

    result = await run(workflow(nodes, errorHandling={"maxRetries": 5}), {"actions": broken})

    assert path(result) == [("call", "failed"), ("fallback", "completed")]
    assert result.path[0].error is not None
    assert result.path[0].error["message"] == "400 Bad Request"
    assert result.status == "completed"
    assert result.dead_letters == ()


async def test_without_on_error_the_step_goes_to_the_dead_letters_and_the_execution_fails() -> None:
    policy = {"retryPolicy": "linear", "maxRetries": 2, "initialInterval": "PT1M", "jitter": 0}

    result = await run(
        workflow([http("call"), END], errorHandling=policy),
        {"actions": {"call": {"error": "timeout"}}},  # retryable unless said otherwise
    )

    assert path(result) == [("call", "retrying"), ("call", "retrying"), ("call", "failed")]
    assert at(result, "call") == [timedelta(0), timedelta(minutes=1), timedelta(minutes=3)]
    assert result.status == "failed"
    (letter,) = result.dead_letters
    assert (letter.node_id, letter.attempts, len(letter.errors)) == ("call", 3, 3)
    assert result.error is not None
    assert result.error["node"] == "call"
    assert result.to_dict()["deadLetters"][0]["attempts"] == 3


# ---------------------------------------------------------------------- parallel, waits, time


def fan_out(mode: str) -> dict[str, Any]:
    return workflow(
        [
            {
                "id": "fan",
                "type": "parallel",
                "config": {"branches": ["fast", "slow"], "join": "meet"},
            },
            {"id": "fast", "type": "delay", "config": {"duration": "PT1M"}, "next": "ping"},
            http("ping", next="meet"),
            {"id": "slow", "type": "delay", "config": {"duration": "P1D"}, "next": "pong"},
            http("pong", next="meet"),
            {"id": "meet", "type": "join", "config": {"mode": mode}, "next": "done"},
            END,
        ]
    )


async def test_parallel_all_waits_for_every_branch_and_merges_them() -> None:
    result = await run(fan_out("all"))

    assert result.status == "completed"
    assert [message.node_id for message in result.messages] == ["ping", "pong"]
    join = next(step for step in result.path if step.node_id == "meet")
    assert join.finished_at - result.start == timedelta(days=1)
    assert set(join.output["branches"]) == {"fast", "slow"}
    assert {step.token for step in result.path if step.node_id == "pong"} == {"/fan:slow"}


async def test_parallel_any_continues_with_the_first_and_cancels_the_others() -> None:
    result = await run(fan_out("any"))

    assert [node for node, _ in path(result)] == ["fan", "fast", "ping", "meet", "done"]
    assert [message.node_id for message in result.messages] == ["ping"]
    assert result.status == "completed"
    assert result.finished_at == EPOCH + timedelta(minutes=1)


def waiting(timeout: str = "PT4H") -> dict[str, Any]:
    return workflow(
        [
            {
                "id": "wait",
                "type": "wait_for_event",
                "config": {
                    "event": "order_completed",
                    "correlationKey": "cartId",
                    "condition": "event.properties.total > 0",
                    "timeout": timeout,
                    "onTimeout": "remind",
                },
                "next": "thanks",
            },
            http("remind", next="done"),
            {"id": "thanks", "type": "end"},
            END,
        ]
    )


async def test_a_wait_times_out_and_a_late_event_is_reported_as_ignored() -> None:
    late = {
        "after": "PT5H",
        "event": "order_completed",
        "properties": {"cartId": "c-1", "total": 9},
    }

    result = await run(waiting(), {"input": CART, "events": [late]})

    assert path(result) == [("wait", "timed_out"), ("remind", "completed"), ("done", "completed")]
    assert at(result, "wait") == [timedelta(hours=4)]
    assert result.waits == ()
    (event,) = result.events
    assert not event.matched
    assert event.reason == "the execution had already ended (completed)"


async def test_a_wait_takes_only_a_correlated_event_whose_condition_holds() -> None:
    events = [
        {"after": "PT1H", "event": "order_completed", "properties": {"cartId": "c-1", "total": 0}},
        {"after": "PT2H", "event": "order_completed", "properties": {"cartId": "c-1", "total": 5}},
    ]

    result = await run(waiting(), {"input": CART, "events": events})

    assert path(result) == [("wait", "completed"), ("thanks", "completed")]
    assert [event.matched for event in result.events] == [False, True]
    assert result.events[1].after_step == 0  # offered before any step was logged


async def test_an_event_at_the_timeout_instant_comes_after_the_timeout() -> None:
    exact = {
        "after": "PT4H",
        "event": "order_completed",
        "properties": {"cartId": "c-1", "total": 1},
    }

    result = await run(waiting(), {"input": CART, "events": [exact]})

    assert path(result)[0] == ("wait", "timed_out")
    assert not result.events[0].matched


async def test_a_delay_beyond_the_horizon_leaves_the_execution_waiting() -> None:
    definition = workflow(
        [
            {"id": "pause", "type": "delay", "config": {"duration": "P30D"}, "next": "call"},
            http("call"),
            END,
        ]
    )
    late = {"after": "P10D", "event": "anything"}

    result = await run(definition, {"horizon": "P7D", "events": [late]})

    assert result.status == "waiting"
    assert result.horizon_reached
    assert result.path == ()
    assert result.messages == ()
    assert result.simulated_until == EPOCH + timedelta(days=7)
    assert result.finished_at is None
    assert "horizon" in (result.events[0].reason or "")


async def test_an_open_wait_is_reported_with_its_correlation_value() -> None:
    result = await run(waiting("P60D"), {"input": CART, "horizon": "P1D"})

    assert result.status == "waiting"
    (wait,) = result.waits
    assert (wait.node_id, wait.event_name, wait.correlation_value) == (
        "wait",
        "order_completed",
        "c-1",
    )
    assert wait.expires_at == EPOCH + timedelta(days=60)


async def test_a_loop_that_never_waits_long_is_cut_at_the_step_limit() -> None:
    definition = workflow(
        [
            {
                "id": "tick",
                "type": "action",
                "config": {"action": "log", "params": {"message": "t"}},
                "next": "again",
            },
            {"id": "again", "type": "delay", "config": {"duration": "PT0S"}, "next": "tick"},
        ]
    )

    result = await run(definition)

    assert result.truncated
    assert len(result.path) == MAX_STEPS
    assert result.status not in ("completed", "failed")


async def test_the_start_defaults_to_the_first_timed_event() -> None:
    events = [
        {"at": "2026-05-01T12:00:00+02:00", "event": "b"},
        {"at": "2026-05-01T09:00:00Z", "event": "a"},
        {"after": "PT1H", "event": "c"},
    ]

    result = await run(workflow([END]), {"events": events})

    assert result.start == datetime(2026, 5, 1, 9, tzinfo=UTC)
    assert [event.name for event in result.events] == ["a", "b", "c"]  # all after the end


async def test_the_result_is_json_ready_and_camel_case() -> None:
    result = await run(example("abandoned-cart"), {"contact": ANN, "input": CART})

    document = orjson.loads(orjson.dumps(result.to_dict()))

    assert document["status"] == "completed"
    assert document["start"] == "2026-01-01T00:00:00Z"
    step = document["path"][1]
    assert set(step) >= {"seq", "at", "nodeId", "nodeType", "branch", "attempt", "status"}
    assert (step["nodeId"], step["action"], step["target"]) == (
        "send-reminder",
        "sendgrid.send_email",
        "ann@example.com",
    )
    assert document["messages"][0]["idempotencyKey"]
    assert set(document) >= {"messages", "waits", "deadLetters", "events", "finishedAt"}


# ---------------------------------------------------------------------- invalid input


def problems_of(document: object) -> dict[str, str]:
    with pytest.raises(InvalidScenario) as caught:
        parse_scenario(document)
    return {problem.pointer: problem.code for problem in caught.value.problems}


def test_scenario_problems_point_at_the_field() -> None:
    found = problems_of(
        {
            "start": "2026-01-01T00:00:00",
            "contactt": {},
            "events": [
                {"at": "tomorrow", "event": "x"},
                {"event": "y"},
                {"after": "PT1H", "at": "2026-01-01T00:00:00Z", "event": "z"},
                {"after": "1h", "event": ""},
            ],
            "actions": {"call": {"times": 2}, "other": {"error": "x", "retryable": "yes"}},
            "horizon": "forever",
        }
    )

    assert found == {
        "/start": "invalid_timestamp",
        "/contactt": "unknown_field",
        "/events/0/at": "invalid_timestamp",
        "/events/1": "required",
        "/events/2/after": "one_of",
        "/events/3/after": "invalid_duration",
        "/events/3/event": "too_short",
        "/actions/call/times": "not_allowed",
        "/actions/other/retryable": "type",
        "/horizon": "invalid_duration",
    }


def test_a_bare_list_is_the_events_and_its_problems_point_into_it() -> None:
    assert len(parse_scenario([{"after": "PT1H", "event": "x"}]).events) == 1
    assert problems_of([{"after": "PT1H"}, {"at": 3, "event": "x"}]) == {
        "/0/event": "required",
        "/1/at": "type",
    }
    assert problems_of("events") == {"": "type"}


async def test_scenario_problems_against_the_workflow_are_all_reported() -> None:
    definition = workflow(
        [
            {
                "id": "note",
                "type": "action",
                "config": {"action": "log", "params": {"message": "m"}},
                "next": "call",
            },
            http("call"),
            END,
        ]
    )
    scenario = parse_scenario(
        {
            "start": "2026-02-01T00:00:00Z",
            "contact": {"timezone": "Mars/Olympus"},
            "events": [{"at": "2026-01-31T23:59:59Z", "event": "early"}],
            "actions": {"note": {"output": 1}, "done": {"output": 1}, "cal": {"output": 1}},
        }
    )

    with pytest.raises(InvalidScenario) as caught:
        await simulate(definition, scenario)

    found = {problem.pointer: problem.code for problem in caught.value.problems}
    assert found == {
        "/actions/cal": "unknown_node",
        "/actions/done": "invalid_value",
        "/actions/note": "not_allowed",
        "/contact/timezone": "invalid_timezone",
        "/events/0/at": "out_of_range",
    }


async def test_an_invalid_workflow_raises_with_every_problem() -> None:
    definition = workflow(
        [{"id": "a", "type": "action", "config": {"action": "http"}, "next": "b"}]
    )

    with pytest.raises(InvalidDefinition) as caught:
        await simulate(definition, parse_scenario({}))

    pointers = {problem.pointer for problem in caught.value.problems}
    assert "/nodes/0/next" in pointers
    assert len(pointers) >= 2
