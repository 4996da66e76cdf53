"""The OpenAPI document: generated from the app, served at ``/api/v1/openapi.json`` and kept in
``docs/openapi.json`` (a test fails when the committed copy is stale)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from campaignflow import __version__
from campaignflow.domain.json_schema import definition_json_schema

DESCRIPTION = (
    "REST API of campaignflow. Authenticate with `Authorization: Bearer <token>`. "
    "Errors are RFC 9457 `application/problem+json` documents whose `errors` entries carry a "
    "JSON Pointer (`pointer`) into the request body or the name of a `parameter`."
)


def _definition_schemas() -> dict[str, Any]:
    schema = definition_json_schema(ref_template="#/components/schemas/{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    return {**definitions, "WorkflowDefinition": schema}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title="campaignflow",
        version=__version__,
        description=DESCRIPTION,
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _definition_schemas().items():
        schemas.setdefault(name, schema)
    app.openapi_schema = document
    return document


def render_openapi_document() -> str:
    """The document as the exact text committed to ``docs/openapi.json``."""
    from campaignflow.api.app import create_app  # noqa: PLC0415 — app imports this module
    from campaignflow.config import Settings  # noqa: PLC0415

    app = create_app(Settings(database_url="sqlite://"))
    return (
        orjson.dumps(build_openapi(app), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        + "\n"
    )
