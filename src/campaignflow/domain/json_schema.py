"""The JSON Schema of a workflow definition, generated from the format models.

One generator serves both published copies — ``docs/workflow.schema.json`` and the
``WorkflowDefinition`` component of the OpenAPI document — so they cannot disagree.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from campaignflow.domain.workflow import WorkflowDefinition


class _WorkflowSchemaGenerator(GenerateJsonSchema):
    """Pydantic's generator without per-field titles (``"Onerror"`` helps nobody)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def definition_json_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The schema of a definition as a client sends it (validation mode, camelCase keys)."""
    return WorkflowDefinition.model_json_schema(
        by_alias=True,
        mode="validation",
        ref_template=ref_template,
        schema_generator=_WorkflowSchemaGenerator,
    )
