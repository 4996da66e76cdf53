"""AWS SigV4 signing: AWS's published test-suite vectors, botocore's ``SigV4Auth`` as an oracle
over generated requests, and how ``prepare()`` applies the scheme."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from unittest import mock
from urllib.parse import quote

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignflow.integrations.connector import (
    AwsSigV4Auth,
    ConnectionSettings,
    Connector,
    OutboundRequest,
    RateLimits,
    operations,
)
from campaignflow.integrations.prepare import MissingCredential, prepare
from campaignflow.integrations.sigv4 import (
    AwsCredentials,
    canonical_path,
    canonical_query,
    signed_headers,
)

# The credentials, region, service and time of AWS's SigV4 test suite (awslabs/aws-c-auth,
# tests/aws-signing-test-suite/v4/*/context.json).
SUITE = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TOKEN = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
SUITE_TIME = calendar.timegm((2015, 8, 30, 12, 36, 0))
HOST = "https://example.amazonaws.com"
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _suite_sign(method: str, url: str, headers: dict[str, str], token: str | None = None) -> str:
    credentials = AwsCredentials(SUITE.access_key_id, SUITE.secret_access_key, token)
    signed = signed_headers(method, url, headers, None, credentials=credentials,
                            region="us-east-1", service="service", now_unix=SUITE_TIME)  # fmt: skip
    assert signed["X-Amz-Date"] == "20150830T123600Z"
    return signed["Authorization"]


# (test-suite case, method, URL, extra headers, signed headers, signature) from each case's
# header-signed-request.txt.
VECTORS = [
    ("get-vanilla", "GET", HOST + "/", {}, "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-key-case", "GET", HOST + "/?Param2=value2&Param1=value1", {},
     "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("post-vanilla", "POST", HOST + "/", {}, "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("post-header-key-sort", "POST", HOST + "/", {"My-Header1": "value1"},
     "host;my-header1;x-amz-date",
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
    ("get-utf8", "GET", HOST + "/ሴ", {}, "host;x-amz-date",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("get-vanilla-utf8-query", "GET", HOST + "/?ሴ=bar", {}, "host;x-amz-date",
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
    ("get-unreserved", "GET", HOST + "/" + UNRESERVED, {}, "host;x-amz-date",
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
    ("get-vanilla-query-unreserved", "GET", f"{HOST}/?{UNRESERVED}={UNRESERVED}", {},
     "host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
]  # fmt: skip


@pytest.mark.parametrize("vector", VECTORS, ids=[v[0] for v in VECTORS])
def test_the_published_test_suite_vectors(
    vector: tuple[str, str, str, dict[str, str], str, str],
) -> None:
    case, method, url, headers, signed, signature = vector
    assert _suite_sign(method, url, headers) == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    ), case


def test_temporary_credentials_sign_their_session_token() -> None:
    """Test-suite case get-vanilla-with-session-token."""
    credentials = AwsCredentials(SUITE.access_key_id, SUITE.secret_access_key, SUITE_TOKEN)
    signed = signed_headers("GET", HOST + "/", {}, None, credentials=credentials,
                            region="us-east-1", service="service", now_unix=SUITE_TIME)  # fmt: skip
    assert signed["X-Amz-Security-Token"] == SUITE_TOKEN
    assert signed["Authorization"].endswith(
        "SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
    )


def test_a_stale_signature_is_replaced_and_the_user_agent_is_not_signed() -> None:
    """A retried request is signed afresh, and a proxy rewriting User-Agent must not break
    the signature (the suite's get-vanilla with both headers added)."""
    headers = {"Authorization": "AWS4-HMAC-SHA256 stale", "X-Amz-Date": "20000101T000000Z",
               "User-Agent": "campaignflow/1"}  # fmt: skip
    assert _suite_sign("GET", HOST + "/", headers) == _suite_sign("GET", HOST + "/", {})


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        ("/a/./b/../c", "/a/c"),
        ("//a//b/", "/a/b/"),
        ("/a b", "/a%20b"),
        ("/%E1%88%B4", "/%25E1%2588%25B4"),  # an encoded path is encoded again, as AWS does
    ],
)
def test_canonical_paths(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical


def test_canonical_query_encodes_spaces_and_sorts_by_name_then_value() -> None:
    assert canonical_query("b=2&a=y&a=x&c=a b&d") == "a=x&a=y&b=2&c=a%20b&d="


# -------------------------------------------------------------------------- botocore as oracle

_token_chars = "abcdefghijklmnopqrstuvwxyz0123456789-"
header_names = st.text(_token_chars, min_size=1, max_size=12).filter(
    lambda name: name[0] != "-" and name not in {"host", "authorization", "x-amz-date",
                                                  "x-amz-security-token", "x-amz-content-sha256",
                                                  "user-agent", "expect", "transfer-encoding",
                                                  "connection", "keep-alive", "te", "trailer",
                                                  "upgrade", "baggage", "traceparent",
                                                  "tracestate", "x-amzn-trace-id",
                                                  "proxy-authenticate", "proxy-authorization"}
)  # fmt: skip
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
segments = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                   max_size=8).filter(lambda s: s not in {".", ".."})  # fmt: skip
query_parts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    port = draw(st.sampled_from(["", ":443", ":8443"]))
    path = "/" + "/".join(quote(s, safe="") for s in draw(st.lists(segments, max_size=4)))
    path += draw(st.sampled_from(["", "/", "//", "/./"]))
    pairs = draw(st.lists(st.tuples(query_parts, query_parts), max_size=4))
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)
    url = f"https://email.eu-west-1.amazonaws.com{port}{path}" + (f"?{query}" if query else "")
    names = draw(st.lists(header_names, max_size=4, unique=True))
    headers = {name.title(): draw(header_values) for name in names}
    return method, url, headers, draw(st.binary(max_size=64))


