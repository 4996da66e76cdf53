"""The one typed settings tree.

Every field reads from an environment variable derived from its path (``CAMPAIGNFLOW_DATABASE_URL``,
``CAMPAIGNFLOW_API__MAX_BODY_BYTES``, …). Settings are built by :func:`get_settings` when a process
starts, never at import time, so tests and the CLI can hand in their own.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from campaignflow.compliance.settings import RetentionSettings
from campaignflow.engine.options import WorkerOptions
from campaignflow.errors import ConfigurationError
from campaignflow.integrations.settings import IntegrationSettings
from campaignflow.observability.log_settings import LogSettings
from campaignflow.observability.trace_settings import TracingSettings
from campaignflow.security.network import NetworkSettings
from campaignflow.security.oauth_settings import OAuthSettings
from campaignflow.security.rate_limit import RateLimitSettings
from campaignflow.security.settings import EncryptionSettings, SecretStoreSettings

DEFAULT_WORKSPACE_ID = "default"

Mode = Literal["embedded", "production"]


def default_data_dir() -> Path:
    """Where the embedded mode keeps its SQLite file and generated credentials (XDG layout)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "campaignflow"


class ApiSettings(BaseModel):
    """Limits and behaviour of the HTTP API."""

    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body accepted, in bytes; larger bodies get 413.",
    )
    page_size_default: int = Field(50, ge=1, le=500, description="Page size when none is asked.")
    page_size_max: int = Field(
        500, ge=1, le=5000, description="Largest page size a client may ask."
    )
    auth_cache_seconds: float = Field(
        5,
        ge=0,
        le=300,
        description="How long a process trusts its cached lookup of a credential: a revoked key "
        "or a changed role takes effect in other API processes within this time.",
    )


class WorkerSettings(BaseModel):
    """How a worker claims and runs tasks."""

    batch_size: int = Field(256, ge=1, le=5000, description="Tasks claimed per batch.")
    lanes: int = Field(
        4, ge=1, le=64, description="Batches in flight per worker process (1 on SQLite)."
    )
    lease_seconds: float = Field(
        60, ge=5, le=3600, description="How long a claimed task is reserved for its worker."
    )
    max_idle_seconds: float = Field(
        5, gt=0, le=300, description="Longest sleep between looks at the queue when idle."
    )

    def options(self) -> WorkerOptions:
        return WorkerOptions(
            batch_size=self.batch_size,
            lanes=self.lanes,
            lease=timedelta(seconds=self.lease_seconds),
            max_idle=timedelta(seconds=self.max_idle_seconds),
        )


class EventSettings(BaseModel):
    """Ingestion limits, the event bus and the router."""

    shards: int = Field(
        16,
        ge=1,
        le=1024,
        description="Bus shards (Redis streams); one contact's events share a shard. Changing "
        "it reorders nothing already routed but must be the same for every process.",
    )
    stream_prefix: str = Field(
        "cf", min_length=1, max_length=64, description="Prefix of the Redis keys of the bus."
    )
    max_backlog: int = Field(
        1_000_000,
        ge=1,
        description="Unprocessed bus entries above which ingestion answers 429 (in-process: "
        "bounded to 10,000 whatever this says, since they are held in memory).",
    )
    retry_after_seconds: int = Field(
        1, ge=1, le=3600, description="Retry-After sent with a 429 when the backlog is full."
    )
    max_event_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest single event accepted (Segment: 32 KB)."
    )
    max_batch_bytes: int = Field(
        500 * 1024, ge=1024, description="Largest ingestion request body (Segment: 500 KB)."
    )
    shard_lease_seconds: float = Field(
        10,
        ge=0.2,
        le=600,
        description="How long a router owns a shard without renewing; a dead router's shards "
        "move to the others after this.",
    )
    router_batch_size: int = Field(
        500, ge=1, le=10_000, description="Bus entries a router takes per transaction."
    )


class AlertingSettings(BaseModel):
    """The alert evaluator, run by every worker process (``up`` and ``worker``)."""

    enabled: bool = Field(
        True, description="Evaluate alert rules in this process (any number may: each fires once)."
    )
    interval_seconds: float = Field(
        30, gt=0, le=3600, description="Seconds between two evaluations of every rule."
    )


