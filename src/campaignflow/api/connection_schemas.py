"""Shapes of ``/api/v1/connections``. Credentials go in on creation and never come out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from campaignflow.api.schemas import ApiModel
from campaignflow.domain.fields import CONNECTION_NAME_PATTERN
from campaignflow.store.connections import ConnectionRecord

WEBHOOKS_PATH = "/api/v1/webhooks"  # inbound provider webhooks: <path>/<provider>/<id>

#: Members of the request body, to suggest a spelling for an unknown one.
FIELDS = ("name", "provider", "description", "credentials", "settings")

ConnectionName = Annotated[
    str,
    Field(
        pattern=CONNECTION_NAME_PATTERN,
        description="Unique in the workspace; workflows name the connection by it "
        "(`config.connection`).",
    ),
]


class ConnectionCreate(ApiModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: ConnectionName
    provider: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="A connector of `GET /api/v1/integrations`, e.g. `sendgrid`."
    )
    description: Annotated[str, Field(max_length=500)] | None = None
    credentials: dict[str, Any] = Field(
        default_factory=dict,
        description="The connector's credentials (its `credentialsSchema`); stored in the secret "
        "store and never returned.",
    )
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="The connector's settings (its `settingsSchema`): `baseUrl`, "
        "`requestsPerMinute`, `burstLimit` and the connector's own.",
    )


class ConnectionTest(ApiModel):
    at: datetime
    outcome: Literal["ok", "failed"]
    message: str


class Connection(ApiModel):
    id: str = Field(description="Global id; part of the connection's inbound webhook URL.")
    name: str
    provider: str
    description: str | None
    settings: dict[str, Any]
    webhook_path: str = Field(
        description="Where the provider should post its webhooks (after this server's origin)."
    )
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    last_test: ConnectionTest | None = Field(description="The outcome of the latest test.")
    sync: dict[str, Any] | None = Field(
        None,
        description="A CRM connection's sync configuration (`PUT …/sync`); null: no sync.",
    )
    next_sync_at: datetime | None = Field(
        None, description="When the next scheduled or real-time sync run starts."
    )

    @classmethod
    def from_record(cls, record: ConnectionRecord) -> Connection:
        last_test = None
        if record.tested_at is not None and record.test_outcome in ("ok", "failed"):
            last_test = ConnectionTest(
                at=record.tested_at,
                outcome=record.test_outcome,
                message=record.test_message or "",
            )
        return cls(
            id=record.id,
            name=record.name,
            provider=record.provider,
            description=record.description,
            settings=record.settings,
            webhook_path=f"{WEBHOOKS_PATH}/{record.provider}/{record.id}",
            created_by=record.created_by,
            created_at=record.created_at,
            updated_at=record.updated_at,
            last_test=last_test,
            sync=record.sync,
            next_sync_at=record.sync_due_at,
        )


class ConnectionPage(ApiModel):
    items: list[Connection]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class ConnectionTestResult(ApiModel):
    ok: bool
    message: str = Field(description="What happened, naming the provider's HTTP status.")
    status: int | None = Field(description="The provider's HTTP status, when it answered.")
    duration_ms: float
