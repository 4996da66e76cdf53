"""Settings of the integration layer (``CAMPAIGNFLOW_INTEGRATIONS__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class IntegrationSettings(BaseModel):
    timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Give up on a provider's answer after this long."
    )
    max_rate_wait_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        description="A step waits this long at most for its account's rate limit; beyond it the "
        "step is deferred (not counted as an attempt) and the worker moves on.",
    )
    connection_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="How long a worker reuses a connection it looked up (and its credentials); "
        "a change made in another process takes effect within this time.",
    )
    key_prefix: str = Field(
        "cf:outbound",
        min_length=1,
        description="Prefix of the Redis keys of the shared rate limits and circuit breakers.",
    )
