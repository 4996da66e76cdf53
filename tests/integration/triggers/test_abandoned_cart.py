"""The abandoned-cart example (examples/workflows/abandoned-cart.json) driven by events through
the router and the worker on a virtual clock: the order of that cart ends it as bought; without
it, the timeout branch sends the reminder.

SendGrid's connector arrives with the integration layer; until then a recording executor
stands in for ``sendgrid.send_email`` (it only records the rendered call), as nothing real can.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from campaignflow.engine.actions import ActionCall, ExecutorRegistry
from campaignflow.engine.model import ExecutionStatus
from tests.integration.triggers.conftest import Routing, event

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "workflows" / "abandoned-cart.json"
CART = {"cartId": "cart-42", "itemCount": 2, "total": 40}


class RecordingExecutor:
    def __init__(self) -> None:
        self.calls: list[ActionCall] = []

    async def execute(self, call: ActionCall) -> Any:
        self.calls.append(call)
        return {"messageId": f"sent-{len(self.calls)}"}


@pytest.fixture
def sendgrid() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def executors(sendgrid: RecordingExecutor) -> ExecutorRegistry:
    return ExecutorRegistry().with_executor("sendgrid.send_email", sendgrid)


async def _start(routing: Routing) -> str:
    definition = json.loads(EXAMPLE.read_text())
    await routing.deploy(definition)
    identify = event("", type="identify", user="ann", traits={"email": "ann@example.com"})
    outcome = await routing.send(identify, event("cart_updated", user="ann", properties=CART))
    assert outcome.started == 1
    await routing.drain()
    (execution,) = await routing.executions()
    assert execution.status == ExecutionStatus.WAITING
    return execution.id


async def test_an_order_of_another_cart_takes_the_contact_out_as_a_goal(
    routing: Routing, sendgrid: RecordingExecutor
) -> None:
    execution_id = await _start(routing)
    other = await routing.send(event("order_completed", user="ann", properties={"cartId": "x"}))
    assert other.resumed == 0
    # That other order is still an order: the goal criterion takes the contact out.
    assert other.exited == 1
    (execution,) = await routing.executions()
    assert execution.exit_reason is not None
    assert execution.exit_reason["goal"] is True
    assert sendgrid.calls == []
    assert execution.id == execution_id


async def test_the_correlated_order_resumes_the_wait_and_sends_nothing(
    routing: Routing, sendgrid: RecordingExecutor
) -> None:
    execution_id = await _start(routing)
    outcome = await routing.send(
        event("order_completed", user="ann", properties={"cartId": "cart-42"})
    )
    assert (outcome.resumed, outcome.exited) == (1, 0)
    await routing.drain()
    (execution,) = await routing.executions()
    assert execution.status == ExecutionStatus.COMPLETED
    assert await routing.path(execution_id) == ["wait-for-order", "purchased"]
    assert sendgrid.calls == []


async def test_without_the_order_the_timeout_branch_sends_the_reminder(
    routing: Routing, sendgrid: RecordingExecutor
) -> None:
    execution_id = await _start(routing)
    await routing.advance(timedelta(hours=4, minutes=1))
    (call,) = sendgrid.calls
    assert call.params["to"] == "ann@example.com"
    assert call.params["dynamicTemplateData"]["cartUrl"].endswith("/cart/cart-42")
    await routing.advance(timedelta(days=1, minutes=1))
    (execution,) = await routing.executions()
    assert execution.status == ExecutionStatus.COMPLETED
    path = await routing.path(execution_id)
    assert path[:3] == ["wait-for-order", "send-reminder", "wait-again"]
    assert path[-1] == "gave-up"  # a 40 € cart gets no coupon


async def test_a_cart_of_a_contact_without_email_does_not_enter(routing: Routing) -> None:
    definition = json.loads(EXAMPLE.read_text())
    await routing.deploy(definition)
    outcome = await routing.send(event("cart_updated", user="nobody", properties=CART))
    assert outcome.started == 0
