"""What the catalog publishes about each connector: plain JSON, built from its declaration.

``GET /api/v1/integrations`` serves it and ``docs/integrations.md`` is generated from it, so the
two cannot drift from the code (a test regenerates the page and compares).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from campaignflow.integrations.connector import Connector, Operation


def describe_connectors(connectors: Mapping[str, Connector]) -> list[dict[str, Any]]:
    return [describe_connector(connectors[name]) for name in sorted(connectors)]


def describe_connector(connector: Connector) -> dict[str, Any]:
    return {
        "provider": connector.provider,
        "title": connector.title,
        "category": connector.category,
        "description": connector.description,
        "auth": "per-connection" if connector.auth_for is not None else connector.auth.kind,
        "baseUrl": connector.base_url or None,
        "baseUrlFromCredentials": connector.base_url_for is not None,
        "docsUrl": connector.docs_url,
        "rateLimits": {
            "requestsPerMinute": connector.rate_limits.requests_per_minute,
            "burstLimit": connector.rate_limits.burst_limit,
        },
        "circuitBreaker": {
            "failureThreshold": connector.breaker.failure_threshold,
            "openSeconds": connector.breaker.open_seconds,
        },
        "idempotencyHeader": connector.idempotency_header,
        "testable": connector.test is not None,
        "credentialsSchema": json_schema_of(connector.credentials),
        "settingsSchema": json_schema_of(connector.settings),
        "operations": [
            describe_operation(connector, connector.operations[name])
            for name in sorted(connector.operations)
        ],
    }


def describe_operation(connector: Connector, operation: Operation) -> dict[str, Any]:
    return {
        "name": operation.name,
        "action": f"{connector.provider}.{operation.name}",
        "summary": operation.summary,
        "sendsMessage": operation.sends_message,
        "paramsSchema": json_schema_of(operation.params),
    }


@functools.cache
def json_schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON Schema, generated once per process: the models are static, and generating
    every connector's schemas took a quarter of a second at each app start. Treat the result as
    read-only; it is shared."""
    return model.model_json_schema(by_alias=True)