@settings(max_examples=150, deadline=None)
@given(
    request=requests(),
    token=st.none() | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+=", min_size=16, max_size=40),
    now=st.integers(min_value=946_684_800, max_value=4_102_444_800),
    region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"]),
)
def test_signatures_match_botocore(
    request: tuple[str, str, dict[str, str], bytes], token: str | None, now: int, region: str
) -> None:
    method, url, headers, body = request
    keys = AwsCredentials(SUITE.access_key_id, SUITE.secret_access_key, token)
    ours = signed_headers(method, url, headers, body, credentials=keys, region=region,
                          service="ses", now_unix=now)  # fmt: skip
    assert ours["Authorization"] == _botocore_authorization(request, keys, now, region)


def _botocore_authorization(
    request: tuple[str, str, dict[str, str], bytes], keys: AwsCredentials, now: int, region: str
) -> str:
    """What botocore signs for the same request, keys, time and region (service ``ses``)."""
    method, url, headers, body = request
    aws_request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    credentials = Credentials(keys.access_key_id, keys.secret_access_key, keys.session_token)
    moment = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        SigV4Auth(credentials, "ses", region).add_auth(aws_request)
    return str(aws_request.headers["Authorization"])


# ------------------------------------------------------------------------------ via prepare()


class RegionSettings(ConnectionSettings):
    region: str | None = None


SIGNED = Connector(
    provider="aws_test",
    title="AWS test",
    category="generic",
    description="A SigV4-signed connector for these tests.",
    base_url="https://email.eu-west-1.amazonaws.com",
    auth=AwsSigV4Auth(service="ses"),
    operations=operations(),
    rate_limits=RateLimits(60, 1),
    settings=RegionSettings,
)
KEYS = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG"}
POST = OutboundRequest("POST", "/v2/email/outbound-emails", json={"Content": {}})


def _prepare(
    credentials: dict[str, str], region: str | None = "eu-west-1", now_unix: int | None = SUITE_TIME
) -> dict[str, str]:
    prepared = prepare(SIGNED, POST, base_url=SIGNED.base_url, credentials=credentials,
                       idempotency_key="i-1", settings=RegionSettings(region=region),
                       now_unix=now_unix)  # fmt: skip
    return prepared.headers


def test_prepare_signs_the_final_request_for_the_connections_region() -> None:
    headers = _prepare(KEYS)
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20150830/eu-west-1/ses/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date, Signature="
    )
    assert "X-Amz-Security-Token" not in headers
    unsigned = {k: v for k, v in headers.items() if k not in {"Authorization", "X-Amz-Date"}}
    request = ("POST", SIGNED.base_url + POST.path, unsigned, b'{"Content":{}}')
    keys = AwsCredentials(KEYS["access_key_id"], KEYS["secret_access_key"])
    assert headers["Authorization"] == _botocore_authorization(request, keys, SUITE_TIME,
                                                               "eu-west-1")  # fmt: skip


def test_prepare_sends_the_session_token_of_temporary_credentials() -> None:
    headers = _prepare({**KEYS, "session_token": "FQoGZXIvYXdzEXAMPLE"})
    assert headers["X-Amz-Security-Token"] == "FQoGZXIvYXdzEXAMPLE"
    assert "x-amz-security-token" in headers["Authorization"]


@pytest.mark.parametrize(
    ("credentials", "region", "named"),
    [
        ({"secret_access_key": "s"}, "eu-west-1", "'access_key_id'"),
        ({"access_key_id": "AKIAIOSFODNN7EXAMPLE"}, "eu-west-1", "'secret_access_key'"),
        (KEYS, None, "'region' setting"),
    ],
)
def test_what_a_signature_needs_is_named_when_missing(
    credentials: dict[str, str], region: str | None, named: str
) -> None:
    with pytest.raises(MissingCredential, match=named):
        _prepare(credentials, region)


def test_signing_without_the_time_of_sending_is_a_callers_bug() -> None:
    with pytest.raises(ValueError, match="now_unix"):
        _prepare(KEYS, now_unix=None)
