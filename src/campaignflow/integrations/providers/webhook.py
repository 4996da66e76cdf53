"""Outgoing signed webhooks: ``webhook.post`` sends JSON to the connection's URL, signed.

The signature follows Stripe's scheme, so receivers can reuse what they know::

    X-Campaignflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The timestamp is signed with the body, so a captured request cannot be replayed later than the
receiver's tolerance; receivers verify with :func:`verify_outgoing_signature` (or its three
lines in another language) over the raw body bytes. Each delivery also carries
``X-Campaignflow-Idempotency-Key``, the same on every retry of the step, to drop duplicates.
The body is serialised here, once, so the bytes signed are the bytes sent.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from pydantic import Field, JsonValue

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    CannotBuildRequest,
    ConnectionSettings,
    Connector,
    ConnectorModel,
    NoAuth,
    Operation,
    OutboundRequest,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.providers._common import (
    HTTP_URL_PATTERN,
    Params,
    credential,
)

SIGNATURE_HEADER = "X-Campaignflow-Signature"
IDEMPOTENCY_HEADER = "X-Campaignflow-Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookCredentials(ConnectorModel):
    secret: str = Field(
        min_length=16,
        max_length=4096,
        json_schema_extra={"writeOnly": True},
        description="Shared signing secret (at least 16 characters; 32 random bytes in hex is "
        "a good choice). The receiver verifies X-Campaignflow-Signature with it.",
    )


class WebhookSettings(ConnectionSettings):
    url: str = Field(
        pattern=HTTP_URL_PATTERN,
        max_length=8000,
        description="Where deliveries are POSTed. Use https: the body is signed, not encrypted.",
    )


class PostParams(Params):
    """Posts a JSON document to the connection's URL, signed with its secret."""

    body: JsonValue = Field(description="The JSON document to deliver.")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Campaignflow-Signature`` value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_outgoing_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now_unix: float,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether ``header`` (the X-Campaignflow-Signature value) signs ``body`` (the raw bytes
    received) with ``secret``, at a time within ``tolerance_seconds`` of ``now_unix``.

    Several ``v1=`` values are accepted (one per secret during a rotation); any match will do.
    Comparison is in constant time.
    """
    timestamp, candidates = _parse(header)
    if timestamp is None or abs(now_unix - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _parse(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    return timestamp, candidates


def _delivery(body: Any, ctx: RequestContext) -> OutboundRequest:
    settings = ctx.settings
    if not isinstance(settings, WebhookSettings):
        raise CannotBuildRequest("webhook: the connection's settings have no url")
    try:
        raw = orjson.dumps(body)
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
        raise CannotBuildRequest("webhook: the body cannot be encoded as JSON") from exc
    secret = credential(ctx.credentials, "secret", "webhook")
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, ctx.now_unix, raw),
    }
    return OutboundRequest("POST", url=settings.url, headers=headers, raw=raw)


def post_request(params: PostParams, ctx: RequestContext) -> OutboundRequest:
    return _delivery(params.body, ctx)


def ping_request(ctx: RequestContext) -> OutboundRequest:
    """A signed ``{"type": "ping"}``: the receiver sees what a delivery looks like."""
    return _delivery({"type": "ping"}, ctx)


WEBHOOK = Connector(
    provider="webhook",
    title="Signed webhook",
    category="generic",
    description="POST JSON to any URL, signed like Stripe's webhooks. Each delivery carries "
    "`X-Campaignflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + '.' + raw "
    "body)>` and `X-Campaignflow-Idempotency-Key` (the same on every retry). Receivers "
    "recompute the HMAC over the raw body bytes, compare in constant time, and refuse a t more "
    "than 5 minutes from their clock; in Python, campaignflow.integrations.providers.webhook."
    "verify_outgoing_signature does exactly that.",
    base_url="",  # the URL is the connection's url setting
    auth=NoAuth(),  # the operation signs the request itself
    credentials=WebhookCredentials,
    settings=WebhookSettings,
    operations=operations(
        Operation(
            name="post",
            summary="POST a signed JSON document to the connection's URL.",
            params=PostParams,
            request=post_request,
        ),
    ),
    # The receiver is someone's own server: a modest default, raised per connection.
    rate_limits=RateLimits(requests_per_minute=600, burst_limit=10),
    breaker=BreakerPolicy(),
    test=ping_request,
    idempotency_header=IDEMPOTENCY_HEADER,
)
