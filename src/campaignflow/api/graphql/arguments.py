"""Checks of GraphQL arguments that REST makes with its parameter declarations: page sizes
(``first``, bounded like REST's ``limit``), lengths. A refusal names the argument, as REST's
400 names the parameter."""

from __future__ import annotations

from http import HTTPStatus

from campaignflow.api.pagination import page_size
from campaignflow.api.problems import ProblemError
from campaignflow.config import Settings


def bad_argument(name: str, detail: str) -> ProblemError:
    return ProblemError(
        HTTPStatus.BAD_REQUEST,
        "invalid-request",
        f"{name}: {detail}.",
        problems=[{"parameter": name, "in": "argument", "detail": detail, "code": "invalid"}],
    )


def bounded_first(first: int | None, settings: Settings) -> int:
    """The page size for ``first``: REST's ``limit`` rules (default and maximum from settings);
    a value outside 1..maximum is refused."""
    most = settings.api.page_size_max
    if first is not None and not 1 <= first <= most:
        raise bad_argument("first", f"must be between 1 and {most}")
    return page_size(first, settings)


def bounded_length(name: str, value: str | None, most: int) -> str | None:
    """``value`` if it has 1 to ``most`` characters (REST's ``max_length``)."""
    if value is not None and not 1 <= len(value) <= most:
        raise bad_argument(name, f"must have 1 to {most} characters")
    return value
