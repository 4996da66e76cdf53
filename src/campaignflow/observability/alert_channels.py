"""Delivering an alert notification to a channel: Slack, a signed webhook, or e-mail.

Requests go out through the ``http`` step's pooled client (``HttpExecutor.send``: the same URL
checks — http or https, a host — the same timeouts, no cookies, no proxy from the
environment) or, for e-mail, through a connection's ``send_email`` operation behind its rate
limit and circuit breaker (``ConnectorExecutor.send``). Secrets come from the secret store at
send time and appear in no message or error.

A signed webhook carries ``Campaignflow-Signature: t=<unix>,v1=<hex>``, the HMAC-SHA256 of
``"<t>.<body>"`` under the channel's secret (the Stripe scheme): a receiver recomputes it and
rejects old timestamps, so a captured request cannot be replayed later.

The outcome of one attempt is a :class:`Delivery`: sent, or failed and whether a retry could
help (transport errors, 408/425/429 and 5xx could; other 4xx could not).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from campaignflow.engine.actions import ActionFailed
from campaignflow.engine.http_action import HttpExecutor, retryable_status
from campaignflow.errors import CampaignflowError, ClientError, NotFound
from campaignflow.integrations.connections import ConnectionResolver
from campaignflow.integrations.connector import RequestContext
from campaignflow.integrations.executor import ConnectorExecutor
from campaignflow.security.secret_store import SecretStore
from campaignflow.store.alerts import ChannelRecord
from campaignflow.store.connections import ConnectionStore

SIGNATURE_HEADER = "Campaignflow-Signature"
EMAIL_OPERATION = "send_email"
_TITLES = {
    "fire": "FIRING",
    "repeat": "STILL FIRING",
    "resolve": "RESOLVED",
    "test": "TEST",
}


def secret_id(channel_id: str) -> str:
    """The secret-store id of a channel's secrets."""
    return f"alert_channel:{channel_id}"


@dataclass(frozen=True, slots=True)
class Delivery:
    ok: bool
    message: str
    status: int | None = None
    retryable: bool = False
    retry_after_s: float | None = None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    signed = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def summary(payload: Mapping[str, Any]) -> str:
    """One line for people: what fired, its value against the threshold."""
    kind = str(payload.get("kind", "fire"))
    value = payload.get("value")
    shown = "no value" if value is None else f"{float(value):g}"
    return (
        f"[{_TITLES.get(kind, kind.upper())}] {payload.get('ruleName')} "
        f"({payload.get('severity')}): {payload.get('metric')} = {shown} "
        f"{payload.get('comparator')} {float(payload.get('threshold') or 0):g} "
        f"over {payload.get('window') or 'now'}"
    )


def slack_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Block Kit message with a plain-text fallback (``text``: notifications, old clients)."""
    text = summary(payload)
    fields = [
        ("Rule", payload.get("ruleName")),
        ("Severity", payload.get("severity")),
        ("Metric", payload.get("metric")),
        ("Value", payload.get("value")),
        ("Condition", f"{payload.get('comparator')} {payload.get('threshold')}"),
        ("Window", payload.get("window") or "now"),
    ]
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": text[:150]}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in fields
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"workspace {payload.get('workspaceId')} · "
                        f"incident {payload.get('incidentId')} · {payload.get('at')}",
                    }
                ],
            },
        ],
    }


def webhook_body(payload: Mapping[str, Any], notification_id: str) -> bytes:
    """The JSON a webhook receives: ``id`` (dedupe on it), ``type`` (``alert.fire`` …) and
    the notification's facts."""
    document = {"id": notification_id, "type": f"alert.{payload.get('kind')}", **payload}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


class AlertSender:
    """Sends one notification to one channel; never raises for the receiver's failures."""

    def __init__(
        self,
        http: HttpExecutor,
        secrets: SecretStore,
        connections: ConnectionStore,
        resolver: ConnectionResolver,
        executor: ConnectorExecutor,
    ) -> None:
        self._http = http
        self._secrets = secrets
        self._connections = connections
        self._resolver = resolver
        self._executor = executor

    async def deliver(
        self, channel: ChannelRecord, payload: Mapping[str, Any], notification_id: str
    ) -> Delivery:
        try:
            secrets = await self._secrets.get(channel.workspace_id, secret_id(channel.id))
        except NotFound:
            return Delivery(False, "the channel's secrets are missing; update the channel")
        except CampaignflowError as exc:  # the store is down, a key left the ring: try later
            return Delivery(False, f"the channel's secrets cannot be read: {exc}", retryable=True)
        try:
            if channel.kind == "slack":
                body = orjson.dumps(slack_body(payload))
                return await self._post(secrets["url"], body, {}, channel.kind)
            if channel.kind == "webhook":
                body = webhook_body(payload, notification_id)
                header = signature(secrets["secret"], int(time.time()), body)
                return await self._post(
                    secrets["url"], body, {SIGNATURE_HEADER: header}, channel.kind
                )
            return await self._email(channel, secrets, payload, notification_id)
        except ActionFailed as exc:
            return Delivery(False, exc.message, _status(exc), exc.retryable, exc.retry_after_s)

    async def _post(self, url: str, body: bytes, headers: dict[str, str], kind: str) -> Delivery:
        answer = await self._http.send(
            "POST",
            url,
            headers={"Content-Type": "application/json", **headers},
            body=body,
            labels=("alerting", kind),  # the request metrics tell alerts from steps
        )
        if 200 <= answer.status < 300:
            return Delivery(True, f"HTTP {answer.status}", answer.status)
        retryable = retryable_status(answer.status)
        return Delivery(
            False,
            f"HTTP {answer.status}",
            answer.status,
            retryable,
            self._http.retry_after(answer) if retryable else None,
        )

    async def _email(
        self,
        channel: ChannelRecord,
        secrets: Mapping[str, str],
        payload: Mapping[str, Any],
        notification_id: str,
    ) -> Delivery:
        try:
            record = await self._connections.get(
                channel.workspace_id, str(channel.config.get("connectionId"))
            )
        except NotFound:
            return Delivery(False, "the channel's connection no longer exists")
        connection = await self._resolver.complete(record)
        operation = connection.connector.operations.get(EMAIL_OPERATION)
        if operation is None:
            return Delivery(False, f"{connection.connector.provider} cannot send e-mail")
        text = summary(payload)
        params = operation.params.model_validate(
            {
                "to": [r for r in secrets.get("recipients", "").split(",") if r],
                "subject": text[:200],
                "text": f"{text}\n\n{orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode()}",
            }
        )
        context = RequestContext(
            idempotency_key=notification_id,
            tracking={},
            settings=connection.settings,
            credentials=connection.credentials,
            now_unix=int(time.time()),
        )
        try:
            request = operation.request(params, context)
        except ClientError as exc:
            return Delivery(False, exc.message)
        response = await self._executor.send(connection, request)
        return Delivery(True, f"{connection.connector.provider} accepted it", response.status)


def _status(exc: ActionFailed) -> int | None:
    status = exc.details.get("status")
    return status if isinstance(status, int) else None