class SchedulerSettings(BaseModel):
    """The time-trigger scheduler, run by every worker process (``up`` and ``worker``)."""

    enabled: bool = Field(
        True,
        description="Run the scheduler in this process (any number may run: each tick fires once).",
    )
    interval_seconds: float = Field(
        1, gt=0, le=60, description="How often the scheduler looks for due ticks."
    )
    catch_up_seconds: float = Field(
        3600,
        ge=0,
        le=7 * 86_400,
        description="Ticks missed by less than this (the scheduler was down or behind) still "
        "fire; older ones are skipped and logged.",
    )
    plan_ahead_hours: float = Field(
        6,
        ge=0,
        le=23,
        description="How long before a UTC day begins its relativeTo moments are planned "
        "(their executions created, due at each moment).",
    )
    page_size: int = Field(500, ge=1, le=10_000, description="Contacts per fan-out transaction.")
    lease_seconds: float = Field(
        30,
        ge=1,
        le=3600,
        description="How long a fan-out is reserved for its worker between two pages; a dead "
        "worker's fan-out is taken over after this.",
    )
    retention_days: float = Field(
        7, ge=1, le=3650, description="How long the record of a completed tick is kept."
    )


class MetricsSettings(BaseModel):
    """Prometheus metrics: ``GET /metrics`` on the API, a small server of its own on workers."""

    token: SecretStr | None = Field(
        None,
        description="Static bearer token Prometheus scrapes with (compared in constant time); "
        "without it /metrics needs an operator-workspace credential with metrics:read, and a "
        "worker serves its metrics on 127.0.0.1 only.",
    )
    worker_port: int = Field(
        9108,
        ge=0,
        le=65535,
        description="Port of the metrics server of `campaignflow worker` (0: do not serve; "
        "it serves only when a token is set).",
    )
    worker_host: str | None = Field(
        None,
        description="Address the worker's metrics server binds; default: every interface.",
    )
    sampler_interval_seconds: float = Field(
        15,
        ge=1,
        le=600,
        description="How often a worker process samples queue depth and lag and open dead "
        "letters (one grouped query each).",
    )


class Settings(BaseSettings):
    """Runtime configuration of every campaignflow process."""

    model_config = SettingsConfigDict(
        env_prefix="CAMPAIGNFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    mode: Mode = Field(
        "production",
        description="`embedded` (set by `campaignflow up`) allows generated local credentials.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory of the embedded SQLite database and generated credentials.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the system of record; default: SQLite file in data_dir.",
    )
    redis_url: str | None = Field(
        None, description="Redis URL for the event bus; unset means the in-process bus."
    )
    api_token: SecretStr | None = Field(
        None,
        description=(
            "Optional bootstrap credential: registered at start, once, as an API key of an "
            "owner of the default workspace (only its hash is stored). Without it, create the "
            "first key with `campaignflow create-key`; `campaignflow up` makes one itself."
        ),
    )
    workspace_id: str = Field(
        DEFAULT_WORKSPACE_ID, description="Workspace that the API token belongs to."
    )
    api: ApiSettings = Field(default_factory=ApiSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    secrets: SecretStoreSettings = Field(default_factory=SecretStoreSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
    integrations: IntegrationSettings = Field(default_factory=IntegrationSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    access_log: bool = Field(True, description="Log one line per HTTP request.")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @model_validator(mode="after")
    def _page_sizes_consistent(self) -> Settings:
        if self.api.page_size_default > self.api.page_size_max:
            raise ValueError("api.page_size_default must not exceed api.page_size_max")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'campaignflow.db'}"

    def require_secure(self) -> None:
        """Refuse insecure settings before serving: production needs its encryption key set
        explicitly (only `up` creates one), and a configured bootstrap token must be long."""
        encryption = self.encryption
        if self.mode == "production" and encryption.key_file is None and not encryption.master_key:
            raise ConfigurationError(
                "Set CAMPAIGNFLOW_ENCRYPTION__KEY_FILE (a key file, see `campaignflow "
                "rotate-key`) or CAMPAIGNFLOW_ENCRYPTION__MASTER_KEY (base64 of 32 random "
                "bytes) for `campaignflow serve` and `worker`: secrets and signing keys are "
                "encrypted with it. Only `campaignflow up` creates one by itself."
            )
        token = self.api_token.get_secret_value() if self.api_token else ""
        if self.api_token is not None and len(token) < 24:
            raise ConfigurationError("CAMPAIGNFLOW_API_TOKEN must be at least 24 characters long.")
        scrape = self.metrics.token.get_secret_value() if self.metrics.token else ""
        if self.metrics.token is not None and len(scrape) < 24:
            raise ConfigurationError(
                "CAMPAIGNFLOW_METRICS__TOKEN must be at least 24 characters long."
            )


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]
