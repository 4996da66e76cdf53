"""Every node type, run by a real worker on SQLite and PostgreSQL, with a clock the test moves."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.engine.conftest import WORKSPACE, Harness, workflow


def http(node_id: str, url: str, **extra: object) -> dict[str, object]:
    params = {"method": "POST", "url": url, **extra.pop("params", {})}  # type: ignore[dict-item]
    return {
        "id": node_id,
        "type": "action",
        "config": {"action": "http", "params": params},
        **extra,
    }


async def test_condition_delay_http_end_runs_to_completion(harness: Harness) -> None:
    url = harness.sink.url
    definition = workflow(
        "four-nodes",
        [
            {
                "id": "check",
                "type": "condition",
                "config": {
                    "branches": [{"when": "input.total > 100", "next": "pause"}],
                    "default": "done",
                },
            },
            {"id": "pause", "type": "delay", "config": {"duration": "PT0S"}, "next": "call"},
            http(
                "call",
                f"{url}/echo",
                params={"body": {"order": "{{ input.order }}", "who": "{{ contact.id }}"}},
                next="done",
            ),
            {"id": "done", "type": "end"},
        ],
    )
    workflow_id = await harness.deploy(definition)
    execution_id = await harness.start(workflow_id, {"total": 150, "order": "A-1"})

    await harness.drain()

    execution = await harness.execution(execution_id)
    assert execution.status == "completed"
    assert execution.finished_at == harness.clock.now()
    assert await harness.path(execution_id) == [
        ("check", "completed"),
        ("pause", "completed"),
        ("call", "completed"),
        ("done", "completed"),
    ]
    steps = await harness.steps(execution_id)
    assert steps[0].output == {"branch": 0, "next": "pause"}
    assert steps[2].output["status"] == 200
    (request,) = harness.sink.requests
    assert request["json"] == {"order": "A-1", "who": "contact-1"}
    assert request["headers"]["idempotency-key"]


async def test_condition_default_branch_when_no_branch_matches(harness: Harness) -> None:
    definition = workflow(
        "small-orders",
        [
            {
                "id": "check",
                "type": "condition",
                "config": {
                    "branches": [
                        {"when": "input.total > 100", "next": "big"},
                        {"when": "input.total > 50", "next": "medium"},
                    ],
                    "default": "small",
                },
            },
            {"id": "big", "type": "end"},
            {"id": "medium", "type": "end"},
            {"id": "small", "type": "end"},
        ],
    )
    workflow_id = await harness.deploy(definition)
    small = await harness.start(workflow_id, {"total": 10})
    medium = await harness.start(workflow_id, {"total": 60})
    await harness.drain()

    assert [node for node, _ in await harness.path(small)] == ["check", "small"]
    assert [node for node, _ in await harness.path(medium)] == ["check", "medium"]


async def test_set_and_log_compute_variables_for_later_nodes(harness: Harness) -> None:
    definition = workflow(
        "scoring",
        [
            {
                "id": "score",
                "type": "action",
                "config": {
                    "action": "set",
                    "params": {
                        "variables": {"score": "input.visits * 10", "vip": "input.visits > 3"}
                    },
                },
                "next": "note",
            },
            {
                "id": "note",
                "type": "action",
                "config": {
                    "action": "log",
                    "params": {"message": "score {{ vars.score }} vip {{ vars.vip }}"},
                },
                "next": "route",
            },
            {
                "id": "route",
                "type": "condition",
                "config": {
                    "branches": [{"when": "vars.vip && vars.score == 50", "next": "vip"}],
                    "default": "regular",
                },
            },
            {"id": "vip", "type": "end"},
            {"id": "regular", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition), {"visits": 5})
    await harness.drain()

    steps = await harness.steps(execution_id)
    assert steps[0].output == {"score": 50, "vip": True}
    assert steps[1].output == {"level": "info", "message": "score 50 vip true"}
    assert steps[-1].node_id == "vip"
    assert (await harness.execution(execution_id)).state["vars"] == {"score": 50, "vip": True}


async def test_delay_waits_for_its_duration_then_continues(harness: Harness) -> None:
    definition = workflow(
        "later",
        [
            {"id": "wait", "type": "delay", "config": {"duration": "PT2H"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    assert (await harness.execution(execution_id)).status == "waiting"
    assert await harness.path(execution_id) == []

    await harness.advance(timedelta(hours=1, minutes=59))
    assert (await harness.execution(execution_id)).status == "waiting"

    await harness.advance(timedelta(minutes=1))
    assert (await harness.execution(execution_id)).status == "completed"
    (delay, _end) = await harness.steps(execution_id)
    assert delay.started_at == harness.clock.now() - timedelta(hours=2)
    assert delay.finished_at == harness.clock.now()


async def test_delay_until_local_time_of_day_in_the_contacts_zone(harness: Harness) -> None:
    definition = workflow(
        "morning",
        [
            {
                "id": "morning",
                "type": "delay",
                "config": {"timeOfDay": {"time": "09:00", "timezone": "contact"}},
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    )
    workflow_id = await harness.deploy(definition)
    # 08:00 UTC on Friday 27 March 2026 is 04:00 in New York (EDT, UTC-4): due at 13:00 UTC.
    execution_id = await harness.start(workflow_id, contact={"timezone": "America/New_York"})
    await harness.drain()
    await harness.advance(timedelta(hours=4, minutes=59))
    assert (await harness.execution(execution_id)).status == "waiting"
    await harness.advance(timedelta(minutes=1))
    assert (await harness.execution(execution_id)).status == "completed"


async def test_split_is_weighted_and_reproducible_per_execution(harness: Harness) -> None:
    definition = workflow(
        "ab",
        [
            {
                "id": "ab",
                "type": "split",
                "config": {
                    "variants": [
                        {"name": "a", "weight": 3, "next": "a"},
                        {"name": "holdout", "weight": 1, "next": "holdout"},
                    ]
                },
            },
            {"id": "a", "type": "end"},
            {"id": "holdout", "type": "end"},
        ],
    )
    workflow_id = await harness.deploy(definition)
    ids = [await harness.start(workflow_id, subject=f"c{n}") for n in range(200)]
    await harness.drain()

    variants = [(await harness.steps(execution_id))[0].output["variant"] for execution_id in ids]
    share_a = variants.count("a") / len(variants)
    assert 0.6 < share_a < 0.9  # 3:1 weights
    # Reproducible: the variant is a function of the execution, not of chance at run time.
    from campaignflow.domain.split import choose_variant
    from campaignflow.domain.workflow import SplitNode

    compiled = await harness.service.compiled.get(WORKSPACE, workflow_id, 1)
    node = compiled.node("ab")
    assert isinstance(node, SplitNode)
    for execution_id, variant in zip(ids[:20], variants[:20], strict=True):
        assert choose_variant(node.config, seed=f"{execution_id}::ab:1").name == variant


async def test_parallel_all_join_merges_branch_outputs(harness: Harness) -> None:
    url = harness.sink.url
    definition = workflow(
        "fan-out",
        [
            {
                "id": "fan",
                "type": "parallel",
                "config": {"branches": ["left", "right"], "join": "meet"},
            },
            {
                "id": "left",
                "type": "action",
                "config": {"action": "set", "params": {"variables": {"l": "1"}}},
                "next": "meet",
            },
            {"id": "right", "type": "delay", "config": {"duration": "PT1H"}, "next": "call"},
            http("call", f"{url}/ok", next="meet"),
            {"id": "meet", "type": "join", "config": {"mode": "all"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    assert (await harness.execution(execution_id)).status == "waiting"

    await harness.advance(timedelta(hours=1))

    execution = await harness.execution(execution_id)
    assert execution.status == "completed"
    steps = await harness.steps(execution_id)
    join = next(step for step in steps if step.node_id == "meet")
    assert set(join.output["branches"]) == {"left", "right"}
    assert join.output["branches"]["left"] == {"l": 1}
    assert join.output["merged"]["l"] == 1
    assert join.output["merged"]["status"] == 200
    assert [s.node_id for s in steps].count("done") == 1
    assert execution.state["live"] == 0


async def test_parallel_any_join_continues_once_and_cancels_the_slow_branch(
    harness: Harness,
) -> None:
    definition = workflow(
        "race",
        [
            {
                "id": "fan",
                "type": "parallel",
                "config": {"branches": ["fast", "slow"], "join": "first"},
            },
            {"id": "fast", "type": "delay", "config": {"duration": "PT1M"}, "next": "first"},
            {"id": "slow", "type": "delay", "config": {"duration": "P1D"}, "next": "first"},
            {"id": "first", "type": "join", "config": {"mode": "any"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    await harness.advance(timedelta(minutes=1))

    execution = await harness.execution(execution_id)
    assert execution.status == "completed"
    path = [node for node, _ in await harness.path(execution_id)]
    assert path == ["fan", "fast", "first", "done"]
    assert await harness.queue.next_due() is None  # the slow branch's timer is gone


async def test_wait_for_event_resumes_on_a_correlated_matching_event(harness: Harness) -> None:
    definition = workflow(
        "cart",
        [
            {
                "id": "wait",
                "type": "wait_for_event",
                "config": {
                    "event": "order_completed",
                    "correlationKey": "cartId",
                    "condition": "event.properties.total > 0",
                    "timeout": "PT4H",
                    "onTimeout": "remind",
                },
                "next": "thanks",
            },
            {"id": "remind", "type": "end"},
            {"id": "thanks", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition), {"cartId": "c-9"})
    await harness.drain()
    assert (await harness.execution(execution_id)).status == "waiting"

    other_cart = {"event": "order_completed", "properties": {"cartId": "c-1", "total": 5}}
    zero_total = {"event": "order_completed", "properties": {"cartId": "c-9", "total": 0}}
    wrong_name = {"event": "cart_viewed", "properties": {"cartId": "c-9", "total": 5}}
    for event in (other_cart, zero_total, wrong_name):
        assert not await harness.service.resume(WORKSPACE, execution_id, event)

    order = {"event": "order_completed", "properties": {"cartId": "c-9", "total": 42}}
    assert await harness.service.resume(WORKSPACE, execution_id, order)
    assert not await harness.service.resume(WORKSPACE, execution_id, order)  # taken once
    await harness.drain()

    assert await harness.path(execution_id) == [("wait", "completed"), ("thanks", "completed")]
    assert (await harness.steps(execution_id))[0].output == order
    assert (await harness.execution(execution_id)).status == "completed"
    assert await harness.queue.next_due() is None  # the timeout task went with the wait


async def test_wait_for_event_times_out_into_its_timeout_branch(harness: Harness) -> None:
    definition = workflow(
        "cart-timeout",
        [
            {
                "id": "wait",
                "type": "wait_for_event",
                "config": {"event": "order_completed", "timeout": "PT4H", "onTimeout": "remind"},
                "next": "thanks",
            },
            {"id": "remind", "type": "end"},
            {"id": "thanks", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    await harness.advance(timedelta(hours=4))

    assert await harness.path(execution_id) == [("wait", "timed_out"), ("remind", "completed")]
    assert await harness.executions.waits(WORKSPACE, execution_id) == []
    late = {"event": "order_completed", "properties": {}}
    assert not await harness.service.resume(WORKSPACE, execution_id, late)


async def test_end_node_and_a_node_without_next_both_end_the_path(harness: Harness) -> None:
    definition = workflow(
        "short",
        [
            {
                "id": "note",
                "type": "action",
                "config": {"action": "log", "params": {"message": "hi {{ input.name }}"}},
            }
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition), {"name": "Ada"})
    await harness.drain()
    assert (await harness.execution(execution_id)).status == "completed"
    assert await harness.path(execution_id) == [("note", "completed")]


async def test_delay_until_a_timestamp_and_one_already_past(harness: Harness) -> None:
    definition = workflow(
        "until",
        [
            {
                "id": "launch",
                "type": "delay",
                "config": {"until": "2026-03-28T12:00:00Z"},
                "next": "past",
            },
            {
                "id": "past",
                "type": "delay",
                "config": {"until": "2020-01-01T00:00:00Z"},
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    )
    execution_id = await harness.start(await harness.deploy(definition))
    await harness.drain()
    await harness.advance(timedelta(days=1, hours=3, minutes=59))  # 27 Mar 08:00 → 28 Mar 11:59
    assert (await harness.execution(execution_id)).status == "waiting"

    await harness.advance(timedelta(minutes=1))

    steps = await harness.steps(execution_id)
    assert [(s.node_id, s.status) for s in steps] == [
        ("launch", "completed"),
        ("past", "completed"),  # a time already past continues at once
        ("done", "completed"),
    ]
    assert steps[1].started_at == steps[1].finished_at == harness.clock.now()


async def test_http_url_headers_and_body_are_templates(harness: Harness) -> None:
    definition = workflow(
        "templated",
        [
            http(
                "call",
                harness.sink.url + "/{{ input.route }}",
                params={
                    "method": "PUT",
                    "headers": {"X-Order": "order-{{ input.order }}", "X-Plain": "as is"},
                    "body": {"lines": [{"sku": "{{ input.sku | upcase }}"}], "n": 3},
                },
            )
        ],
    )
    execution_id = await harness.start(
        await harness.deploy(definition), {"route": "echo", "order": 42, "sku": "ab-1"}
    )
    await harness.drain()

    (request,) = harness.sink.requests
    assert request["method"] == "PUT"
    assert request["path"] == "/echo"
    assert request["headers"]["x-order"] == "order-42"
    assert request["headers"]["x-plain"] == "as is"
    assert request["json"] == {"lines": [{"sku": "AB-1"}], "n": 3}
    output = (await harness.steps(execution_id))[0].output
    assert output["status"] == 200


async def test_a_template_error_at_run_time_fails_the_step_without_retrying(
    harness: Harness,
) -> None:
    definition = workflow(
        "missing",
        [
            http(
                "call",
                harness.sink.url + "/ok",
                params={"body": {"x": "{{ input.absent.deeper }}"}},
            )
        ],
        errorHandling={"maxRetries": 5},
    )
    execution_id = await harness.start(await harness.deploy(definition), {})
    await harness.drain()

    execution = await harness.execution(execution_id)
    assert execution.status == "failed"
    assert execution.error is not None
    assert "template" in execution.error["message"]
    assert harness.sink.requests == []
