"""Alert channels, rules and incidents: what the REST API (and GraphQL) call.

A channel's secrets (a Slack webhook URL, a webhook's URL and signing secret, e-mail
recipients) go to the secret store before the row that refers to them, and are removed again
if the row cannot be written, as for connections. They are never returned: a channel shows a
masked ``hint``; a webhook's generated signing secret is shown once, in the creation answer.
"""

from __future__ import annotations

import builtins
import contextlib
import secrets as random_secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from campaignflow.domain.alerting import validate_rule
from campaignflow.domain.problems import Problem
from campaignflow.errors import InvalidBody, NotFound
from campaignflow.observability.alert_channels import (
    EMAIL_OPERATION,
    AlertSender,
    Delivery,
    secret_id,
)
from campaignflow.security.secret_store import SecretStore
from campaignflow.store.alerts import (
    AlertStore,
    ChannelRecord,
    IncidentRecord,
    NotificationRecord,
    RuleRecord,
)
from campaignflow.store.connections import ConnectionStore
from campaignflow.store.ids import new_id

ChannelKind = Literal["slack", "webhook", "email"]
MAX_RECIPIENTS = 20


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    """A channel's fields as sent (None: not given, for a PATCH)."""

    name: str | None = None
    kind: ChannelKind | None = None
    url: str | None = None
    secret: str | None = None
    connection_id: str | None = None
    recipients: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class CreatedChannel:
    record: ChannelRecord
    secret: str | None  # a generated signing secret, shown once


