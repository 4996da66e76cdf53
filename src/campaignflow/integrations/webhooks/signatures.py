"""Each provider's webhook signature scheme, verified over the raw request as received.

Pure apart from the clock, which is passed in: the receiving route hands over the exact body
bytes (never re-serialised JSON: one changed byte breaks a signature), the headers and the URL it
registered with the provider. Every check compares in constant time, and schemes that carry a
timestamp refuse one outside the replay window (five minutes, as HubSpot prescribes; SendGrid
documents none, so the same window is used). The schemes are those of
``../shared/provider-specs/NOTES.md`` §4.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from campaignflow.errors import ClientError

REPLAY_WINDOW_SECONDS = 300.0
# Percent-escapes HubSpot decodes in the URI before signing (v3).
_HUBSPOT_DECODED = (
    "%3A",
    "%2F",
    "%3F",
    "%40",
    "%21",
    "%24",
    "%27",
    "%28",
    "%29",
    "%2A",
    "%2C",
    "%3B",
)


class WebhookRejected(ClientError):
    """The webhook's signature or timestamp does not check out."""


def _within_window(sent_at: float, now: float, window: float) -> None:
    if abs(now - sent_at) > window:
        raise WebhookRejected(
            f"The webhook's timestamp is {abs(now - sent_at):.0f} s away from now; "
            f"at most {window:.0f} s is accepted (replay protection)."
        )


def _seconds(text: str, divisor: float = 1.0) -> float:
    try:
        return int(text.strip()) / divisor
    except ValueError as exc:
        raise WebhookRejected("The webhook's timestamp is not an integer.") from exc


def verify_sendgrid(
    public_key: str,
    signature: str,
    timestamp: str,
    body: bytes,
    *,
    now: float,
    window: float = REPLAY_WINDOW_SECONDS,
) -> None:
    """SendGrid's Signed Event Webhook: ECDSA P-256 / SHA-256 over ``timestamp + body``, the
    key a base64 DER SubjectPublicKeyInfo, the signature base64 DER."""
    _within_window(_seconds(timestamp), now, window)
    try:
        key = load_der_public_key(base64.b64decode(public_key, validate=True))
        raw_signature = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise WebhookRejected("The SendGrid key or signature is not valid base64 DER.") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise WebhookRejected("The SendGrid verification key is not a P-256 key.")
    try:
        key.verify(raw_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise WebhookRejected("The SendGrid signature does not match the body.") from exc


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """``base64(HMAC-SHA256(secret, method + uri + body + timestamp))``, the URI with HubSpot's
    listed percent-escapes decoded."""
    for escape in _HUBSPOT_DECODED:
        uri = uri.replace(escape, unquote(escape)).replace(escape.lower(), unquote(escape))
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_hubspot_v3(
    secret: str,
    *,
    method: str,
    uri: str,
    body: bytes,
    timestamp_ms: str,
    signature: str,
    now: float,
    window: float = REPLAY_WINDOW_SECONDS,
) -> None:
    """HubSpot's v3 request signature (``X-HubSpot-Signature-v3``); the timestamp is in ms."""
    _within_window(_seconds(timestamp_ms, 1000.0), now, window)
    expected = hubspot_v3_signature(secret, method, uri, body, timestamp_ms)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise WebhookRejected("The HubSpot signature does not match the request.")


def mandrill_signature(auth_key: str, url: str, params: Mapping[str, str]) -> str:
    """``base64(HMAC-SHA1(key, url + key1 + value1 + key2 + value2 …))``, parameters sorted by
    name, ``url`` exactly as registered with Mandrill."""
    signed = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_key.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_mandrill(auth_key: str, url: str, params: Mapping[str, str], signature: str) -> None:
    """Mailchimp Transactional's ``X-Mandrill-Signature`` over the form parameters."""
    expected = mandrill_signature(auth_key, url, params)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise WebhookRejected("The Mandrill signature does not match the request.")


def verify_basic_auth(user: str, password: str, authorization: str | None) -> None:
    """Pipedrive signs nothing: its webhooks carry HTTP Basic credentials set when the webhook
    was created. Compared in constant time, user and password together."""
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    presented = (authorization or "").strip()
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise WebhookRejected("The webhook's Basic credentials are missing or wrong.")


def verify_shared_secret(expected: str, presented: str | None) -> None:
    """Mailchimp Marketing signs nothing: the webhook URL carries a secret of ours."""
    if presented is None or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise WebhookRejected("The webhook URL's secret is missing or wrong.")
