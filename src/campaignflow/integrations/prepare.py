"""From an operation's :class:`OutboundRequest` to the bytes on the wire, without I/O.

Applies the connection's base URL, the query, the connector's auth scheme, the idempotency
header and the body encoding. Kept pure so the contract tests can send exactly what the executor
would send, and so a missing credential is a precise error before anything leaves the process.
An AWS SigV4 signature is applied last, over the finished request and the time of sending that
the caller passes (``now_unix``): nothing here reads a clock.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson

from campaignflow.engine.http_action import USER_AGENT
from campaignflow.errors import ClientError
from campaignflow.integrations.connector import (
    ApiKeyAuth,
    AwsSigV4Auth,
    BasicAuth,
    BearerAuth,
    ConnectionSettings,
    Connector,
    NoAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    OutboundRequest,
)
from campaignflow.integrations.sigv4 import AwsCredentials, signed_headers


class MissingCredential(ClientError):
    """The connection lacks a credential its connector's auth scheme needs."""


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

    @property
    def host(self) -> str:
        """``host[:port]``: what error messages may name (never the path, query or headers)."""
        parts = urlsplit(self.url)
        return parts.netloc.rpartition("@")[2]


def prepare(
    connector: Connector,
    request: OutboundRequest,
    *,
    base_url: str,
    credentials: Mapping[str, str],
    idempotency_key: str | None,
    access_token: str | None = None,
    settings: ConnectionSettings | None = None,
    now_unix: int | None = None,
) -> PreparedRequest:
    """The request to send. ``access_token`` is the OAuth 2.0 token for the OAuth schemes;
    ``settings`` (the connection's) and ``now_unix`` (the time of sending) are needed by AWS
    SigV4 only: its region is a setting, and its signature covers the time."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    query = dict(request.query)
    json_body = request.json
    auth = connector.resolved_auth(credentials)
    if isinstance(auth, ApiKeyAuth):
        key = _credential(credentials, "api_key", connector.provider)
        json_body = _with_api_key(
            auth,
            key,
            headers=headers,
            query=query,
            json_body=json_body,
            provider=connector.provider,
        )
    elif isinstance(auth, BearerAuth):
        headers["Authorization"] = "Bearer " + _credential(credentials, "token", connector.provider)
    elif isinstance(auth, BasicAuth):
        user = auth.fixed_username or _credential(credentials, "username", connector.provider)
        password = _credential(credentials, auth.password_credential, connector.provider)
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = "Basic " + token
    elif isinstance(auth, OAuth2ClientCredentials | OAuth2RefreshToken):
        if not access_token:
            raise MissingCredential(f"{connector.provider}: no OAuth 2.0 access token")
        headers["Authorization"] = "Bearer " + access_token
    else:
        assert isinstance(auth, NoAuth | AwsSigV4Auth)
    if connector.idempotency_header and idempotency_key:
        headers[connector.idempotency_header] = idempotency_key
    headers.update(request.headers)
    prepared = PreparedRequest(
        method=request.method.upper(),
        url=_url(request, base_url, query),
        headers=headers,
        body=_body(request, json_body, headers),
    )
    if isinstance(auth, AwsSigV4Auth):
        return _aws_signed(
            connector, auth, prepared, credentials=credentials, settings=settings, now_unix=now_unix
        )
    return prepared


def _with_api_key(
    auth: ApiKeyAuth,
    key: str,
    *,
    headers: dict[str, str],
    query: dict[str, str],
    json_body: Any,
    provider: str,
) -> Any:
    """Puts the key where the scheme says; returns the JSON body (a new one if the key goes
    into it)."""
    if auth.location == "header":
        headers[auth.name] = auth.prefix + key
    elif auth.location == "query":
        query[auth.name] = key
    else:
        if not isinstance(json_body, Mapping):
            raise MissingCredential(
                f"{provider}: the API key goes in the JSON body, which is not an object in this "
                "request"
            )
        return {auth.name: key, **json_body}
    return json_body


def _aws_signed(
    connector: Connector,
    auth: AwsSigV4Auth,
    prepared: PreparedRequest,
    *,
    credentials: Mapping[str, str],
    settings: ConnectionSettings | None,
    now_unix: int | None,
) -> PreparedRequest:
    if now_unix is None:
        # A caller's bug, not the connection's: the signature needs the time of sending.
        raise ValueError(f"{connector.provider}: AWS SigV4 signing needs now_unix")
    region = getattr(settings, auth.region_setting, None) if settings is not None else None
    if not isinstance(region, str) or not region:
        raise MissingCredential(
            f"{connector.provider}: the connection has no {auth.region_setting!r} setting"
        )
    aws = AwsCredentials(
        access_key_id=_credential(credentials, "access_key_id", connector.provider),
        secret_access_key=_credential(credentials, "secret_access_key", connector.provider),
        session_token=credentials.get("session_token") or None,
    )
    headers = signed_headers(
        prepared.method,
        prepared.url,
        prepared.headers,
        prepared.body,
        credentials=aws,
        region=region,
        service=auth.service,
        now_unix=now_unix,
    )
    return PreparedRequest(prepared.method, prepared.url, headers, prepared.body)


def _credential(credentials: Mapping[str, str], name: str, provider: str) -> str:
    value = credentials.get(name)
    if not value:
        raise MissingCredential(f"{provider}: the connection has no {name!r} credential")
    return value


def _url(request: OutboundRequest, base_url: str, query: Mapping[str, str]) -> str:
    url = request.url if request.url is not None else base_url.rstrip("/") + request.path
    if not query:
        return url
    parts = urlsplit(url)
    extra = urlencode(sorted(query.items()))
    joined = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))


def _body(request: OutboundRequest, json_body: Any, headers: dict[str, str]) -> bytes | None:
    if request.raw is not None:
        return request.raw
    if request.form is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urlencode(list(request.form.items())).encode()
    if json_body is None:
        return None
    headers.setdefault("Content-Type", "application/json")
    return orjson.dumps(json_body)
