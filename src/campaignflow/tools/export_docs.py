"""Regenerate the documents derived from code: ``python -m campaignflow.tools.export_docs``.

``docs/workflow.schema.json`` is the JSON Schema (draft 2020-12) of the workflow definition
format, generated from the pydantic models so it cannot drift from the validator; a unit test
fails when the committed copy is stale. ``docs/openapi.json`` comes from the API package,
``docs/integrations.md`` from the connectors, ``docs/schema.graphql`` from the GraphQL schema.
The JSON Schema checks shape only: references between nodes, CEL, Liquid and the action catalog
are checked by ``campaignflow validate``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from campaignflow.api.graphql.schema import render_graphql_schema
from campaignflow.domain.json_schema import definition_json_schema

SCHEMA_ID = "urn:campaignflow:schema:workflow-definition:1"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILE = "workflow.schema.json"
OPENAPI_FILE = "openapi.json"
GRAPHQL_FILE = "schema.graphql"
DEFAULT_DIRECTORY = Path("docs")


def workflow_schema() -> dict[str, Any]:
    """The JSON Schema of a workflow definition document."""
    generated = definition_json_schema()
    generated.pop("title", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "campaignflow workflow definition",
        **generated,
    }


def render_workflow_schema() -> str:
    """The schema as the exact text committed to ``docs/`` (stable, newline-terminated)."""
    return json.dumps(workflow_schema(), indent=2, ensure_ascii=False) + "\n"


def export_workflow_schema(directory: Path = DEFAULT_DIRECTORY) -> Path:
    path = directory / SCHEMA_FILE
    path.write_text(render_workflow_schema(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- OpenAPI hook


def export_openapi(directory: Path = DEFAULT_DIRECTORY) -> Path:
    """Write ``openapi.json``, the REST API reference generated from the app."""
    from campaignflow.api.openapi import render_openapi_document  # noqa: PLC0415 — heavy, optional

    path = directory / OPENAPI_FILE
    path.write_text(render_openapi_document(), encoding="utf-8")
    return path


def export_integrations(directory: Path = DEFAULT_DIRECTORY) -> Path:
    """Write ``integrations.md``, the connector catalog."""
    from campaignflow.integrations.providers import builtin_connectors  # noqa: PLC0415
    from campaignflow.tools.integrations_doc import (  # noqa: PLC0415
        INTEGRATIONS_FILE,
        render_integrations_markdown,
    )

    path = directory / INTEGRATIONS_FILE
    path.write_text(render_integrations_markdown(builtin_connectors()), encoding="utf-8")
    return path


def export_graphql_schema(directory: Path = DEFAULT_DIRECTORY) -> Path:
    """Write ``schema.graphql``, the GraphQL schema (SDL) of ``/graphql``."""
    path = directory / GRAPHQL_FILE
    path.write_text(render_graphql_schema(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output-dir", type=Path, default=DEFAULT_DIRECTORY, help="where to write (docs/)"
    )
    arguments = parser.parse_args(argv)
    directory: Path = arguments.output_dir
    directory.mkdir(parents=True, exist_ok=True)
    written = (
        export_workflow_schema(directory),
        export_openapi(directory),
        export_integrations(directory),
        export_graphql_schema(directory),
    )
    for path in written:
        if path is not None:
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
