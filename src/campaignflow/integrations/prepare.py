"""From an operation's :class:`OutboundRequest` to the bytes on the wire, without I/O.

Applies the connection's base URL, the query, the connector's auth scheme, the idempotency
header and the body encoding. Kept pure so the contract tests can send exactly what the executor
would send, and so a missing credential is a precise error before anything leaves the process.
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
    BasicAuth,
    BearerAuth,
    Connector,
    NoAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    OutboundRequest,
)


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
) -> PreparedRequest:
    """The request to send. ``access_token`` is the OAuth 2.0 token for the OAuth schemes."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    query = dict(request.query)
    json_body = request.json
    auth = connector.resolved_auth(credentials)
    if isinstance(auth, ApiKeyAuth):
        key = _credential(credentials, "api_key", connector.provider)
        if auth.location == "header":
            headers[auth.name] = auth.prefix + key
        elif auth.location == "query":
            query[auth.name] = key
        else:
            if not isinstance(json_body, Mapping):
                raise MissingCredential(
                    f"{connector.provider}: the API key goes in the JSON body, which is not an "
                    "object in this request"
                )
            json_body = {auth.name: key, **json_body}
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
        assert isinstance(auth, NoAuth)
    if connector.idempotency_header and idempotency_key:
        headers[connector.idempotency_header] = idempotency_key
    headers.update(request.headers)
    return PreparedRequest(
        method=request.method.upper(),
        url=_url(request, base_url, query),
        headers=headers,
        body=_body(request, json_body, headers),
    )


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
