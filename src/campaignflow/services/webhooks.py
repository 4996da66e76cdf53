"""Inbound provider webhooks as a use case: authenticate, read, act, acknowledge.

``POST /api/v1/webhooks/{provider}/{connection_id}`` carries no credential of ours: the
provider's signature (or, for Mailchimp Marketing, the URL's secret) is the authentication,
checked against the connection named in the URL (connection ids are global: the URL carries no
workspace). Every way that can fail — no such connection, another provider's connection, no key
to check with, a wrong signature, a stale timestamp — is the same :class:`WebhookRefused` to the
caller, so the answer does not tell a guessed connection id from a bad signature; the precise
reason goes to the log.

An accepted webhook's events, in this order, each step idempotent so that a redelivery (the
providers retry anything but a 2xx) has no second effect:

1. addresses that bounced hard, unsubscribed or complained go on the suppression list (first
   entry wins);
2. the delivery status of the messages they concern advances (highest status wins);
3. they are published to the bus as ``email.*`` events (messageId ``<provider>:<event id>``:
   the event log drops a redelivered one) and reach triggers, waits and exit criteria like any
   ingested event.

The suppression comes first because it is what must not be lost: a failure after it makes the
provider retry, and the retry finds the work done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import structlog

from campaignflow.domain.problems import Problem
from campaignflow.engine.clock import Clock
from campaignflow.errors import ClientError, NotFound
from campaignflow.integrations.webhooks.events import (
    WebhookEvent,
    bus_event,
    delivery_entry,
    suppression_reason,
)
from campaignflow.integrations.webhooks.payloads import MalformedWebhook
from campaignflow.integrations.webhooks.providers import SCHEMES, SignedRequest, WebhookScheme
from campaignflow.integrations.webhooks.signatures import WebhookRejected
from campaignflow.security.secret_store import SecretStore
from campaignflow.services.ingest import IngestService
from campaignflow.store.connections import ConnectionRecord, ConnectionStore, credential_id
from campaignflow.store.deliveries import DeliveryStore, DeliveryUpdate
from campaignflow.store.suppressions import NewSuppression, SuppressionStore

logger = structlog.get_logger(__name__)


class WebhookRefused(ClientError):
    """The webhook could not be authenticated."""


class InvalidWebhookEvents(ClientError):
    """No event of the webhook is valid."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"No event of the webhook is valid; {len(self.problems)} problem(s).")


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    accepted: int  # events published to the bus
    ignored: int  # events of types that mean nothing here
    rejected: list[dict[str, object]]  # per refused event: its index and its problems
    suppressed: int  # addresses this webhook added to the suppression list
    deliveries: int  # delivery rows it advanced


RecordAddresses = Callable[[str, str, list[str]], Awaitable[dict[str, str]]]
"""(workspace, connection id, CRM record ids) → the address of each record's linked contact."""


