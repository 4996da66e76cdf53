"""The router end to end on a real database: triggers start executions, rules refuse them,
events end waits and executions — each decided once per event."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from campaignflow.engine.model import ExecutionStatus
from campaignflow.errors import StorageError
from campaignflow.store.events import EventStore
from tests._support.ciphers import contact_cipher
from tests.integration.triggers.conftest import WORKSPACE, Routing, event, journey

CART = {"type": "behavior", "event": "cart_updated", "condition": "event.properties.items > 0"}


async def test_a_matching_event_starts_an_execution_with_the_event_and_contact(
    routing: Routing,
) -> None:
    await routing.deploy(journey("cart", [CART]))
    outcome = await routing.send(
        event("cart_updated", properties={"items": 2, "cartId": "c1"}, user="alice")
    )
    assert (outcome.events, outcome.started) == (1, 1)
    (execution,) = await routing.executions("cart")
    assert execution.input == {"items": 2, "cartId": "c1"}
    assert execution.trigger == "behavior:cart_updated"
    assert execution.contact["userId"] == "alice"
    assert execution.subject_id == execution.contact["id"]
    assert execution.state["event"]["properties"]["cartId"] == "c1"


async def test_an_event_whose_condition_is_false_or_unreadable_starts_nothing(
    routing: Routing,
) -> None:
    await routing.deploy(journey("cart", [CART]))
    outcome = await routing.send(
        event("cart_updated", properties={"items": 0}),
        event("cart_updated", properties={}),  # items missing: an evaluation error, no match
        event("page_viewed", properties={"items": 3}),
    )
    assert outcome.started == 0
    assert outcome.events == 3
    assert await routing.executions() == []


async def test_a_repeated_message_id_is_stored_and_acted_on_once(routing: Routing) -> None:
    await routing.deploy(
        journey("cart", [CART], entry={"reentry": "always", "allowConcurrent": True})
    )
    first = event("cart_updated", properties={"items": 1}, message_id="dup-1")
    again = event("cart_updated", properties={"items": 1}, message_id="dup-1")
    assert (await routing.send(first, again)).started == 1
    redelivered = await routing.send(first)
    assert (redelivered.events, redelivered.duplicates, redelivered.started) == (0, 1, 0)
    assert len(await routing.executions()) == 1


async def test_reentry_never_lets_a_contact_in_once(routing: Routing) -> None:
    await routing.deploy(journey("cart", [CART]))  # the default: reentry never
    await routing.send(event("cart_updated", properties={"items": 1}))
    await routing.drain()
    await routing.advance(timedelta(days=2))  # the first execution completes
    assert [r.status for r in await routing.executions()] == [ExecutionStatus.COMPLETED]
    outcome = await routing.send(event("cart_updated", properties={"items": 1}))
    assert (outcome.started, outcome.refused) == (0, 1)
    other = await routing.send(event("cart_updated", properties={"items": 1}, user="bob"))
    assert other.started == 1


async def test_reentry_always_waits_for_the_active_execution_unless_concurrent(
    routing: Routing,
) -> None:
    await routing.deploy(journey("cart", [CART], entry={"reentry": "always"}))
    assert (await routing.send(event("cart_updated", properties={"items": 1}))).started == 1
    refused = await routing.send(event("cart_updated", properties={"items": 1}))
    assert (refused.started, refused.refused) == (0, 1)  # one is still waiting a day
    await routing.drain()
    await routing.advance(timedelta(days=2))
    assert (await routing.send(event("cart_updated", properties={"items": 1}))).started == 1


async def test_reentry_after_a_period(routing: Routing) -> None:
    entry = {"reentry": "after", "reentryAfter": "P3D", "allowConcurrent": True}
    await routing.deploy(journey("cart", [CART], entry=entry))
    assert (await routing.send(event("cart_updated", properties={"items": 1}))).started == 1
    routing.clock.advance(timedelta(days=2))
    assert (await routing.send(event("cart_updated", properties={"items": 1}))).started == 0
    routing.clock.advance(timedelta(days=1))
    assert (await routing.send(event("cart_updated", properties={"items": 1}))).started == 1


async def test_one_event_matching_two_triggers_of_a_workflow_starts_it_once(
    routing: Routing,
) -> None:
    both = [CART, {"type": "behavior", "event": "cart_updated"}]
    await routing.deploy(
        journey("cart", both, entry={"reentry": "always", "allowConcurrent": True})
    )
    assert (await routing.send(event("cart_updated", properties={"items": 1}))).started == 1


async def test_a_dedup_key_starts_once_per_window(routing: Routing) -> None:
    trigger = {**CART, "dedup": {"key": "event.properties.cartId", "window": "PT4H"}}
    entry = {"reentry": "always", "allowConcurrent": True}
    await routing.deploy(journey("cart", [trigger], entry=entry))
    same = {"items": 1, "cartId": "c-9"}
    outcome = await routing.send(
        event("cart_updated", properties=same), event("cart_updated", properties=same)
    )
    assert (outcome.started, outcome.refused) == (1, 1)
    routing.clock.advance(timedelta(hours=3))
    assert (await routing.send(event("cart_updated", properties=same))).started == 0
    other_cart = await routing.send(
        event("cart_updated", properties={"items": 1, "cartId": "c-10"})
    )
    assert other_cart.started == 1
    routing.clock.advance(timedelta(hours=2))  # the first key expired
    assert (await routing.send(event("cart_updated", properties=same))).started == 1


async def test_an_exit_criterion_ends_a_waiting_execution_at_once(routing: Routing) -> None:
    criteria = [
        {"event": "order_completed", "goal": True},
        {"event": "unsubscribed", "condition": "event.properties.list == 'all'"},
    ]
    await routing.deploy(journey("cart", [CART], exitCriteria=criteria))
    await routing.send(event("cart_updated", properties={"items": 1}))
    await routing.drain()  # now waiting in the delay
    ignored = await routing.send(event("unsubscribed", properties={"list": "weekly"}))
    assert ignored.exited == 0
    outcome = await routing.send(event("order_completed", properties={"total": 10}))
    assert outcome.exited == 1
    (execution,) = await routing.executions()
    assert execution.status == ExecutionStatus.CANCELLED
    assert execution.exit_reason is not None
    assert execution.exit_reason["goal"] is True
    assert execution.exit_reason["event"] == "order_completed"
    await routing.advance(timedelta(days=2))  # its timer is gone: nothing runs
    assert await routing.path(execution.id) == []  # the delay never completed


async def test_order_within_a_batch_decides_what_an_exit_event_ends(routing: Routing) -> None:
    criteria = [{"event": "order_completed"}]
    entry = {"reentry": "always", "allowConcurrent": True}
    await routing.deploy(journey("cart", [CART], exitCriteria=criteria, entry=entry))
    before = event("cart_updated", properties={"items": 1})
    after = event("cart_updated", properties={"items": 1})
    outcome = await routing.send(before, event("order_completed"), after)
    assert (outcome.started, outcome.exited) == (2, 1)
    statuses = {
        record.state["event"]["messageId"]: record.status for record in await routing.executions()
    }
    assert statuses == {
        before.message_id: ExecutionStatus.CANCELLED,
        after.message_id: ExecutionStatus.PENDING,
    }


WAIT_FOR_ORDER = [
    {
        "id": "wait",
        "type": "wait_for_event",
        "config": {
            "event": "order_completed",
            "correlationKey": "cartId",
            "timeout": "PT4H",
            "onTimeout": "remind",
        },
        "next": "bought",
    },
    {
        "id": "remind",
        "type": "action",
        "config": {"action": "log", "params": {"message": "r"}},
        "next": "done",
    },
    {
        "id": "bought",
        "type": "action",
        "config": {"action": "log", "params": {"message": "b"}},
        "next": "done",
    },
    {"id": "done", "type": "end"},
]


async def test_a_wait_takes_the_correlated_event_and_is_not_exited_by_it(
    routing: Routing,
) -> None:
    await routing.deploy(
        journey("cart", [CART], WAIT_FOR_ORDER, exitCriteria=[{"event": "order_completed"}])
    )
    await routing.send(event("cart_updated", properties={"items": 1, "cartId": "c1"}))
    await routing.drain()
    other_cart = await routing.send(event("order_completed", properties={"cartId": "c2"}))
    assert (other_cart.resumed, other_cart.exited) == (0, 1)  # no wait took it: it exits


async def test_the_correlated_order_resumes_the_wait(routing: Routing) -> None:
    await routing.deploy(
        journey("cart", [CART], WAIT_FOR_ORDER, exitCriteria=[{"event": "order_completed"}])
    )
    await routing.send(event("cart_updated", properties={"items": 1, "cartId": "c1"}))
    await routing.drain()
    outcome = await routing.send(event("order_completed", properties={"cartId": "c1"}))
    assert (outcome.resumed, outcome.exited) == (1, 0)
    await routing.drain()
    (execution,) = await routing.executions()
    assert execution.status == ExecutionStatus.COMPLETED
    assert await routing.path(execution.id) == ["wait", "bought", "done"]


async def test_without_the_order_the_timeout_branch_runs(routing: Routing) -> None:
    await routing.deploy(journey("cart", [CART], WAIT_FOR_ORDER))
    await routing.send(event("cart_updated", properties={"items": 1, "cartId": "c1"}))
    await routing.drain()
    await routing.advance(timedelta(hours=5))
    (execution,) = await routing.executions()
    assert await routing.path(execution.id) == ["wait", "remind", "done"]


async def test_workspaces_do_not_see_each_others_events(routing: Routing) -> None:
    await routing.deploy(journey("cart", [CART]))
    outcome = await routing.send(event("cart_updated", properties={"items": 1}, workspace="other"))
    assert (outcome.events, outcome.started) == (1, 0)


async def test_a_paused_workflow_stops_starting(routing: Routing) -> None:
    workflow_id = await routing.deploy(journey("cart", [CART]))
    await routing.workflows.pause(WORKSPACE, workflow_id)
    await routing.router.refresh(force=True)
    assert (await routing.send(event("cart_updated", properties={"items": 1}))).started == 0


class _FailingOnce(EventStore):
    """The event log failing once, as a database that drops a connection would (a stand-in:
    a real outage cannot be switched on and off inside one transaction here)."""

    def __init__(self, dialect: str) -> None:
        super().__init__(dialect, contact_cipher())
        self.failures = 1

    async def known(self, connection: Any, events: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise StorageError("connection reset")
        return await super().known(connection, events)


async def test_a_batch_that_fails_is_retried_not_dropped_and_then_acknowledged(
    routing: Routing,
) -> None:
    await routing.deploy(journey("cart", [CART]))
    router = routing.router
    failing = _FailingOnce(routing.engine.database.dialect)
    router._stores = replace(router._stores, events=failing)
    cart = event("cart_updated", properties={"items": 1})
    publish = asyncio.create_task(
        routing.engine.ingest().accept([cart])
    )  # returns once the router has acknowledged the entry
    outcome = await router.run_once()
    await asyncio.wait_for(publish, 5)
    assert (failing.failures, outcome.started) == (0, 1)
    assert await routing.engine.bus.backlog() == 0


async def test_a_message_repeated_later_in_a_batch_keeps_its_first_place(
    routing: Routing,
) -> None:
    entry = {"reentry": "always", "allowConcurrent": True}
    await routing.deploy(journey("cart", [CART], exitCriteria=[{"event": "order"}], entry=entry))
    cart = event("cart_updated", properties={"items": 1}, message_id="c-1")
    outcome = await routing.send(cart, event("order"), cart)
    assert (outcome.started, outcome.exited, outcome.duplicates) == (1, 1, 1)
