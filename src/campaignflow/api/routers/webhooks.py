"""``/api/v1/webhooks/{provider}/{connection_id}``: provider webhooks in, thin translations onto
:class:`WebhookService`.

No credential of ours: the provider's signature is the authentication
(:func:`~campaignflow.api.auth.provider_signature`). Every failure to authenticate is the same
401, whatever the cause, and costs the caller's address a token of the anonymous bucket. An
accepted webhook is answered 200 as soon as its events are durable: the providers retry any
other answer.
"""

from __future__ import annotations

from enum import StrEnum
from http import HTTPStatus
from typing import Annotated, NoReturn

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request

from campaignflow.api.auth import provider_signature, refused_signature
from campaignflow.api.body import read_body
from campaignflow.api.deps import AppSettings
from campaignflow.api.problems import ProblemError
from campaignflow.api.schemas import ApiModel, problem_responses
from campaignflow.api.webhook_schemas import WebhookReceipt
from campaignflow.engine.runtime import Engine
from campaignflow.integrations.webhooks.payloads import MalformedWebhook
from campaignflow.integrations.webhooks.providers import SignedRequest
from campaignflow.security.network import parse_address
from campaignflow.security.secret_store import SecretStore
from campaignflow.services.webhooks import InvalidWebhookEvents, WebhookRefused, WebhookService
from campaignflow.store.connections import ConnectionStore
from campaignflow.store.crm_sync import SyncStore
from campaignflow.store.deliveries import DeliveryStore
from campaignflow.store.suppressions import SuppressionStore


class WebhookProvider(StrEnum):
    """The providers whose webhooks are taken (``integrations.webhooks.providers``)."""

    SENDGRID = "sendgrid"
    MAILCHIMP_TRANSACTIONAL = "mailchimp_transactional"
    MAILCHIMP_MARKETING = "mailchimp_marketing"
    HUBSPOT = "hubspot"
    PIPEDRIVE = "pipedrive"


router = APIRouter(
    prefix="/webhooks",
    tags=["webhooks"],
    responses=problem_responses(400, 401, 404, 413, 415, 422, 429, 503),
    dependencies=[provider_signature()],
)

ProviderName = Annotated[
    WebhookProvider,
    Path(description="The connection's provider, as in the URL you gave the provider."),
]
ConnectionId = Annotated[
    str, Path(max_length=64, description="The connection whose webhook this is.")
]
Secret = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Mailchimp Marketing only: the connection's `webhook_secret` (Mailchimp "
        "signs nothing, so the URL carries a secret).",
    ),
]


class UrlCheck(ApiModel):
    ok: bool = True


async def get_webhook_service(request: Request) -> WebhookService:
    service: WebhookService = request.app.state.webhooks
    return service


Webhooks = Annotated[WebhookService, Depends(get_webhook_service)]


def start_webhooks(app: FastAPI, parts: Engine, secrets: SecretStore) -> None:
    """Build the intake service (at start-up) on the engine's stores and bus, and the
    integration layer's credential store."""
    suppressions = SuppressionStore(parts.database, parts.contacts.cipher)
    app.state.suppressions = suppressions
    links = SyncStore(parts.database)

    async def record_addresses(
        workspace_id: str, connection_id: str, records: list[str]
    ) -> dict[str, str]:
        linked = await links.links_by_remote(workspace_id, connection_id, records)
        contacts = await parts.contacts.get_many(
            workspace_id, [link.contact_id for link in linked.values()]
        )
        addresses: dict[str, str] = {}
        for remote_id, link in linked.items():
            contact = contacts.get(link.contact_id)
            if contact is not None and contact.email is not None:
                addresses[remote_id] = contact.email
        return addresses

    app.state.webhooks = WebhookService(
        connections=ConnectionStore(parts.database),
        secrets=secrets,
        suppressions=suppressions,
        deliveries=DeliveryStore(parts.database),
        ingest=parts.ingest(),
        clock=parts.clock,
        record_addresses=record_addresses,
    )


