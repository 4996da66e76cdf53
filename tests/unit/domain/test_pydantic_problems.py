from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from campaignflow.domain.pydantic_problems import json_type, problems_from_error, relocate
from campaignflow.domain.structure import VOCABULARY
from campaignflow.domain.workflow import WorkflowDefinition

from .factories import minimal_document


def problems(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(ValidationError) as caught:
        WorkflowDefinition.model_validate(document)
    return [
        (p.pointer, p.code, p.message)
        for p in problems_from_error(caught.value, document, vocabulary=VOCABULARY)
    ]


def test_relocate_drops_tags_but_keeps_keys_named_like_tags() -> None:
    document = {"nodes": [{"type": "delay", "config": {}}], "delay": {"delay": 1}}
    assert relocate(("nodes", 0, "delay", "config"), document).path == ("nodes", 0, "config")
    assert relocate(("nodes", 0, "delay", "config"), document).tag == "delay"
    assert relocate(("delay", "delay"), document).path == ("delay", "delay")


def test_relocate_reports_mapping_keys() -> None:
    location = relocate(("params", "variables", "bad key", "[key]"), {})
    assert location.path == ("params", "variables", "bad key")
    assert location.key == "bad key"


def test_messages_talk_json_not_python() -> None:
    found = problems(minimal_document(name=5, triggers=[], nodes=[{"id": "a"}]))
    assert ("/name", "type", "must be a string, not a number") in found
    assert ("/triggers", "too_short", "must have at least 1 item(s)") in found
    assert any(pointer == "/nodes/0/type" and code == "required" for pointer, code, _ in found)
    assert not any("Tuple" in message or "Input should" in message for *_, message in found)


def test_list_length_errors_caused_by_bad_items_are_dropped() -> None:
    found = problems(minimal_document(triggers=[{"type": "nope"}]))
    assert [(pointer, code) for pointer, code, _ in found] == [
        ("/triggers/0/type", "invalid_value")
    ]


def test_dict_key_errors_name_the_key() -> None:
    from campaignflow.domain.actions import SetParams

    params = {"variables": {"not ok": "1"}}
    with pytest.raises(ValidationError) as caught:
        SetParams.model_validate(params)
    (problem,) = problems_from_error(caught.value, params, prefix=("nodes", 0, "config", "params"))
    assert problem.pointer == "/nodes/0/config/params/variables/not ok"
    assert problem.message.startswith("key 'not ok': must be an identifier")


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "a boolean"),
        (1.5, "a number"),
        ("x", "a string"),
        ({}, "an object"),
        ([], "an array"),
    ],
)
def test_json_type(value: object, name: str) -> None:
    assert json_type(value) == name
