"""The four-node workflow of DESIGN.md §9 (condition → delay PT0S → http to a sink → end), shared
by the crash test and ``bench/executions.py`` so both put the same load on the engine."""

from __future__ import annotations

from typing import Any


def four_node_workflow(workflow_id: str, call_url: str) -> dict[str, Any]:
    """Executions take ``input.n``; the http step posts it to ``call_url``."""
    return {
        "workflowId": workflow_id,
        "name": "Load: condition, delay 0, http, end",
        "triggers": [{"type": "api"}],
        "errorHandling": {"maxRetries": 5, "initialInterval": "PT1S", "jitter": 0},
        "nodes": [
            {
                "id": "check",
                "type": "condition",
                "config": {
                    "branches": [{"when": "input.n >= 0", "next": "pause"}],
                    "default": "done",
                },
            },
            {"id": "pause", "type": "delay", "config": {"duration": "PT0S"}, "next": "call"},
            {
                "id": "call",
                "type": "action",
                "config": {
                    "action": "http",
                    "params": {"url": call_url, "body": {"n": "{{ input.n }}"}},
                },
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    }
