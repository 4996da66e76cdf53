"""Reading request bodies: content type, size limit and JSON syntax, each with a precise problem.

Bodies are read here rather than through FastAPI's model binding so the workflow validator can
report every problem of a definition in its own terms, and so an oversized body is refused while it
streams in rather than after it has been buffered whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from http import HTTPStatus
from typing import TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel

from campaignflow.api.problems import ProblemError
from campaignflow.domain.problems import to_pointer
from campaignflow.domain.pydantic_problems import validated

M = TypeVar("M", bound=BaseModel)

JSON_MEDIA_TYPES = frozenset({"application/json"})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_json_content_type(request: Request, *, also: frozenset[str] = frozenset()) -> None:
    """JSON only; ``also`` admits more media types (and a missing one, when it holds ``""``)."""
    media_type = _media_type(request)
    if media_type in JSON_MEDIA_TYPES or media_type in also or media_type.endswith("+json"):
        return
    shown = media_type or "none"
    raise ProblemError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        f"Send the body as application/json (got {shown}).",
        headers={"Accept-Post": "application/json"},
    )


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "body-too-large",
        f"The request body is larger than the limit of {limit} bytes.",
    )


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST, "bad-request", "Content-Length is not a number."
        ) from exc


async def read_body(request: Request, *, limit: int) -> bytes:
    """Read the whole body, refusing it as soon as it passes ``limit`` bytes."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


_GZIP_WBITS = 16 + zlib.MAX_WBITS


async def read_ingest_body(request: Request, *, limit: int) -> bytes:
    """Read an ingestion body, gunzipping it when the sender compressed it (Segment's and
    RudderStack's libraries may): ``limit`` bounds the *decompressed* size, so a small
    compressed body cannot expand into a large one."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "identity":
        return await read_body(request, limit=limit)
    if encoding != "gzip":
        raise ProblemError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported-encoding",
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding.",
            headers={"Accept-Encoding": "gzip"},
        )
    inflater = zlib.decompressobj(_GZIP_WBITS)
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            part = inflater.decompress(chunk, limit - size + 1)
            size += len(part)
            if size > limit or inflater.unconsumed_tail:
                raise _too_large(limit)
            parts.append(part)
        parts.append(inflater.flush())
    except zlib.error as exc:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST, "malformed-body", f"The gzip body is corrupt: {exc}."
        ) from exc
    if not inflater.eof:
        raise ProblemError(HTTPStatus.BAD_REQUEST, "malformed-body", "The gzip body is cut short.")
    return b"".join(parts)


def parse_json(body: bytes) -> object:
    """Parse JSON, reporting where the syntax broke; refuse strings holding U+0000."""
    if not body.strip():
        raise ProblemError(HTTPStatus.BAD_REQUEST, "malformed-json", "The request body is empty.")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            "malformed-json",
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            problems=[{"pointer": "", "detail": exc.msg, "line": exc.lineno, "column": exc.colno}],
        ) from exc
    if b"\\u0000" in body:  # cheap test first: JSON can only carry NUL escaped
        _refuse_nul(document)
    return document


_MAX_REPORTED = 20


def _refuse_nul(document: object) -> None:
    """PostgreSQL stores no U+0000 in text or jsonb; say where it is instead of failing later
    (and SQLite would store what PostgreSQL refuses: both dialects answer the same)."""
    found: list[dict[str, object]] = []
    pending: list[tuple[tuple[str | int, ...], object]] = [((), document)]
    while pending and len(found) < _MAX_REPORTED:
        path, value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                found.append(_nul_problem(path, "this string"))
        elif isinstance(value, dict):
            for key, child in value.items():
                if "\x00" in key:
                    found.append(_nul_problem((*path, key), "this member's name"))
                pending.append(((*path, key), child))
        elif isinstance(value, list):
            pending.extend(((*path, index), child) for index, child in enumerate(value))
    if found:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "invalid-body",
            "Strings in the body must not contain the character U+0000.",
            problems=sorted(found, key=lambda problem: str(problem["pointer"])),
        )


def _nul_problem(path: tuple[str | int, ...], what: str) -> dict[str, object]:
    return {
        "pointer": to_pointer(path),
        "detail": f"{what} contains U+0000, which cannot be stored",
        "code": "invalid_character",
    }


async def read_json(request: Request, *, limit: int) -> object:
    """Check the content type, read within the limit and parse the JSON body."""
    require_json_content_type(request)
    return parse_json(await read_body(request, limit=limit))


def validate_body(model: type[M], document: object, vocabulary: Sequence[str] = ()) -> M:
    """The document as ``model``, or a 422 listing every problem with its pointer (unknown
    members get a suggested spelling from ``vocabulary``)."""
    return validated(model, document, vocabulary=vocabulary)
