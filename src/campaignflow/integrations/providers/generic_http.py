"""The generic ``http`` connector: ``http.request`` against any JSON API, with the connection's
credentials.

Unlike the built-in ``http`` action (a bare URL, headers written into the workflow), a
connection holds the base URL and the secret, so workflows never see it, and the connection
chooses how the secret is sent: bearer token, HTTP Basic, or an API key header
(:func:`auth_for`). Credentials go only to the connection's own origin: a request to an
absolute ``url`` elsewhere is refused when the connection has credentials, so a workflow cannot
send them to a host of its choosing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, JsonValue, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    ApiKeyAuth,
    AuthScheme,
    BasicAuth,
    BearerAuth,
    CannotBuildRequest,
    Connector,
    ConnectorModel,
    NoAuth,
    Operation,
    OutboundRequest,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.providers._common import (
    HTTP_URL_PATTERN,
    HeaderName,
    HeaderValue,
    Params,
    Secret,
)

Scheme = Literal["none", "bearer", "basic", "api_key"]
DEFAULT_API_KEY_HEADER = "X-API-Key"
_NEEDS: Mapping[str, tuple[str, ...]] = {
    "none": (),
    "bearer": ("token",),
    "basic": ("username", "password"),
    "api_key": ("api_key",),
}


class HttpCredentials(ConnectorModel):
    """The scheme and the values it needs; the others must be left out."""

    scheme: Scheme = Field("none", description="How requests authenticate.")
    token: Secret | None = Field(None, description="Bearer token (scheme 'bearer').")
    username: str | None = Field(
        None, min_length=1, max_length=200, description="User name (scheme 'basic')."
    )
    password: Secret | None = Field(None, description="Password (scheme 'basic').")
    api_key: Secret | None = Field(None, description="API key (scheme 'api_key').")
    header_name: str = Field(
        DEFAULT_API_KEY_HEADER,
        pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$",
        description="Header carrying the API key (scheme 'api_key'); the value is sent as is, "
        "so include any prefix such as 'Token ' in the key.",
    )

    @model_validator(mode="after")
    def _complete_for_scheme(self) -> Self:
        needed = _NEEDS[self.scheme]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"scheme {self.scheme!r} needs {', '.join(missing)}")
        stray = [n for n in ("token", "username", "password", "api_key") if n not in needed]
        if any(getattr(self, name) is not None for name in stray):
            raise ValueError(f"scheme {self.scheme!r} takes only {', '.join(needed) or 'nothing'}")
        return self


def auth_for(credentials: Mapping[str, str]) -> AuthScheme:
    """The scheme the connection chose (see :class:`HttpCredentials`)."""
    scheme = credentials.get("scheme", "none")
    if scheme == "bearer":
        return BearerAuth()
    if scheme == "basic":
        return BasicAuth()
    if scheme == "api_key":
        header = credentials.get("header_name") or DEFAULT_API_KEY_HEADER
        return ApiKeyAuth(location="header", name=header)
    return NoAuth()


class RequestParams(Params):
    """One request; the response (status, body) is the step output."""

    method: Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"] = Field(
        "POST", description="HTTP method."
    )
    path: str | None = Field(
        None,
        pattern=r"^/[^\s#]*$",
        max_length=8000,
        description="Path appended to the connection's baseUrl, e.g. /v1/orders.",
    )
    url: str | None = Field(
        None,
        pattern=HTTP_URL_PATTERN,
        max_length=8000,
        description="Absolute URL instead of a path; with credentials, it must be on the "
        "baseUrl's host.",
    )
    query: dict[str, str] = Field(default_factory=dict, description="Query parameters.")
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, description="Extra request headers."
    )
    body: JsonValue = Field(None, description="JSON body.")

    @model_validator(mode="after")
    def _path_or_url(self) -> Self:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path and url")
        return self


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def request(params: RequestParams, ctx: RequestContext) -> OutboundRequest:
    base_url = ctx.settings.base_url
    if params.url is None:
        if base_url is None:
            raise CannotBuildRequest("http: the connection has no baseUrl to append the path to")
    elif ctx.credentials.get("scheme", "none") != "none" and (
        base_url is None or _origin(params.url) != _origin(base_url)
    ):
        raise CannotBuildRequest(
            "http: this connection's credentials are sent only to its baseUrl's host; "
            "use a path, or a connection without credentials"
        )
    return OutboundRequest(
        params.method,
        path=params.path or "",
        url=params.url,
        query=params.query,
        headers=params.headers,
        json=params.body,
    )


HTTP = Connector(
    provider="http",
    title="HTTP API",
    category="generic",
    description="Any JSON-over-HTTP API: a base URL and a secret kept in the connection "
    "(bearer token, HTTP Basic or API key header).",
    base_url="",  # every connection sets baseUrl (or uses absolute URLs without credentials)
    auth=NoAuth(),
    auth_for=auth_for,
    credentials=HttpCredentials,
    operations=operations(
        Operation(
            name="request",
            summary="Send one HTTP request to the connection's API.",
            params=RequestParams,
            request=request,
        ),
    ),
    # An unknown API: a modest default; connections set requestsPerMinute/burstLimit.
    rate_limits=RateLimits(requests_per_minute=600, burst_limit=10),
    breaker=BreakerPolicy(),
    idempotency_header="Idempotency-Key",  # as the built-in http action sends it
)
