"""Shapes of ``/api/v1/alert-channels``, ``/api/v1/alert-rules`` and ``/api/v1/alerts``.

A channel's secrets go in and never come out: a channel shows a masked ``hint``. A rule is
its JSON document (``domain.alerting``), checked there with a pointer for every problem, plus
its evaluation state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from campaignflow.api.schemas import ApiModel
from campaignflow.domain.alerting import METRICS
from campaignflow.integrations.providers._common import EmailAddress
from campaignflow.observability.alert_channels import Delivery
from campaignflow.store.alerts import (
    ChannelRecord,
    IncidentRecord,
    NotificationRecord,
    RuleRecord,
)

CHANNEL_FIELDS = ("name", "kind", "url", "secret", "connectionId", "recipients")
ChannelName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]
Url = Annotated[str, Field(min_length=8, max_length=2000)]
Secret = Annotated[str, Field(min_length=16, max_length=200)]
Recipients = Annotated[list[EmailAddress], Field(min_length=1, max_length=20)]


class AlertChannelCreate(ApiModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: ChannelName
    kind: Literal["slack", "webhook", "email"] = Field(
        description="`slack`: an incoming-webhook URL; `webhook`: a URL and a signing secret "
        "(generated if not given, and shown once); `email`: a connection with a `send_email` "
        "operation and recipients."
    )
    url: Url | None = Field(None, description="slack, webhook: where to POST (kept secret).")
    secret: Secret | None = Field(
        None, description="webhook: the HMAC-SHA256 key of `Campaignflow-Signature`."
    )
    connection_id: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="email: the connection that sends (e.g. a SendGrid one)."
    )
    recipients: Recipients | None = Field(None, description="email: who receives the alerts.")


class AlertChannelUpdate(ApiModel):
    """Members given replace the stored ones; the kind cannot change."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: ChannelName | None = None
    kind: Literal["slack", "webhook", "email"] | None = None
    url: Url | None = None
    secret: Secret | None = None
    connection_id: Annotated[str, Field(max_length=64)] | None = None
    recipients: Recipients | None = None


class AlertChannel(ApiModel):
    id: str
    name: str
    kind: str
    hint: str = Field(description="A masked reminder of where it goes; never the secret.")
    connection_id: str | None = None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        None, description="A webhook's generated signing secret: in the creation answer only."
    )

    @classmethod
    def from_record(cls, record: ChannelRecord, secret: str | None = None) -> AlertChannel:
        return cls(
            id=record.id,
            name=record.name,
            kind=record.kind,
            hint=record.hint,
            connection_id=record.config.get("connectionId"),
            created_by=record.created_by,
            created_at=record.created_at,
            updated_at=record.updated_at,
            secret=secret,
        )


class AlertChannelPage(ApiModel):
    items: list[AlertChannel]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )


class ChannelTestResult(ApiModel):
    ok: bool
    message: str
    status: int | None

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> ChannelTestResult:
        return cls(ok=delivery.ok, message=delivery.message, status=delivery.status)


class AlertRuleDocument(ApiModel):
    """The rule format (documentation only: the body is checked by ``domain.alerting``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    name: str
    description: str | None = None
    metric: Literal[tuple(METRICS)]  # type: ignore[valid-type]
    filters: dict[str, Any] = Field(
        default_factory=dict, description="`workflowId`; `minSamples` for the failure rate."
    )
    comparator: Literal[">", ">=", "<", "<="]
    threshold: float
    window: str | None = Field(None, description="`5m`, `1h` or ISO-8601 (`PT5M`).")
    for_: str | None = Field(None, alias="for", description="How long it must hold first.")
    severity: Literal["info", "warning", "critical"] = "warning"
    channels: list[str] = Field(default_factory=list, description="Alert channel ids.")
    repeat_interval: str | None = Field(None, description="Re-notify while firing, e.g. `1h`.")
    enabled: bool = True


class AlertRule(ApiModel):
    id: str
    definition: dict[str, Any] = Field(description="The rule, as stored (see the rule format).")
    state: str = Field(description="`ok`, `pending` (breached, waiting for `for`), `firing`.")
    state_since: datetime | None
    incident_id: str | None = Field(description="The open alert, while firing.")
    last_value: float | None
    evaluated_at: datetime | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: RuleRecord) -> AlertRule:
        return cls(
            id=record.id,
            definition=record.definition,
            state=record.state,
            state_since=record.state_since,
            incident_id=record.incident_id,
            last_value=record.last_value,
            evaluated_at=record.evaluated_at,
            created_by=record.created_by,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class AlertRulePage(ApiModel):
    items: list[AlertRule]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )


class AlertNotification(ApiModel):
    id: str
    channel_id: str
    kind: str
    sequence: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_record(cls, record: NotificationRecord) -> AlertNotification:
        return cls(
            id=record.id,
            channel_id=record.channel_id,
            kind=record.kind,
            sequence=record.sequence,
            status=record.status,
            attempts=record.attempts,
            next_attempt_at=record.next_attempt_at,
            last_error=record.last_error,
            created_at=record.created_at,
            sent_at=record.sent_at,
        )


class Alert(ApiModel):
    id: str
    rule_id: str
    rule_name: str
    metric: str
    severity: str
    status: str
    value: float | None = Field(description="The metric's value when it fired.")
    last_value: float | None
    threshold: float
    started_at: datetime
    resolved_at: datetime | None
    repeats: int
    notifications: list[AlertNotification] | None = Field(
        None, description="Each message to each channel (in `GET /alerts/{id}` only)."
    )

    @classmethod
    def from_record(
        cls, record: IncidentRecord, notifications: list[NotificationRecord] | None = None
    ) -> Alert:
        return cls(
            id=record.id,
            rule_id=record.rule_id,
            rule_name=record.rule_name,
            metric=record.metric,
            severity=record.severity,
            status=record.status,
            value=record.value,
            last_value=record.last_value,
            threshold=record.threshold,
            started_at=record.started_at,
            resolved_at=record.resolved_at,
            repeats=record.repeats,
            notifications=None
            if notifications is None
            else [AlertNotification.from_record(n) for n in notifications],
        )


class AlertPage(ApiModel):
    items: list[Alert]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )
