"""``/api/v1/alert-channels``, ``/api/v1/alert-rules`` and ``/api/v1/alerts``: thin
translations onto :class:`AlertService`. Reads need ``alerts:read``; rules ``alerts:write``;
channels, which hold credentials, ``alert_channels:write``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from campaignflow.api.alert_schemas import (
    CHANNEL_FIELDS,
    Alert,
    AlertChannel,
    AlertChannelCreate,
    AlertChannelPage,
    AlertChannelUpdate,
    AlertPage,
    AlertRule,
    AlertRuleDocument,
    AlertRulePage,
    ChannelTestResult,
)
from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.deps import AppSettings
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.problems import ProblemError
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.security.rbac import Permission
from campaignflow.services.alerts import AlertService, ChannelRequest

channels_router = APIRouter(
    prefix="/alert-channels", tags=["alerting"], responses=problem_responses(400, 401, 403, 404)
)
rules_router = APIRouter(
    prefix="/alert-rules", tags=["alerting"], responses=problem_responses(400, 401, 403, 404)
)
alerts_router = APIRouter(
    prefix="/alerts", tags=["alerting"], responses=problem_responses(400, 401, 403, 404)
)

ChannelId = Annotated[str, Path(max_length=64, description="The channel's `id`.")]
RuleId = Annotated[str, Path(max_length=64, description="The rule's `id`.")]
AlertId = Annotated[str, Path(max_length=64, description="The alert's `id`.")]
READ = [authorize(Permission.ALERTS_READ)]
WRITE_RULES = [authorize(Permission.ALERTS_WRITE)]
WRITE_CHANNELS = [authorize(Permission.ALERT_CHANNELS_WRITE)]


async def get_alert_service(request: Request) -> AlertService:
    service: AlertService = request.app.state.alerts
    return service


Alerts = Annotated[AlertService, Depends(get_alert_service)]


def _channel_request(body: AlertChannelCreate | AlertChannelUpdate) -> ChannelRequest:
    return ChannelRequest(
        name=body.name,
        kind=body.kind,
        url=body.url,
        secret=body.secret,
        connection_id=body.connection_id,
        recipients=tuple(body.recipients) if body.recipients is not None else None,
    )


async def _object(request: Request, settings: AppSettings) -> dict[str, object]:
    document = await read_json(request, limit=settings.api.max_body_bytes)
    if not isinstance(document, dict):
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "invalid-body",
            "The body must be a JSON object.",
            problems=[{"pointer": "", "detail": "must be a JSON object"}],
        )
    return document


# ------------------------------------------------------------------------------- channels


@channels_router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=AlertChannel,
    response_model_exclude_none=True,
    dependencies=WRITE_CHANNELS,
    openapi_extra=request_body(AlertChannelCreate, "application/json"),
    responses=problem_responses(409, 413, 415, 422),
)
async def create_alert_channel(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Alerts,
    settings: AppSettings,
) -> AlertChannel:
    """Add a channel. Its URL, secret and recipients go to the secret store and are never
    returned; a webhook's signing secret, when generated, is in this answer only."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(AlertChannelCreate, document, CHANNEL_FIELDS)
    created = await service.create_channel(
        principal.workspace_id, principal.subject, _channel_request(body)
    )
    response.headers["Location"] = f"{request.url.path}/{created.record.id}"
    return AlertChannel.from_record(created.record, created.secret)


@channels_router.get("", response_model=AlertChannelPage, dependencies=READ)
async def list_alert_channels(
    principal: CurrentPrincipal,
    service: Alerts,
    settings: AppSettings,
    *,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AlertChannelPage:
    """The workspace's alert channels, by name."""
    size = page_size(limit, settings)
    records = await service.list_channels(
        principal.workspace_id, after=decode_cursor(cursor, str), limit=size + 1
    )
    page, next_cursor = page_of(records, size, lambda record: record.name)
    return AlertChannelPage(
        items=[AlertChannel.from_record(r) for r in page], next_cursor=next_cursor
    )


@channels_router.get("/{channel_id}", response_model=AlertChannel, dependencies=READ)
async def get_alert_channel(
    channel_id: ChannelId, principal: CurrentPrincipal, service: Alerts
) -> AlertChannel:
    """One channel (never its secrets)."""
    return AlertChannel.from_record(await service.get_channel(principal.workspace_id, channel_id))


@channels_router.patch(
    "/{channel_id}",
    response_model=AlertChannel,
    dependencies=WRITE_CHANNELS,
    openapi_extra=request_body(AlertChannelUpdate, "application/json"),
    responses=problem_responses(409, 413, 415, 422),
)
async def update_alert_channel(
    channel_id: ChannelId,
    request: Request,
    principal: CurrentPrincipal,
    service: Alerts,
    settings: AppSettings,
) -> AlertChannel:
    """Change a channel's name, URL, secret, connection or recipients (not its kind)."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(AlertChannelUpdate, document, CHANNEL_FIELDS)
    record = await service.update_channel(
        principal.workspace_id, channel_id, _channel_request(body)
    )
    return AlertChannel.from_record(record)


@channels_router.delete(
    "/{channel_id}",
    status_code=HTTPStatus.NO_CONTENT,
    response_class=Response,
    dependencies=WRITE_CHANNELS,
)
async def delete_alert_channel(
    channel_id: ChannelId, principal: CurrentPrincipal, service: Alerts
) -> Response:
    """Delete the channel and its secrets; rules naming it skip it from then on."""
    await service.delete_channel(principal.workspace_id, channel_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@channels_router.post(
    "/{channel_id}/test", response_model=ChannelTestResult, dependencies=WRITE_CHANNELS
)
async def test_alert_channel(
    channel_id: ChannelId, principal: CurrentPrincipal, service: Alerts
) -> ChannelTestResult:
    """Send a test message now. `200` either way: `ok` says whether the receiver took it."""
    delivery = await service.test_channel(principal.workspace_id, channel_id)
    return ChannelTestResult.from_delivery(delivery)


# ---------------------------------------------------------------------------------- rules


@rules_router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=AlertRule,
    dependencies=WRITE_RULES,
    openapi_extra=request_body(AlertRuleDocument, "application/json"),
    responses=problem_responses(409, 413, 415, 422),
)
async def create_alert_rule(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Alerts,
    settings: AppSettings,
) -> AlertRule:
    """Add a rule; `422` lists every problem with its JSON pointer, `409` if the name is
    taken."""
    document = await _object(request, settings)
    record = await service.create_rule(principal.workspace_id, principal.subject, document)
    response.headers["Location"] = f"{request.url.path}/{record.id}"
    return AlertRule.from_record(record)


@rules_router.get("", response_model=AlertRulePage, dependencies=READ)
async def list_alert_rules(
    principal: CurrentPrincipal,
    service: Alerts,
    settings: AppSettings,
    *,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AlertRulePage:
    """The workspace's rules with their state, by name."""
    size = page_size(limit, settings)
    records = await service.list_rules(
        principal.workspace_id, after=decode_cursor(cursor, str), limit=size + 1
    )
    page, next_cursor = page_of(records, size, lambda record: record.name)
    return AlertRulePage(items=[AlertRule.from_record(r) for r in page], next_cursor=next_cursor)


@rules_router.get("/{rule_id}", response_model=AlertRule, dependencies=READ)
async def get_alert_rule(
    rule_id: RuleId, principal: CurrentPrincipal, service: Alerts
) -> AlertRule:
    """One rule and its state."""
    return AlertRule.from_record(await service.get_rule(principal.workspace_id, rule_id))


@rules_router.patch(
    "/{rule_id}",
    response_model=AlertRule,
    dependencies=WRITE_RULES,
    openapi_extra=request_body(AlertRuleDocument, "application/merge-patch+json"),
    responses=problem_responses(409, 413, 415, 422),
)
async def update_alert_rule(
    rule_id: RuleId,
    request: Request,
    principal: CurrentPrincipal,
    service: Alerts,
    settings: AppSettings,
) -> AlertRule:
    """A JSON merge patch (RFC 7396) of the rule: `{"enabled": false}` silences it (an open
    alert resolves at the next evaluation)."""
    patch = await _object(request, settings)
    return AlertRule.from_record(await service.update_rule(principal.workspace_id, rule_id, patch))


@rules_router.delete(
    "/{rule_id}",
    status_code=HTTPStatus.NO_CONTENT,
    response_class=Response,
    dependencies=WRITE_RULES,
)
async def delete_alert_rule(
    rule_id: RuleId, principal: CurrentPrincipal, service: Alerts
) -> Response:
    """Delete the rule; its open alert is closed without a notification."""
    await service.delete_rule(principal.workspace_id, rule_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


# --------------------------------------------------------------------------------- alerts


@alerts_router.get("", response_model=AlertPage, dependencies=READ)
async def list_alerts(
    principal: CurrentPrincipal,
    service: Alerts,
    settings: AppSettings,
    *,
    status: Annotated[
        Literal["firing", "resolved"] | None, Query(description="Only alerts in this state.")
    ] = None,
    rule_id: Annotated[
        str | None, Query(alias="ruleId", max_length=64, description="Only this rule's alerts.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AlertPage:
    """Alerts (one per firing of a rule), newest first."""
    size = page_size(limit, settings)
    records = await service.list_incidents(
        principal.workspace_id,
        status=status,
        rule_id=rule_id,
        before=decode_cursor(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = page_of(records, size, lambda record: record.id)
    return AlertPage(items=[Alert.from_record(r) for r in page], next_cursor=next_cursor)


@alerts_router.get("/{alert_id}", response_model=Alert, dependencies=READ)
async def get_alert(alert_id: AlertId, principal: CurrentPrincipal, service: Alerts) -> Alert:
    """One alert with every notification it sent (or is still trying to)."""
    incident, notifications = await service.get_incident(principal.workspace_id, alert_id)
    return Alert.from_record(incident, notifications)
