"""Path and query parameters shared by the routers, and checks that hold for every route."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated

from fastapi import Path, Query, Request

from campaignflow.api.problems import ProblemError

WorkflowId = Annotated[str, Path(max_length=64, description="The workflow's `workflowId`.")]
Limit = Annotated[int | None, Query(ge=1, le=500, description="Page size (default 50).")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`nextCursor` of the previous page.")
]


async def refuse_nul(request: Request) -> None:
    """U+0000 in a path or query parameter is a 400 naming it, on every database alike
    (PostgreSQL cannot compare text holding it; SQLite would quietly find nothing)."""
    found: list[dict[str, object]] = [
        {"parameter": name, "in": where, "detail": "contains U+0000", "code": "invalid_character"}
        for where, items in (
            ("path", request.path_params.items()),
            ("query", request.query_params.multi_items()),
        )
        for name, value in items
        if isinstance(value, str) and "\x00" in value
    ]
    if found:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            "invalid-request",
            "Parameters must not contain the character U+0000.",
            problems=found,
        )


INSTANT = {"format": "date-time"}
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def parse_instant(value: str | None, parameter: str) -> datetime | None:
    """An RFC 3339 date-time with an offset, in UTC; anything else is a 400 naming it."""
    if value is None:
        return None
    try:
        if not _RFC3339.fullmatch(value):
            raise ValueError(value)
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            "invalid-request",
            f"{parameter} is not an RFC 3339 date-time with a time zone offset.",
            problems=[
                {
                    "parameter": parameter,
                    "in": "query",
                    "detail": "must be an RFC 3339 date-time with an offset, "
                    "e.g. 2026-03-27T08:00:00Z",
                    "code": "invalid",
                }
            ],
        ) from exc
