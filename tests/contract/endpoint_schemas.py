"""Requests checked against JSON Schemas written from a provider's public reference.

For providers whose own API description may not be redistributed (HubSpot, Salesforce), each
schema in a folder describes one endpoint's request: ``x-endpoint`` names its method and path
template (``/services/data/{version}/sobjects/{sObject}``), optionally a JSON Schema of the
path parameters (``pathParameters``), and the schema itself validates the JSON body (``null``
when there is none) or, for a GET, the query parameters as sent. Every request a connector
builds must match exactly one endpoint and validate there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import jsonschema

from campaignflow.integrations.prepare import PreparedRequest

Validator = jsonschema.Draft202012Validator


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    template: str
    pattern: re.Pattern[str]
    schema: dict[str, Any]
    body: Validator
    path_parameters: Validator | None


def _validator(schema: dict[str, Any]) -> Validator:
    Validator.check_schema(schema)
    return Validator(schema, format_checker=Validator.FORMAT_CHECKER)


def _template(path: str) -> re.Pattern[str]:
    """``/a/{b}/c`` → a pattern capturing ``b`` as one path segment."""
    parts = re.split(r"\{([A-Za-z]+)\}", path)
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex)


class EndpointSchemas:
    """The endpoint schemas of one folder, by method and path template."""

    def __init__(self, folder: Path) -> None:
        self.endpoints: list[Endpoint] = []
        for file in sorted(folder.glob("*.json")):
            schema = json.loads(file.read_text(encoding="utf-8"))
            endpoint = schema["x-endpoint"]
            parameters = endpoint.get("pathParameters")
            self.endpoints.append(
                Endpoint(
                    name=file.stem,
                    method=endpoint["method"],
                    template=endpoint["path"],
                    pattern=_template(endpoint["path"]),
                    schema=schema,
                    body=_validator(schema),
                    path_parameters=_validator(parameters) if parameters else None,
                )
            )

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.endpoints)

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]]:
        """The one endpoint ``method path`` is, with its (percent-decoded) path parameters."""
        found = [
            (endpoint, match)
            for endpoint in self.endpoints
            if endpoint.method == method and (match := endpoint.pattern.fullmatch(path))
        ]
        assert len(found) == 1, f"{method} {path} matches {[e.name for e, _ in found]}"
        endpoint, match = found[0]
        return endpoint, {name: unquote(value) for name, value in match.groupdict().items()}

    def violations(self, method: str, path: str, document: Any) -> list[str]:
        """What the endpoint's schemas find wrong with a request's path and document."""
        endpoint, parameters = self.match(method, path)
        errors = [f"{e.json_path}: {e.message}" for e in endpoint.body.iter_errors(document)]
        if endpoint.path_parameters is not None:
            errors += [
                f"path {e.json_path}: {e.message}"
                for e in endpoint.path_parameters.iter_errors(parameters)
            ]
        return errors

    def request_violations(self, request: PreparedRequest) -> list[str]:
        url = urlsplit(request.url)
        return self.violations(request.method, url.path, document(request))


def document(request: PreparedRequest) -> Any:
    """What a request's schema validates: its query for a GET, else its JSON body (or null)."""
    if request.method == "GET":
        return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
    return json.loads(request.body or b"null")
