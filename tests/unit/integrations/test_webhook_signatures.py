"""Webhook signatures against the providers' published vectors (NOTES.md §4): SendGrid's from
sendgrid-python's own tests, HubSpot's from hubspot-api-client's; Mandrill's scheme with a
vector computed here, as no official one exists."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.integrations.webhooks.signatures import (
    WebhookRejected,
    verify_hubspot_v3,
    verify_mandrill,
    verify_sendgrid,
    verify_shared_secret,
)

SENDGRID_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw"
    "+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SENDGRID_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15Tlu"
    "LtEZtM="
)
SENDGRID_TIMESTAMP = "1600112502"
SENDGRID_BODY = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18"
                "-5F5FC76C-9.0",
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
).encode()
SENT_AT = float(SENDGRID_TIMESTAMP)


def test_sendgrids_published_vector_verifies() -> None:
    verify_sendgrid(
        SENDGRID_KEY, SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, SENDGRID_BODY, now=SENT_AT + 60
    )


@pytest.mark.parametrize(
    ("body", "timestamp"),
    [
        (SENDGRID_BODY.rstrip(b"\r\n"), SENDGRID_TIMESTAMP),  # the body re-serialised
        (SENDGRID_BODY.replace(b"dropped", b"delivered"), SENDGRID_TIMESTAMP),
        (SENDGRID_BODY, str(int(SENDGRID_TIMESTAMP) + 1)),
    ],
)
def test_a_tampered_sendgrid_request_is_rejected(body: bytes, timestamp: str) -> None:
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_sendgrid(SENDGRID_KEY, SENDGRID_SIGNATURE, timestamp, body, now=SENT_AT)


def test_sendgrid_refuses_an_old_timestamp_and_garbage() -> None:
    with pytest.raises(WebhookRejected, match="replay"):
        verify_sendgrid(
            SENDGRID_KEY, SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, SENDGRID_BODY, now=SENT_AT + 301
        )
    with pytest.raises(WebhookRejected, match="integer"):
        verify_sendgrid(SENDGRID_KEY, SENDGRID_SIGNATURE, "timestamp", SENDGRID_BODY, now=SENT_AT)
    with pytest.raises(WebhookRejected, match="base64"):
        verify_sendgrid("not a key", SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, b"", now=SENT_AT)


@given(st.binary(max_size=200))
def test_our_own_p256_signatures_verify_and_another_keys_do_not(body: bytes) -> None:
    signer, stranger = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    public = base64.b64encode(
        signer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    signed = b"1700000000" + body
    good = base64.b64encode(signer.sign(signed, ec.ECDSA(hashes.SHA256()))).decode()
    bad = base64.b64encode(stranger.sign(signed, ec.ECDSA(hashes.SHA256()))).decode()
    verify_sendgrid(public, good, "1700000000", body, now=1_700_000_000)
    with pytest.raises(WebhookRejected):
        verify_sendgrid(public, bad, "1700000000", body, now=1_700_000_000)


HUBSPOT_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HUBSPOT_BODY = b"{'example_field':'example_value'}"
HUBSPOT_URI = "https://www.example.com/webhook_uri"


def _hubspot(body: bytes, now: float) -> None:
    verify_hubspot_v3(
        HUBSPOT_SECRET,
        method="POST",
        uri=HUBSPOT_URI,
        body=body,
        timestamp_ms="15000000",
        signature="HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
        now=now,
    )


def test_hubspots_published_v3_vector_verifies_and_a_change_does_not() -> None:
    _hubspot(HUBSPOT_BODY, now=15000)
    with pytest.raises(WebhookRejected, match="does not match"):
        _hubspot(HUBSPOT_BODY + b" ", now=15000)
    with pytest.raises(WebhookRejected, match="replay"):
        _hubspot(HUBSPOT_BODY, now=16000)


def test_mandrills_scheme_signs_the_url_and_the_sorted_parameters() -> None:
    url = "https://hooks.example.com/api/v1/webhooks/mandrill/c1"
    params = {"mandrill_events": '[{"event":"open"}]', "a_first": "1"}
    signed = url + "a_first1" + 'mandrill_events[{"event":"open"}]'
    signature = base64.b64encode(hmac.new(b"auth-key", signed.encode(), hashlib.sha1).digest())
    verify_mandrill("auth-key", url, params, signature.decode())
    with pytest.raises(WebhookRejected):
        verify_mandrill("auth-key", url + "/", params, signature.decode())
    with pytest.raises(WebhookRejected):
        verify_mandrill("other-key", url, params, signature.decode())


def test_a_shared_secret_must_be_present_and_equal() -> None:
    verify_shared_secret("s3cret", "s3cret")
    for presented in (None, "", "s3cret2"):
        with pytest.raises(WebhookRejected):
            verify_shared_secret("s3cret", presented)
