"""Errors as GraphQL clients see them: every error carries ``extensions.code``.

The same domain errors REST turns into problem details (``api/problems.py``) become GraphQL
errors here, with a code in Apollo's vocabulary (``UNAUTHENTICATED``, ``FORBIDDEN``,
``NOT_FOUND``, ``BAD_USER_INPUT`` …) and, for invalid input, the same problem list with JSON
pointers REST answers. Anything else is logged with its trace and answered as ``INTERNAL``
without details: a client never sees a stack trace or a driver's message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionContext, StreamExecutionResult

from campaignflow import errors
from campaignflow.api.problems import ProblemError
from campaignflow.bus.events import Backpressure, BusUnavailable

logger = logging.getLogger(__name__)

INTERNAL = "INTERNAL"
BAD_USER_INPUT = "BAD_USER_INPUT"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"

# Most specific class first: the first isinstance match wins (as in api/problems.py).
_CODE_BY_ERROR: tuple[tuple[type[Exception], str], ...] = (
    (errors.Unauthenticated, "UNAUTHENTICATED"),
    (errors.Forbidden, "FORBIDDEN"),
    (errors.RateLimited, "RATE_LIMITED"),
    (Backpressure, "RATE_LIMITED"),
    (errors.NotFound, "NOT_FOUND"),
    (errors.Conflict, "CONFLICT"),
    (errors.PreconditionFailed, "PRECONDITION_FAILED"),
    (errors.PreconditionRequired, "PRECONDITION_REQUIRED"),
    (errors.ClientError, BAD_USER_INPUT),
    (errors.DatabaseUnavailable, "SERVICE_UNAVAILABLE"),
    (errors.SecretStoreUnavailable, "SERVICE_UNAVAILABLE"),
    (BusUnavailable, "SERVICE_UNAVAILABLE"),
)
_CODE_BY_STATUS = {
    HTTPStatus.UNAUTHORIZED: "UNAUTHENTICATED",
    HTTPStatus.FORBIDDEN: "FORBIDDEN",
    HTTPStatus.NOT_FOUND: "NOT_FOUND",
    HTTPStatus.CONFLICT: "CONFLICT",
    HTTPStatus.PRECONDITION_FAILED: "PRECONDITION_FAILED",
    HTTPStatus.TOO_MANY_REQUESTS: "RATE_LIMITED",
}


def code_of(exc: BaseException) -> str:
    """The ``extensions.code`` of a resolver's exception; ``INTERNAL`` if it is not ours."""
    if isinstance(exc, ProblemError):
        return _CODE_BY_STATUS.get(exc.status, BAD_USER_INPUT)
    for error_type, code in _CODE_BY_ERROR:
        if isinstance(exc, error_type):
            return code
    return INTERNAL


def _problems(exc: BaseException) -> list[dict[str, object]]:
    """The problem list REST would answer (JSON pointers into the argument that carried the
    document, or the argument's name)."""
    if isinstance(exc, errors.InvalidDefinition | errors.InvalidScenario | errors.InvalidBody):
        return [problem.to_dict() for problem in exc.problems]
    if isinstance(exc, errors.InvalidField):
        return [{"pointer": exc.pointer, "detail": exc.message, "code": "invalid"}]
    if isinstance(exc, ProblemError):
        return exc.problems
    return []


def extensions_of(exc: BaseException) -> dict[str, Any]:
    code = code_of(exc)
    extensions: dict[str, Any] = {"code": code}
    problems = _problems(exc)
    if problems:
        extensions["problems"] = problems
    if isinstance(exc, errors.RateLimited | Backpressure):
        extensions["retryAfter"] = exc.retry_after_seconds
    return extensions


def translate(error: GraphQLError) -> GraphQLError:
    """``error`` with a code; an unexpected cause is logged and replaced by ``INTERNAL``."""
    cause = error.original_error
    if cause is None:  # a syntax or validation error of the document: the message is safe
        code = (error.extensions or {}).get("code", VALIDATION_FAILED)
        return _with(error, error.message, {**(error.extensions or {}), "code": code})
    extensions = extensions_of(cause)
    if extensions["code"] == INTERNAL:
        logger.error("GraphQL resolver failed at %s", error.path, exc_info=cause)
        return _with(error, "Internal error.", extensions)
    message = cause.message if isinstance(cause, errors.CampaignflowError) else str(cause)
    return _with(error, message, extensions)


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class ErrorCodes(SchemaExtension):
    """Rewrites every error of a result into the shape above before it is sent: the one result
    of a query or mutation, and each event of a subscription (as Strawberry's ``MaskErrors``
    does, whose hooks these are)."""

    def __init__(self) -> None:
        self._streamed = False

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if not self._streamed:
            _rewrite(self.execution_context.result)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        self._streamed = True
        _rewrite(result)
        yield None


def _rewrite(result: object) -> None:
    found = getattr(result, "errors", None)
    if found:
        result.errors = [translate(error) for error in found]  # type: ignore[attr-defined]


class CodedSchema(strawberry.Schema):
    """Logs only what is unexpected: a wrong id or a refused credential is the client's
    business, and :func:`translate` logs an internal error with its trace once."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None
