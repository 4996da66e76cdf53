"""Our SendGrid signature check agrees with SendGrid's own helper
(``sendgrid.helpers.eventwebhook.EventWebhook``) on the published vector and on bodies signed
here, genuine or tampered with."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from sendgrid.helpers.eventwebhook import EventWebhook

from campaignflow.integrations.webhooks.signatures import WebhookRejected, verify_sendgrid
from tests.unit.integrations.test_webhook_signatures import (
    SENDGRID_BODY,
    SENDGRID_KEY,
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
)

SIGNER = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    SIGNER.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


def ours(key: str, body: str, signature: str, timestamp: str) -> bool:
    try:
        verify_sendgrid(key, signature, timestamp, body.encode(), now=float(timestamp))
    except WebhookRejected:
        return False
    return True


def theirs(key: str, body: str, signature: str, timestamp: str) -> bool:
    return bool(EventWebhook(key).verify_signature(body, signature, timestamp))


def test_both_accept_the_published_vector_and_refuse_it_without_its_line_end() -> None:
    body = SENDGRID_BODY.decode()
    for payload, expected in ((body, True), (body.rstrip("\r\n"), False)):
        args = (SENDGRID_KEY, payload, SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP)
        assert ours(*args) is theirs(*args) is expected


@settings(max_examples=50)
@given(st.text(max_size=300), st.text(max_size=5), st.booleans())
def test_both_agree_on_signed_and_tampered_bodies(body: str, change: str, tamper: bool) -> None:
    timestamp = "1700000000"
    signed = SIGNER.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))
    signature = base64.b64encode(signed).decode()
    sent = body + change if tamper else body

    assert ours(PUBLIC_KEY, sent, signature, timestamp) is theirs(
        PUBLIC_KEY, sent, signature, timestamp
    )
    assert ours(PUBLIC_KEY, body, signature, timestamp)