@dataclass(frozen=True, slots=True)
class WebhookService:
    connections: ConnectionStore
    secrets: SecretStore
    suppressions: SuppressionStore
    deliveries: DeliveryStore
    ingest: IngestService
    clock: Clock
    record_addresses: RecordAddresses | None = None

    @staticmethod
    def scheme(provider: str) -> WebhookScheme:
        """The provider's scheme; :class:`NotFound` for a provider without webhooks (the
        provider list is public: saying so reveals nothing about connections)."""
        scheme = SCHEMES.get(provider)
        if scheme is None:
            raise NotFound(f"There are no webhooks for the provider {provider!r}.")
        return scheme

    async def check_url(self, provider: str, connection_id: str, request: SignedRequest) -> None:
        """A provider checking the URL before it saves the webhook (see ``url_check``)."""
        scheme = self.scheme(provider)
        if scheme.url_check == "verified":
            await self._authenticate(scheme, connection_id, request)
        elif scheme.url_check is None:
            raise NotFound(f"{provider} does not check webhook URLs; nothing is served here.")

    async def receive(
        self, provider: str, connection_id: str, request: SignedRequest
    ) -> WebhookOutcome:
        """Authenticate the webhook, then act on its events (see the module doc)."""
        scheme = self.scheme(provider)
        connection = await self._authenticate(scheme, connection_id, request)
        parsed = scheme.parse(request.body)
        rejected = _rejected(parsed.problems, parsed.rejected)
        if rejected and not parsed.events:
            raise InvalidWebhookEvents(parsed.problems)
        workspace = connection.workspace_id
        events = await self._of_linked_records(connection, parsed.events)
        ignored = parsed.ignored + len(parsed.events) - len(events)
        suppressed = await self._suppress(connection, events)
        updates = _delivery_updates(workspace, events)
        advanced = await self.deliveries.apply(workspace, updates)
        now = self.clock.now()
        await self.ingest.accept(
            [
                bus_event(
                    event, workspace_id=workspace, connection_id=connection.id, received_at=now
                )
                for event in events
            ],
            source="webhook",
        )
        return WebhookOutcome(len(events), ignored, rejected, suppressed, advanced)

    async def _of_linked_records(
        self, connection: ConnectionRecord, events: list[WebhookEvent]
    ) -> list[WebhookEvent]:
        """Events about a CRM record (``crm_record``) addressed to the contact the sync linked
        to it; those of a record linked to none are dropped (they concern nobody we know)."""
        records = sorted({e.crm_record for e in events if e.crm_record is not None})
        if not records:
            return events
        addresses: dict[str, str] = {}
        if self.record_addresses is not None:
            addresses = await self.record_addresses(connection.workspace_id, connection.id, records)
        kept: list[WebhookEvent] = []
        for event in events:
            if event.crm_record is None:
                kept.append(event)
            elif event.crm_record in addresses:
                kept.append(replace(event, email=addresses[event.crm_record]))
        return kept

    async def _authenticate(
        self, scheme: WebhookScheme, connection_id: str, request: SignedRequest
    ) -> ConnectionRecord:
        connection: ConnectionRecord | None = None
        try:
            connection = await self.connections.find(connection_id)
            if connection.provider != scheme.provider:
                raise WebhookRejected(f"The connection is a {connection.provider} connection.")
            credentials: dict[str, str] = {}
            if scheme.uses_credentials:
                credentials = await self.secrets.get(
                    connection.workspace_id, credential_id(connection.id)
                )
            scheme.verify(request, connection.settings, credentials, self.clock.now().timestamp())
        except (NotFound, WebhookRejected, MalformedWebhook) as exc:
            logger.warning(
                "webhook.refused",
                provider=scheme.provider,
                connection_id=connection_id,
                workspace_id=connection.workspace_id if connection else None,
                reason=exc.message,
            )
            raise WebhookRefused() from exc
        return connection

    async def _suppress(self, connection: ConnectionRecord, events: list[WebhookEvent]) -> int:
        entries = [
            NewSuppression(
                email=event.email,
                reason=reason,
                source=connection.provider,
                connection_id=connection.id,
                provider_event_id=event.event_id,
            )
            for event in events
            if event.email is not None and (reason := suppression_reason(event)) is not None
        ]
        return len(await self.suppressions.add(connection.workspace_id, entries))


def _delivery_updates(workspace_id: str, events: list[WebhookEvent]) -> list[DeliveryUpdate]:
    """What the events say about messages; tracking that names another workspace is not
    followed (its send id means nothing here)."""
    updates = []
    for event in events:
        entry = delivery_entry(event)
        tracking = event.tracking.for_workspace(workspace_id) if event.tracking else None
        if entry is not None:
            updates.append(
                DeliveryUpdate(
                    provider=event.provider,
                    entry=entry,
                    send_id=tracking.send_id if tracking else None,
                    provider_message_id=event.message_id,
                )
            )
    return updates


def _rejected(problems: list[Problem], indexes: list[int]) -> list[dict[str, object]]:
    """Per refused event: its index in the body and its problems (pointers from the root)."""
    by_index: dict[int, list[dict[str, object]]] = {index: [] for index in indexes}
    for problem in problems:
        position = next((part for part in problem.path if isinstance(part, int)), 0)
        by_index.setdefault(position, []).append(problem.to_dict())
    return [{"index": index, "errors": errors} for index, errors in by_index.items()]
