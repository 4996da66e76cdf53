"""The alert evaluator: every ``interval``, each rule of each workspace is evaluated and the
notification outbox drained. Run by the ``worker`` role and by ``up``.

Any number of processes may run it at once. A rule's state change is a compare-and-set on its
revision, written with its incident and outbox rows in one transaction (``store/alerts.py``),
so two evaluators that saw the same state notify once; a notification is claimed before it is
sent, so two drains send it once (at least once if a sender dies mid-send).

Delivery retries a failed notification with the platform's retry arithmetic
(``domain/retry.py``, exponential with jitter; a receiver's ``Retry-After`` is honoured) when
the failure may pass (transport errors, 429, 5xx), up to :data:`DELIVERY_POLICY`'s budget; a
4xx fails it at once. Each notification is its own attempt: a failing channel delays no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from campaignflow.domain.alerting import AlertRule, Notify, decide, validate_rule
from campaignflow.domain.policies import ErrorHandling
from campaignflow.domain.retry import retry_delay
from campaignflow.errors import CampaignflowError, NotFound
from campaignflow.observability.alert_channels import AlertSender, Delivery
from campaignflow.store.alert_metrics import AlertMetrics
from campaignflow.store.alerts import AlertStore, Evaluation, NotificationRecord, RuleRecord
from campaignflow.store.database import Database
from campaignflow.store.workflows import utc_now

if TYPE_CHECKING:
    from campaignflow.config import AlertingSettings
    from campaignflow.integrations.runtime import Integrations

logger = logging.getLogger(__name__)

DELIVERY_POLICY = ErrorHandling.model_validate(
    {
        "retryPolicy": "exponential",
        "maxRetries": 6,
        "initialInterval": "PT5S",
        "maxInterval": "PT10M",
    }
)
CLAIM_LEASE = timedelta(minutes=2)  # longer than any one send (the HTTP timeout)
DRAIN_BATCH = 100


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    evaluated: int
    notifications_queued: int
    sent: int
    failed: int


class AlertEvaluator:
    """One round (:meth:`run_once`) or rounds on an interval; ``now`` is injectable."""

    def __init__(
        self,
        store: AlertStore,
        metrics: AlertMetrics,
        sender: AlertSender,
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._sender = sender
        self._now = now

    @property
    def sender(self) -> AlertSender:
        return self._sender

    @property
    def metrics(self) -> AlertMetrics:
        return self._metrics

    async def run_once(self) -> RoundOutcome:
        evaluated = queued = 0
        for workspace_id in await self._store.workspaces_with_rules():
            for record in await self._store.rules_to_evaluate(workspace_id):
                evaluated += 1
                queued += await self._evaluate(record)
        sent, failed = await self.drain()
        return RoundOutcome(evaluated, queued, sent, failed)

    async def run_until_cancelled(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.run_once()
            except CampaignflowError:
                logger.warning(
                    "alert evaluation failed; next round in %gs", interval_seconds, exc_info=True
                )
            await asyncio.sleep(interval_seconds)

    async def _evaluate(self, record: RuleRecord) -> int:
        """Evaluate one rule; the notifications it queued (0 if another evaluator won)."""
        rule, problems = validate_rule(record.definition)
        if rule is None:  # stored rules are valid; one that no longer is, is skipped loudly
            logger.error("alert rule %s is invalid: %s", record.id, problems[:3])
            return 0
        now = self._now()
        value = await self._metrics.value(record.workspace_id, rule, now) if rule.enabled else None
        transition = decide(rule, record.rule_state(), value, now)
        notify = transition.notify
        payload = _payload(record, rule, value, now, notify)
        evaluation = Evaluation(transition, value, now, rule.channels, payload)
        written = await self._store.apply(record, evaluation)
        return len(rule.channels) if written and notify is not None else 0

    async def drain(self) -> tuple[int, int]:
        """Send every due notification once; (sent, failed for good)."""
        sent = failed = 0
        now = self._now()
        for notification in await self._store.due_notifications(now, DRAIN_BATCH):
            if not await self._store.claim(notification, now + CLAIM_LEASE):
                continue  # another process has it
            outcome = await self._attempt(notification)
            status = await self._record(notification, outcome, now)
            sent += status == "sent"
            failed += status == "failed"
        return sent, failed

    async def _attempt(self, notification: NotificationRecord) -> Delivery:
        try:
            channel = await self._store.get_channel(
                notification.workspace_id, notification.channel_id
            )
        except NotFound:
            return Delivery(False, "the channel was deleted")
        return await self._sender.deliver(channel, notification.payload, notification.id)

    async def _record(
        self, notification: NotificationRecord, outcome: Delivery, now: datetime
    ) -> str:
        if outcome.ok:
            await self._store.finish(notification, status="sent", now=now)
            return "sent"
        attempt = notification.attempts + 1
        wait = (
            retry_delay(
                DELIVERY_POLICY,
                attempt,
                seed=notification.id,
                retry_after_s=outcome.retry_after_s,
            )
            if outcome.retryable
            else None
        )
        if wait is None:
            logger.warning(
                "alert notification %s to channel %s failed: %s",
                notification.id,
                notification.channel_id,
                outcome.message,
            )
            await self._store.finish(notification, status="failed", now=now, error=outcome.message)
            return "failed"
        await self._store.finish(
            notification, status="pending", now=now, error=outcome.message, retry_at=now + wait
        )
        return "pending"


def _payload(
    record: RuleRecord, rule: AlertRule, value: float | None, now: datetime, notify: Notify | None
) -> Mapping[str, Any]:
    """What every channel is told (no contact data: counts and the rule only)."""
    kind = notify.kind if notify is not None else ""
    state = record.rule_state()
    started = state.since if state.status == "firing" else now
    return {
        "kind": kind,
        "sequence": notify.sequence if notify is not None else 0,
        "workspaceId": record.workspace_id,
        "ruleId": record.id,
        "ruleName": rule.name,
        "metric": rule.metric,
        "filters": dict(rule.document.get("filters") or {}),
        "comparator": rule.comparator,
        "threshold": rule.threshold,
        "value": value,
        "window": rule.document.get("window"),
        "severity": rule.severity,
        "startedAt": started.isoformat() if started else now.isoformat(),
        "resolvedAt": now.isoformat() if kind == "resolve" else None,
        "at": now.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class AlertingLoop:
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def alert_sender(integrations: Integrations) -> AlertSender:
    """Notifications sent through the process's integration layer (its HTTP client, secrets,
    connections): what the evaluator and the API's channel test both send with."""
    return AlertSender(
        integrations.http,
        integrations.secrets,
        integrations.connections,
        integrations.resolver,
        integrations.executor,
    )


def open_evaluator(
    database: Database, integrations: Integrations, now: Callable[[], datetime] = utc_now
) -> AlertEvaluator:
    """The evaluator on ``database``, sending through the process's integration layer."""
    return AlertEvaluator(
        AlertStore(database), AlertMetrics(database), alert_sender(integrations), now
    )


def start_alerting(
    database: Database, settings: AlertingSettings, integrations: Integrations
) -> AlertingLoop | None:
    """Run the evaluator in this process (``worker``, and ``up``'s embedded worker), unless
    switched off; its first round runs at once."""
    if not settings.enabled:
        return None
    evaluator = open_evaluator(database, integrations)
    task = asyncio.create_task(
        evaluator.run_until_cancelled(settings.interval_seconds), name="alerting"
    )
    return AlertingLoop(task)


async def stop_alerting(loop: AlertingLoop | None) -> None:
    if loop is not None:
        await loop.stop()
