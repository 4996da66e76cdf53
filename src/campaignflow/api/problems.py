"""RFC 9457 problem details: the only error shape the API speaks.

Domain errors are mapped to a status and a stable ``type`` here, in one table, so route handlers
never build error responses and never see driver exceptions. Each entry of ``errors`` carries a JSON
Pointer (RFC 6901) into the request body, or ``parameter`` naming a query, path or header parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from campaignflow import errors
from campaignflow.bus.events import Backpressure, BusUnavailable
from campaignflow.domain.problems import to_pointer

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:campaignflow:problem:"

logger = logging.getLogger(__name__)

# Most specific class first: the first isinstance match wins.
_STATUS_BY_ERROR: tuple[tuple[type[errors.CampaignflowError], HTTPStatus, str], ...] = (
    (errors.InvalidDefinition, HTTPStatus.UNPROCESSABLE_ENTITY, "invalid-definition"),
    (errors.InvalidScenario, HTTPStatus.UNPROCESSABLE_ENTITY, "invalid-scenario"),
    (errors.InvalidBody, HTTPStatus.UNPROCESSABLE_ENTITY, "invalid-body"),
    (errors.InvalidField, HTTPStatus.UNPROCESSABLE_ENTITY, "invalid-field"),
    (errors.Unauthenticated, HTTPStatus.UNAUTHORIZED, "unauthenticated"),
    (errors.AddressNotAllowed, HTTPStatus.FORBIDDEN, "address-not-allowed"),
    (errors.Forbidden, HTTPStatus.FORBIDDEN, "forbidden"),
    (errors.RateLimited, HTTPStatus.TOO_MANY_REQUESTS, "rate-limited"),
    (errors.IdempotencyKeyReused, HTTPStatus.UNPROCESSABLE_ENTITY, "idempotency-key-reused"),
    (errors.NotFound, HTTPStatus.NOT_FOUND, "not-found"),
    (errors.AlreadyExists, HTTPStatus.CONFLICT, "already-exists"),
    (errors.Conflict, HTTPStatus.CONFLICT, "conflict"),
    (errors.PreconditionFailed, HTTPStatus.PRECONDITION_FAILED, "precondition-failed"),
    (errors.PreconditionRequired, HTTPStatus.PRECONDITION_REQUIRED, "precondition-required"),
    (errors.ClientError, HTTPStatus.BAD_REQUEST, "bad-request"),
    (Backpressure, HTTPStatus.TOO_MANY_REQUESTS, "backpressure"),
    (errors.DatabaseUnavailable, HTTPStatus.SERVICE_UNAVAILABLE, "database-unavailable"),
    (errors.SecretStoreUnavailable, HTTPStatus.SERVICE_UNAVAILABLE, "secret-store-unavailable"),
    (BusUnavailable, HTTPStatus.SERVICE_UNAVAILABLE, "bus-unavailable"),
)


class ProblemError(errors.ClientError):
    """A request problem raised by the HTTP layer itself (bad body, bad parameter, …)."""

    def __init__(
        self,
        status: HTTPStatus,
        slug: str,
        detail: str,
        *,
        problems: Sequence[dict[str, object]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.problems = list(problems)
        self.headers = headers or {}


def problem_response(
    status: HTTPStatus,
    slug: str,
    detail: str,
    *,
    instance: str | None = None,
    problems: Sequence[dict[str, object]] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": status.phrase,
        "status": int(status),
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if problems:
        body["errors"] = list(problems)
    return Response(
        orjson.dumps(body),
        status_code=int(status),
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _classify(exc: errors.CampaignflowError) -> tuple[HTTPStatus, str]:
    for error_type, status, slug in _STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status, slug
    return HTTPStatus.INTERNAL_SERVER_ERROR, "internal-error"


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.CampaignflowError)
    if isinstance(exc, ProblemError):
        return problem_response(
            exc.status,
            exc.slug,
            exc.message,
            instance=request.url.path,
            problems=exc.problems,
            headers=exc.headers,
        )
    status, slug = _classify(exc)
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.error("request failed: %s", exc, exc_info=exc)
    problems: list[dict[str, object]] = (
        [p.to_dict() for p in exc.problems]
        if isinstance(exc, errors.InvalidDefinition | errors.InvalidScenario | errors.InvalidBody)
        else []
    )
    if isinstance(exc, errors.InvalidField):
        problems = [{"pointer": exc.pointer, "detail": exc.message, "code": "invalid"}]
    headers = _headers(exc)
    detail = exc.message if status < HTTPStatus.INTERNAL_SERVER_ERROR else "Internal error."
    return problem_response(
        status, slug, detail, instance=request.url.path, problems=problems, headers=headers
    )


def _headers(exc: errors.CampaignflowError) -> dict[str, str] | None:
    if isinstance(exc, errors.Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, Backpressure | errors.RateLimited):
        return {"Retry-After": str(exc.retry_after_seconds)}
    return None


def _location(loc: Sequence[int | str]) -> dict[str, object]:
    """Where a framework validation error points: a body pointer or a named parameter."""
    if loc and loc[0] == "body":
        return {"pointer": to_pointer(loc[1:])}
    name = loc[-1] if loc else ""
    return {"parameter": str(name), "in": str(loc[0]) if loc else "request"}


async def _request_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {
            **_location(error.get("loc", ())),
            "detail": error.get("msg", "invalid"),
            "code": "invalid",
        }
        for error in exc.errors()
    ]
    return problem_response(
        HTTPStatus.BAD_REQUEST,
        "invalid-request",
        "The request has invalid parameters.",
        instance=request.url.path,
        problems=problems,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = HTTPStatus(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else status.description
    slug = status.phrase.lower().replace(" ", "-").replace("'", "")
    return problem_response(
        status, slug, detail, instance=request.url.path, headers=dict(exc.headers or {})
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "internal-error",
        "Internal error.",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.CampaignflowError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
