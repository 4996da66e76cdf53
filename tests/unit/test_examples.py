"""The committed examples and the committed JSON Schema are what users copy: keep them true."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from campaignflow.domain.validation import PROBLEM_CODES, validate_definition
from campaignflow.tools.export_docs import SCHEMA_FILE, render_workflow_schema

ROOT = Path(__file__).parents[2]
SCHEMA_PATH = ROOT / "docs" / SCHEMA_FILE
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.json"))
BROKEN = ROOT / "examples" / "invalid" / "broken.json"


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = _load(SCHEMA_PATH)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_four_examples_exist() -> None:
    assert {path.name for path in EXAMPLES} >= {
        "welcome-series.json",
        "abandoned-cart.json",
        "re-engagement.json",
        "lead-scoring.json",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_validates_with_zero_problems(path: Path) -> None:
    result = validate_definition(_load(path))
    assert result.problems == ()
    assert result.ok
    assert result.definition is not None
    assert result.definition.workflow_id == path.stem


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_matches_the_json_schema(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(_load(path))]
    assert errors == []


def test_schema_catches_shape_mistakes_too(validator: jsonschema.Draft202012Validator) -> None:
    document = _load(EXAMPLES[0])
    document["nodes"][0]["tmeout"] = "PT1S"
    document["errorHandling"]["initialInterval"] = "10s"
    document["triggers"].append({"type": "time", "cron": "0 9 * * *", "at": "2026-01-01T00:00:00Z"})
    paths = {error.json_path for error in validator.iter_errors(document)}
    assert "$.errorHandling.initialInterval" in paths
    assert len(paths) >= 3


def test_broken_example_is_invalid() -> None:
    assert len(validate_definition(_load(BROKEN)).problems) > 30


def test_committed_schema_is_up_to_date() -> None:
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == render_workflow_schema(), (
        "docs/workflow.schema.json is stale: run `make schema` and commit the result"
    )


def test_every_property_in_the_schema_is_described() -> None:
    undocumented: list[str] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            declared = node.get("properties", {}) if node.get("type") == "object" else {}
            for name, spec in declared.items():
                if "description" not in spec:
                    undocumented.append(f"{where}/{name}")
            for key, child in node.items():
                visit(child, f"{where}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                visit(child, f"{where}/{index}")

    schema = _load(SCHEMA_PATH)
    visit(schema, "")
    assert undocumented == []
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]


def test_every_problem_code_is_documented() -> None:
    reference = (ROOT / "docs" / "workflow-format.md").read_text(encoding="utf-8")
    undocumented = sorted(code for code in PROBLEM_CODES if f"`{code}`" not in reference)
    assert undocumented == []
    emitted = {problem.code for problem in validate_definition(_load(BROKEN)).problems}
    assert emitted <= PROBLEM_CODES