@router.post("/{provider}/{connection_id}", response_model=WebhookReceipt)
async def receive_webhook(
    *,
    provider: ProviderName,
    connection_id: ConnectionId,
    request: Request,
    service: Webhooks,
    settings: AppSettings,
    secret: Secret = None,
) -> WebhookReceipt:
    """Take a provider's webhook: SendGrid's signed Event Webhook, Mailchimp Transactional's
    (`X-Mandrill-Signature`), Mailchimp Marketing's (the `secret` in the URL) or HubSpot's (v3
    signature, at most five minutes old) or Pipedrive's (the HTTP Basic credentials set on the
    webhook). Its events become `email.delivered`,
    `email.opened`, `email.clicked`, `email.bounced`, `email.dropped`, `email.deferred`,
    `email.unsubscribed`, `email.spam_reported`, `email.subscribed` (and HubSpot's
    `hubspot.<subscriptionType>`, and Pipedrive's `crm.deal.stage_changed`, for the contact the
    CRM sync linked to the deal's person) for triggers, waits and exit criteria; bounces,
    unsubscribes and spam reports feed the suppression list; the sending step's delivery status
    advances.
    A redelivered event has no second effect. Events that are not valid are listed under
    `rejected` (422 only when none is valid)."""
    scheme = service.scheme(provider.value)
    _require_media_type(request, scheme.media_type)
    body = await read_body(request, limit=settings.api.max_body_bytes)
    try:
        outcome = await service.receive(
            provider.value, connection_id, _signed(request, body, secret)
        )
    except WebhookRefused as exc:
        await _refuse(request, exc)
    except MalformedWebhook as exc:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            "malformed-webhook",
            exc.message,
            problems=[problem.to_dict() for problem in exc.problems],
        ) from exc
    except InvalidWebhookEvents as exc:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "invalid-webhook-events",
            exc.message,
            problems=[problem.to_dict() for problem in exc.problems],
        ) from exc
    return WebhookReceipt.from_outcome(outcome)


@router.get("/{provider}/{connection_id}", response_model=UrlCheck)
async def check_webhook_url(
    *,
    provider: ProviderName,
    connection_id: ConnectionId,
    request: Request,
    service: Webhooks,
    secret: Secret = None,
) -> UrlCheck:
    """The check a provider makes when the webhook is saved: Mailchimp Marketing's GET (200
    only with the right `secret`), Mailchimp Transactional's HEAD (200). Other providers check
    nothing: 404."""
    try:
        await service.check_url(provider.value, connection_id, _signed(request, b"", secret))
    except WebhookRefused as exc:
        await _refuse(request, exc)
    return UrlCheck()


@router.head("/{provider}/{connection_id}", include_in_schema=False)
async def check_webhook_url_by_head(
    *,
    provider: ProviderName,
    connection_id: ConnectionId,
    request: Request,
    service: Webhooks,
    secret: Secret = None,
) -> UrlCheck:
    """Mandrill's check is a HEAD: answered as the GET is."""
    return await check_webhook_url(
        provider=provider,
        connection_id=connection_id,
        request=request,
        service=service,
        secret=secret,
    )


async def _refuse(request: Request, exc: WebhookRefused) -> NoReturn:
    await refused_signature(request)
    raise ProblemError(HTTPStatus.UNAUTHORIZED, "webhook-unauthenticated", exc.message) from exc


def _require_media_type(request: Request, expected: str) -> None:
    given = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if given != expected:
        raise ProblemError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            f"This provider's webhooks are {expected} (got {given or 'none'}).",
            headers={"Accept-Post": expected},
        )


def _signed(request: Request, body: bytes, secret: str | None) -> SignedRequest:
    query = {"secret": secret} if secret is not None else {}
    return SignedRequest(
        method=request.method,
        url=signed_url(request),
        headers={name.lower(): value for name, value in request.headers.items()},
        query=query,
        body=body,
    )


def signed_url(request: Request) -> str:
    """The URL the provider called, which Mandrill and HubSpot sign: the request's own, with
    the scheme and host a trusted proxy reports (``X-Forwarded-Proto``/``-Host``), as a proxy
    terminating TLS in front of the API is the usual setup and the provider signed the public
    https URL it was given."""
    url = request.url
    peer = parse_address(request.client.host) if request.client else None
    trusted = request.app.state.trusted_proxies
    if peer is None or not any(peer in network for network in trusted):
        return str(url)
    proto = _first(request.headers.get("x-forwarded-proto"))
    host = _first(request.headers.get("x-forwarded-host"))
    return str(url.replace(scheme=proto or url.scheme, netloc=host or url.netloc))


def _first(value: str | None) -> str | None:
    """The first (client-facing) entry of a forwarded header."""
    return value.split(",", 1)[0].strip() or None if value else None
