"""Which step sent which message: the execution detail shows each message on its step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaignflow.services.executions import messages_of_steps
from campaignflow.store.deliveries import DeliveryRecord
from campaignflow.store.executions import StepRecord

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def step(seq: int, minute: int, node: str = "mail", status: str = "completed") -> StepRecord:
    at = T0 + timedelta(minutes=minute)
    return StepRecord(seq, node, "action", "", 1, status, at, at, None, None)


def sent(send_id: str, minute: float, node: str = "mail") -> DeliveryRecord:
    at = T0 + timedelta(minutes=minute)
    return DeliveryRecord("ws", send_id, "x1", node, "", "c1", "sendgrid", None, "sent", [], at, at)


def test_each_visit_of_a_loop_gets_its_own_message() -> None:
    steps = [step(1, 0), step(2, 0, node="wait"), step(3, 60), step(4, 60, node="wait")]

    found = messages_of_steps(steps, [sent("b", 60.1), sent("a", 0.1)])

    assert {seq: m.send_id for seq, m in found.items()} == {1: "a", 3: "b"}


def test_a_visit_that_sent_nothing_is_skipped() -> None:
    """The first visit's recipient was suppressed: the only message is the second visit's."""
    found = messages_of_steps([step(1, 0), step(2, 60)], [sent("b", 60.1)])

    assert {seq: m.send_id for seq, m in found.items()} == {2: "b"}


def test_failed_attempts_and_other_nodes_get_no_message() -> None:
    steps = [step(1, 0, status="retrying"), step(2, 5), step(3, 5, node="other")]

    found = messages_of_steps(steps, [sent("a", 5.1)])

    assert list(found) == [2]
    assert messages_of_steps(steps, []) == {}