class AlertService:
    def __init__(
        self,
        store: AlertStore,
        secrets: SecretStore,
        connections: ConnectionStore,
        sender: AlertSender,
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._connections = connections
        self._sender = sender
        self._now = now

    # ------------------------------------------------------------------------------ channels

    async def create_channel(
        self, workspace_id: str, created_by: str | None, request: ChannelRequest
    ) -> CreatedChannel:
        assert request.kind is not None  # the schema requires it
        assert request.name is not None
        generated = None
        if request.kind == "webhook" and request.secret is None:
            generated = random_secrets.token_urlsafe(32)
        secrets = _secrets_of(request, generated)
        config = await self._config(workspace_id, request.kind, request, secrets)
        channel_id = new_id()
        await self._secrets.put(workspace_id, secret_id(channel_id), secrets)
        try:
            record = await self._store.create_channel(
                workspace_id,
                channel_id,
                name=request.name,
                kind=request.kind,
                config=config,
                hint=_hint(request.kind, secrets),
                created_by=created_by,
            )
        except BaseException:
            await self._secrets.delete(workspace_id, secret_id(channel_id))
            raise
        return CreatedChannel(record, generated)

    async def get_channel(self, workspace_id: str, channel_id: str) -> ChannelRecord:
        return await self._store.get_channel(workspace_id, channel_id)

    async def list_channels(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> builtins.list[ChannelRecord]:
        return await self._store.list_channels(workspace_id, after=after, limit=limit)

    async def update_channel(
        self, workspace_id: str, channel_id: str, request: ChannelRequest
    ) -> ChannelRecord:
        record = await self._store.get_channel(workspace_id, channel_id)
        if request.kind is not None and request.kind != record.kind:
            message = "a channel's kind cannot change; create another channel"
            raise InvalidBody([Problem(("kind",), message, "immutable")])
        stored = await self._secrets.get(workspace_id, secret_id(channel_id))
        merged = {**stored, **_secrets_of(request, None, partial=True)}
        kind: ChannelKind = record.kind  # type: ignore[assignment]
        connection = request.connection_id or record.config.get("connectionId")
        full = ChannelRequest(kind=kind, connection_id=connection, url=merged.get("url"))
        config = await self._config(workspace_id, kind, full, merged)
        await self._secrets.put(workspace_id, secret_id(channel_id), merged)
        values: dict[str, Any] = {"config": config, "hint": _hint(kind, merged)}
        if request.name is not None:
            values["name"] = request.name
        return await self._store.update_channel(workspace_id, channel_id, **values)

    async def delete_channel(self, workspace_id: str, channel_id: str) -> None:
        await self._store.delete_channel(workspace_id, channel_id)
        with contextlib.suppress(NotFound):
            await self._secrets.delete(workspace_id, secret_id(channel_id))

    async def test_channel(self, workspace_id: str, channel_id: str) -> Delivery:
        """Send a test message now, outside the outbox (nothing is retried or recorded)."""
        record = await self._store.get_channel(workspace_id, channel_id)
        now: datetime = self._now()
        payload = {
            "kind": "test",
            "sequence": 0,
            "workspaceId": workspace_id,
            "ruleId": None,
            "ruleName": "test message",
            "metric": "test",
            "comparator": ">",
            "threshold": 0,
            "value": 1,
            "window": None,
            "severity": "info",
            "incidentId": None,
            "at": now.isoformat(),
        }
        return await self._sender.deliver(record, payload, f"test-{new_id()}")

    async def _config(
        self,
        workspace_id: str,
        kind: ChannelKind,
        request: ChannelRequest,
        secrets: Mapping[str, str],
    ) -> dict[str, Any]:
        """The non-secret configuration, after checking that every part is present and sane."""
        problems: list[Problem] = []
        if kind in ("slack", "webhook"):
            _check_url(secrets.get("url"), problems)
        if kind == "webhook" and len(secrets.get("secret", "")) < 16:
            problems.append(Problem(("secret",), "at least 16 characters", "too_short"))
        if kind != "email":
            if problems:
                raise InvalidBody(problems)
            return {}
        if not secrets.get("recipients"):
            problems.append(Problem(("recipients",), "required for e-mail", "required"))
        config = await self._email_connection(workspace_id, request.connection_id, problems)
        if problems:
            raise InvalidBody(problems)
        return config

    async def _email_connection(
        self, workspace_id: str, connection_id: str | None, problems: list[Problem]
    ) -> dict[str, Any]:
        path = ("connectionId",)
        if connection_id is None:
            problems.append(Problem(path, "required for e-mail", "required"))
            return {}
        try:
            record = await self._connections.get(workspace_id, connection_id)
        except NotFound:
            problems.append(Problem(path, f"no connection {connection_id!r}", "unknown_connection"))
            return {}
        return {
            "connectionId": record.id,
            "provider": record.provider,
            "operation": EMAIL_OPERATION,
        }

    # --------------------------------------------------------------------------------- rules

    async def create_rule(
        self, workspace_id: str, created_by: str | None, document: Mapping[str, Any]
    ) -> RuleRecord:
        definition = await self._validated(workspace_id, document)
        return await self._store.create_rule(
            workspace_id,
            name=definition["name"],
            definition=definition,
            enabled=definition["enabled"],
            created_by=created_by,
        )

    async def update_rule(
        self, workspace_id: str, rule_id: str, patch: Mapping[str, Any]
    ) -> RuleRecord:
        """Apply a JSON merge patch (RFC 7396) to the rule's definition, then check it whole."""
        record = await self._store.get_rule(workspace_id, rule_id)
        definition = await self._validated(workspace_id, merge_patch(record.definition, patch))
        return await self._store.update_rule(
            workspace_id,
            rule_id,
            name=definition["name"],
            definition=definition,
            enabled=definition["enabled"],
        )

    async def get_rule(self, workspace_id: str, rule_id: str) -> RuleRecord:
        return await self._store.get_rule(workspace_id, rule_id)

    async def list_rules(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> builtins.list[RuleRecord]:
        return await self._store.list_rules(workspace_id, after=after, limit=limit)

    async def delete_rule(self, workspace_id: str, rule_id: str) -> None:
        await self._store.delete_rule(workspace_id, rule_id)

    async def _validated(self, workspace_id: str, document: Mapping[str, Any]) -> dict[str, Any]:
        rule, problems = validate_rule(document)
        if rule is None:
            raise InvalidBody(problems)
        known = await self._store.existing_channels(workspace_id, rule.channels)
        unknown = [
            Problem(("channels", index), f"no alert channel {channel!r}", "unknown_channel")
            for index, channel in enumerate(rule.channels)
            if channel not in known
        ]
        if unknown:
            raise InvalidBody(unknown)
        return dict(rule.document)

    # ----------------------------------------------------------------------------- incidents

    async def list_incidents(
        self,
        workspace_id: str,
        *,
        status: str | None,
        rule_id: str | None,
        before: str | None,
        limit: int,
    ) -> builtins.list[IncidentRecord]:
        return await self._store.list_incidents(
            workspace_id, status=status, rule_id=rule_id, before=before, limit=limit
        )

    async def get_incident(
        self, workspace_id: str, incident_id: str
    ) -> tuple[IncidentRecord, builtins.list[NotificationRecord]]:
        incident = await self._store.get_incident(workspace_id, incident_id)
        return incident, await self._store.notifications_of(workspace_id, incident_id)


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396: members of ``patch`` replace the target's, ``null`` removes one, objects merge."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = value
    return result


def _secrets_of(
    request: ChannelRequest, generated: str | None, *, partial: bool = False
) -> dict[str, str]:
    values: dict[str, str] = {}
    if request.url is not None:
        values["url"] = request.url
    secret = request.secret or generated
    if secret is not None:
        values["secret"] = secret
    if request.recipients is not None:
        values["recipients"] = ",".join(request.recipients)
    if not partial and request.kind == "email" and "recipients" not in values:
        values["recipients"] = ""
    return values


def _check_url(url: str | None, problems: list[Problem]) -> None:
    if url is None:
        problems.append(Problem(("url",), "required", "required"))
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(
            Problem(("url",), "must be an http or https URL with a host", "invalid_url")
        )


def _hint(kind: str, secrets: Mapping[str, str]) -> str:
    """Enough to recognise a channel, nothing to use it: the URL's host and its last 4
    characters, or how many recipients."""
    if kind == "email":
        count = len([r for r in secrets.get("recipients", "").split(",") if r])
        return f"{count} recipient(s)"
    url = secrets.get("url", "")
    host = urlsplit(url).hostname or "?"
    return f"{urlsplit(url).scheme}://{host}/…{url[-4:]}"
