"""``If-Match`` for optimistic concurrency on workflow definitions (RFC 9110 §13.1.1)."""

from __future__ import annotations

import re
from http import HTTPStatus

from campaignflow.api.problems import ProblemError

_STRONG_ETAG = re.compile(r'^"v([1-9][0-9]{0,8})"$')


def stale() -> ProblemError:
    return ProblemError(
        HTTPStatus.PRECONDITION_FAILED,
        "precondition-failed",
        "The workflow changed since you read it (If-Match does not match its ETag); "
        "GET it again, re-apply your change and retry.",
        problems=[{"parameter": "If-Match", "in": "header", "detail": "stale or unknown ETag"}],
    )


def versions_in_if_match(header: str | None) -> frozenset[int] | None:
    """The versions an ``If-Match`` header accepts; ``None`` when any version will do.

    Weak ETags never match under If-Match's strong comparison, so a header made only of weak or
    foreign tags accepts no version at all.
    """
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for tag in header.split(","):
        match = _STRONG_ETAG.match(tag.strip())
        if match:
            versions.add(int(match.group(1)))
    return frozenset(versions)


def if_none_match_hits(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names the current ETag (weak comparison, RFC 9110 §13.1.2)."""
    if header is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags
