"""Whether a waiting ``wait_for_event`` node takes an event: one rule for the engine's
``resume`` and the dry-run, so a simulation matches events exactly as production does."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from campaignflow.domain.cel import CelEvaluationError
from campaignflow.domain.workflow import WaitForEventNode
from campaignflow.engine.compiled import CompiledWorkflow
from campaignflow.engine.interpreter import correlation_text
from campaignflow.engine.model import ExecutionRecord


def wait_takes(
    compiled: CompiledWorkflow,
    *,
    node_id: str,
    correlation_value: str | None,
    execution: ExecutionRecord,
    event: Mapping[str, Any],
    now: datetime,
) -> bool:
    """The event's ``properties.<correlationKey>`` must equal the value the wait recorded from
    the input, and the node's condition (if any) must be true with ``event`` bound to it. A
    condition that cannot read the event (a missing key) does not match, rather than failing
    the execution that waits."""
    node = compiled.node(node_id)
    if not isinstance(node, WaitForEventNode):
        return False
    properties = event.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    key = node.config.correlation_key
    if key is not None and (
        key not in properties or correlation_text(properties[key]) != correlation_value
    ):
        return False
    if node.config.condition is None:
        return True
    context = {
        "input": execution.input,
        "event": dict(event),
        "contact": execution.contact,
        "steps": execution.state.get("steps", {}),
        "vars": execution.state.get("vars", {}),
        "now": now,
    }
    expression = compiled.expression(node.id, "config", "condition")
    try:
        return expression.evaluate_bool(context)
    except CelEvaluationError:
        return False
