"""Documents shared by the domain tests."""

from __future__ import annotations

from typing import Any


def minimal_document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "workflowId": "minimal",
        "name": "Minimal",
        "triggers": [{"type": "api"}],
        "errorHandling": {},
        "nodes": [
            {
                "id": "hello",
                "type": "action",
                "config": {"action": "log", "params": {"message": "hi"}},
            }
        ],
    }
    document.update(overrides)
    return document
