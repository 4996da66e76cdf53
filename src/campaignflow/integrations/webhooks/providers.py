"""Each provider's inbound webhook, as one value: the body it posts, how its request is
authenticated, how its payload is read.

The intake service looks the provider up by the name in the URL (the connection's provider),
checks the media type, authenticates the request with :attr:`WebhookScheme.verify` (given the
connection's settings, its credentials from the secret store and the time) and only then reads
the body with :attr:`WebhookScheme.parse`. Verification and parsing are pure; the credential
names are those the provider connectors declare (``webhook_key``, ``webhook_secret``,
``client_secret``; SendGrid's public key is a setting, ``webhookPublicKey``, as it is no
secret).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from campaignflow.integrations.webhooks import hubspot, mailchimp, mandrill, pipedrive, sendgrid
from campaignflow.integrations.webhooks.payloads import MalformedWebhook, ParsedWebhook, decode_form
from campaignflow.integrations.webhooks.signatures import (
    WebhookRejected,
    verify_basic_auth,
    verify_hubspot_v3,
    verify_mandrill,
    verify_sendgrid,
    verify_shared_secret,
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A webhook request as received: ``url`` is the one the provider called (and signs),
    ``headers`` have lower-case names, ``body`` is the exact bytes."""

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


Verify = Callable[[SignedRequest, Mapping[str, Any], Mapping[str, str], float], None]


@dataclass(frozen=True, slots=True)
class WebhookScheme:
    provider: str
    media_type: str
    verify: Verify  # (request, connection settings, credentials, now) → raises WebhookRejected
    parse: Callable[[bytes], ParsedWebhook]
    uses_credentials: bool = True
    # How a GET (or HEAD) of the URL is answered: the providers check a URL when a webhook is
    # saved. Mailchimp's GET carries the URL's secret ("verified": 200 only if it matches);
    # Mandrill's HEAD carries nothing ("open": 200 for any connection id, so it reveals none).
    url_check: Literal["verified", "open"] | None = None


def _required(values: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = values.get(name)
        if isinstance(value, str) and value:
            return value
    raise WebhookRejected(f"The connection has no {names[0]} to verify webhooks with.")


def _header(request: SignedRequest, name: str) -> str:
    value = request.headers.get(name)
    if not value:
        raise WebhookRejected(f"The {name} header is missing.")
    return value


def _verify_sendgrid(
    request: SignedRequest, settings: Mapping[str, Any], _: Mapping[str, str], now: float
) -> None:
    verify_sendgrid(
        _required(settings, "webhookPublicKey", "webhook_public_key"),
        _header(request, "x-twilio-email-event-webhook-signature"),
        _header(request, "x-twilio-email-event-webhook-timestamp"),
        request.body,
        now=now,
    )


def _verify_mandrill(
    request: SignedRequest, _: Mapping[str, Any], credentials: Mapping[str, str], __: float
) -> None:
    try:
        params = decode_form(request.body)
    except MalformedWebhook as exc:  # unsigned garbage: say no more than for a bad signature
        raise WebhookRejected("The body is not a form, so its signature cannot match.") from exc
    verify_mandrill(
        _required(credentials, "webhook_key"),
        request.url,
        params,
        _header(request, "x-mandrill-signature"),
    )


def _verify_mailchimp(
    request: SignedRequest, _: Mapping[str, Any], credentials: Mapping[str, str], __: float
) -> None:
    verify_shared_secret(_required(credentials, "webhook_secret"), request.query.get("secret"))


def _verify_hubspot(
    request: SignedRequest, _: Mapping[str, Any], credentials: Mapping[str, str], now: float
) -> None:
    verify_hubspot_v3(
        _required(credentials, "client_secret"),
        method=request.method,
        uri=request.url,
        body=request.body,
        timestamp_ms=_header(request, "x-hubspot-request-timestamp"),
        signature=_header(request, "x-hubspot-signature-v3"),
        now=now,
    )


def _verify_pipedrive(
    request: SignedRequest, _: Mapping[str, Any], credentials: Mapping[str, str], __: float
) -> None:
    verify_basic_auth(
        _required(credentials, "webhook_user"),
        _required(credentials, "webhook_password"),
        request.headers.get("authorization"),
    )


SCHEMES: Mapping[str, WebhookScheme] = {
    scheme.provider: scheme
    for scheme in (
        WebhookScheme(
            sendgrid.PROVIDER, JSON, _verify_sendgrid, sendgrid.parse, uses_credentials=False
        ),
        WebhookScheme(mandrill.PROVIDER, FORM, _verify_mandrill, mandrill.parse, url_check="open"),
        WebhookScheme(
            mailchimp.PROVIDER, FORM, _verify_mailchimp, mailchimp.parse, url_check="verified"
        ),
        WebhookScheme(hubspot.PROVIDER, JSON, _verify_hubspot, hubspot.parse),
        WebhookScheme(pipedrive.PROVIDER, JSON, _verify_pipedrive, pipedrive.parse),
    )
}
PROVIDERS = tuple(SCHEMES)
