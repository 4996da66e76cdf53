"""The committed documents derived from code are current (regenerate with `make schema`)."""

from __future__ import annotations

import json
from pathlib import Path

from campaignflow.api.openapi import render_openapi_document
from campaignflow.integrations.providers import builtin_connectors
from campaignflow.tools import export_docs
from campaignflow.tools.integrations_doc import INTEGRATIONS_FILE, render_integrations_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_main_writes_the_schema_and_the_openapi_document(tmp_path: Path) -> None:
    assert export_docs.main(["--output-dir", str(tmp_path / "out")]) == 0

    schema = json.loads((tmp_path / "out" / export_docs.SCHEMA_FILE).read_text(encoding="utf-8"))
    openapi = json.loads((tmp_path / "out" / export_docs.OPENAPI_FILE).read_text(encoding="utf-8"))
    assert schema["title"] == "campaignflow workflow definition"
    assert "workflowId" in schema["required"]
    assert "/api/v1/workflows/{workflow_id}" in openapi["paths"]


def test_committed_openapi_document_is_current() -> None:
    committed = (DOCS / export_docs.OPENAPI_FILE).read_text(encoding="utf-8")

    assert committed == render_openapi_document(), "docs/openapi.json is stale: run `make schema`"


def test_committed_integrations_page_is_current() -> None:
    committed = (DOCS / INTEGRATIONS_FILE).read_text(encoding="utf-8")

    rendered = render_integrations_markdown(builtin_connectors())
    assert committed == rendered, "docs/integrations.md is stale: run `make schema`"


def test_integrations_page_documents_every_operation_and_its_parameters() -> None:
    page = render_integrations_markdown(builtin_connectors())
    for connector in builtin_connectors().values():
        assert f"## {connector.title} (`{connector.provider}`)" in page
        for name, operation in connector.operations.items():
            assert f"### `{connector.provider}.{name}`" in page
            schema = operation.params.model_json_schema(by_alias=True)
            for parameter in schema.get("properties", {}):
                assert f"| `{parameter}` |" in page


def test_workflow_bodies_reference_the_definition_schema() -> None:
    document = json.loads(render_openapi_document())
    create = document["paths"]["/api/v1/workflows"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]

    assert schema == {"$ref": "#/components/schemas/WorkflowDefinition"}
    assert "nodes" in document["components"]["schemas"]["WorkflowDefinition"]["properties"]
