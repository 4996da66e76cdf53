"""``prepare``: auth, URL, idempotency header and body encoding of an operation's request."""

from __future__ import annotations

import base64
from types import MappingProxyType
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.integrations.connector import (
    ApiKeyAuth,
    AuthScheme,
    BasicAuth,
    BearerAuth,
    Connector,
    NoAuth,
    OAuth2ClientCredentials,
    OutboundRequest,
    RateLimits,
)
from campaignflow.integrations.prepare import MissingCredential, prepare

BASE = "https://api.example.com/v1"


def connector(auth: AuthScheme, idempotency_header: str | None = None) -> Connector:
    return Connector(
        provider="acme",
        title="Acme",
        category="generic",
        description="A test declaration.",
        base_url=BASE,
        auth=auth,
        operations=MappingProxyType({}),
        rate_limits=RateLimits(60, 5),
        idempotency_header=idempotency_header,
    )


POST = OutboundRequest(method="post", path="/things", json={"name": "x"})


def test_bearer_basic_and_header_keys_go_in_their_headers() -> None:
    bearer = prepare(connector(BearerAuth()), POST, base_url=BASE, credentials={"token": "t0k"},
                     idempotency_key=None)  # fmt: skip
    assert bearer.headers["Authorization"] == "Bearer t0k"
    assert bearer.method == "POST"
    assert bearer.url == f"{BASE}/things"

    basic = prepare(
        connector(BasicAuth(fixed_username="any", password_credential="api_key")),
        POST,
        base_url=BASE,
        credentials={"api_key": "k-us6"},
        idempotency_key=None,
    )
    assert basic.headers["Authorization"] == "Basic " + base64.b64encode(b"any:k-us6").decode()

    header = prepare(
        connector(ApiKeyAuth("header", "X-Api-Key", prefix="Key ")),
        POST,
        base_url=BASE,
        credentials={"api_key": "s3"},
        idempotency_key=None,
    )
    assert header.headers["X-Api-Key"] == "Key s3"
    assert "Authorization" not in header.headers


def test_a_body_key_is_put_first_into_the_json_object_and_a_query_key_into_the_url() -> None:
    body = prepare(connector(ApiKeyAuth("body", "key")), POST, base_url=BASE,
                   credentials={"api_key": "m4"}, idempotency_key=None)  # fmt: skip
    assert body.body is not None
    assert orjson.loads(body.body) == {"key": "m4", "name": "x"}
    assert body.headers["Content-Type"] == "application/json"

    request = OutboundRequest(method="GET", path="/things", query={"page": "2"})
    query = prepare(connector(ApiKeyAuth("query", "api_key")), request, base_url=BASE,
                    credentials={"api_key": "q 1&"}, idempotency_key=None)  # fmt: skip
    assert dict(parse_qsl(urlsplit(query.url).query)) == {"api_key": "q 1&", "page": "2"}
    assert query.body is None


def test_missing_credentials_are_named_before_anything_is_built() -> None:
    with pytest.raises(MissingCredential, match="'token'"):
        prepare(connector(BearerAuth()), POST, base_url=BASE, credentials={},
                idempotency_key=None)  # fmt: skip
    with pytest.raises(MissingCredential, match="access token"):
        prepare(connector(OAuth2ClientCredentials("https://idp/token")), POST, base_url=BASE,
                credentials={}, idempotency_key=None)  # fmt: skip
    array_body = OutboundRequest(method="POST", path="/x", json=[1, 2])
    with pytest.raises(MissingCredential, match="not an object"):
        prepare(connector(ApiKeyAuth("body", "key")), array_body, base_url=BASE,
                credentials={"api_key": "k"}, idempotency_key=None)  # fmt: skip


def test_oauth_sends_the_access_token_and_the_idempotency_key_its_header() -> None:
    prepared = prepare(
        connector(OAuth2ClientCredentials("https://idp/token"), idempotency_header="Idem-Key"),
        POST,
        base_url=BASE,
        credentials={"client_id": "c", "client_secret": "s"},
        idempotency_key="abc123",
        access_token="at-1",
    )
    assert prepared.headers["Authorization"] == "Bearer at-1"
    assert prepared.headers["Idem-Key"] == "abc123"
    assert "s" not in prepared.headers.values()


def test_an_absolute_url_wins_over_the_base_and_forms_are_encoded() -> None:
    request = OutboundRequest(method="POST", url="https://hooks.example.com/T/B/x?v=1",
                              form={"a": "1 2", "b": "é"})  # fmt: skip
    prepared = prepare(connector(NoAuth()), request, base_url=BASE, credentials={},
                       idempotency_key=None)  # fmt: skip
    assert prepared.url == "https://hooks.example.com/T/B/x?v=1"
    assert prepared.body == b"a=1+2&b=%C3%A9"
    assert prepared.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert prepared.host == "hooks.example.com"


def test_host_never_includes_user_info() -> None:
    request = OutboundRequest(method="GET", url="https://user:pw@api.example.com:8443/x")
    prepared = prepare(connector(NoAuth()), request, base_url=BASE, credentials={},
                       idempotency_key=None)  # fmt: skip
    assert prepared.host == "api.example.com:8443"


@given(
    key=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    name=st.text(min_size=0, max_size=20),
)
def test_an_operation_header_never_replaces_the_credential_silently_unless_it_names_it(
    key: str, name: str
) -> None:
    """The operation's own headers are applied last (it may set a Content-Type), but the
    credential's header is only replaced when the operation names that very header."""
    request = OutboundRequest(method="POST", path="/x", headers={"X-Other": name}, json={})
    prepared = prepare(connector(ApiKeyAuth("header", "X-Api-Key")), request, base_url=BASE,
                       credentials={"api_key": key}, idempotency_key=None)  # fmt: skip
    assert prepared.headers["X-Api-Key"] == key
    assert prepared.headers["X-Other"] == name
