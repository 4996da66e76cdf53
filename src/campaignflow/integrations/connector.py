"""What a connector declares, as plain values: no I/O, no registry mutated at import time.

A :class:`Connector` names a provider and says how to reach it (a base URL a connection may
override for a sandbox or a test server), how to authenticate (:data:`AuthScheme`), which
credentials and settings a connection of it holds (pydantic models, so the connections API can
check them and publish their JSON Schemas), how fast it may be called (:class:`RateLimits`, one
token bucket per connection shared by every worker), when to stop calling it
(:class:`~campaignflow.domain.circuit_breaker.BreakerPolicy`, one breaker per connection), and
its :class:`Operation` s.

An operation turns validated parameters into an :class:`OutboundRequest` with a pure function,
so the request each operation sends can be checked against the provider's published API spec
without running anything else (the contract tests do exactly that), and turns the provider's
answer into the step output with another pure function. Sending, authentication, rate limits,
the breaker and retries are the executor's (``integrations/executor.py``); connectors never do
I/O themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.engine.http_action import retryable_status
from campaignflow.errors import ClientError

if TYPE_CHECKING:
    from campaignflow.integrations.crm import CrmSync

Category = Literal["email", "messaging", "crm", "ads", "generic"]


# ---------------------------------------------------------------------------------- auth schemes


@dataclass(frozen=True, slots=True)
class NoAuth:
    """The request carries no credential of its own (e.g. a Slack incoming-webhook URL, which
    is itself the secret, or a request signed by the operation)."""

    kind: Literal["none"] = "none"


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """An API key from the credential ``api_key``, in a header, a query parameter or a field
    of the JSON body (Mandrill's ``key``)."""

    location: Literal["header", "query", "body"]
    name: str
    prefix: str = ""  # e.g. "Token " for a header such as "Authorization: Token …"
    kind: Literal["apiKey"] = "apiKey"


@dataclass(frozen=True, slots=True)
class BearerAuth:
    """``Authorization: Bearer <token>`` from the credential ``token``."""

    kind: Literal["bearer"] = "bearer"


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP Basic from the credentials ``username`` and ``password``; ``fixed_username`` is used
    when the provider ignores the user name (Mailchimp Marketing: any user, the key as password).
    ``password_credential`` names the credential holding the password, so a connector whose
    users know the secret as an API key can call it ``api_key`` (Mailchimp Marketing does).
    """

    fixed_username: str | None = None
    password_credential: str = "password"  # noqa: S105 (a credential's name, not its value)
    kind: Literal["basic"] = "basic"


@dataclass(frozen=True, slots=True)
class OAuth2ClientCredentials:
    """OAuth 2.0 client credentials (RFC 6749 §4.4) from ``client_id`` and ``client_secret``; the
    access token is cached per connection until shortly before it expires."""

    token_url: str
    scopes: tuple[str, ...] = ()
    kind: Literal["oauth2_client_credentials"] = "oauth2_client_credentials"


@dataclass(frozen=True, slots=True)
class OAuth2RefreshToken:
    """OAuth 2.0 refresh-token grant (RFC 6749 §6) from ``client_id``, ``client_secret`` and
    ``refresh_token``; a rotated refresh token returned by the provider is stored back."""

    token_url: str
    kind: Literal["oauth2_refresh_token"] = "oauth2_refresh_token"


@dataclass(frozen=True, slots=True)
class AwsSigV4Auth:
    """AWS Signature Version 4 (``integrations/sigv4.py``) from the credentials
    ``access_key_id`` and ``secret_access_key`` (and ``session_token`` for temporary
    credentials), for ``service`` in the region named by the connection setting
    ``region_setting``. The signature covers the final URL, headers, body and the time of
    sending, so it is applied last, when the request is prepared."""

    service: str
    region_setting: str = "region"
    kind: Literal["aws_sigv4"] = "aws_sigv4"


@dataclass(frozen=True, slots=True)
class OAuthAuthorization:
    """How a person grants a connection access on the provider's own consent page (OAuth 2.0
    authorization code with PKCE, RFC 6749 §4.1 and RFC 7636), which yields the refresh token
    an :class:`OAuth2RefreshToken` connection needs. ``authorize_url_for`` picks the page from
    the connection's settings where it differs (Salesforce's sandbox login host);
    ``extra_params`` are what the provider needs to issue a refresh token at all (Google's
    ``access_type=offline``)."""

    authorize_url: str
    scopes: tuple[str, ...] = ()
    extra_params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    authorize_url_for: Callable[[ConnectionSettings], str] | None = None


AuthScheme = (
    NoAuth
    | ApiKeyAuth
    | BearerAuth
    | BasicAuth
    | OAuth2ClientCredentials
    | OAuth2RefreshToken
    | AwsSigV4Auth
)


# --------------------------------------------------------------------------- connection models


class ConnectorModel(BaseModel):
    """Base of credential, settings and parameter models: unknown keys are refused (a typo in a
    parameter name must not be silently dropped on its way to a provider)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class NoCredentials(ConnectorModel):
    """For connectors that need no secret."""


class ConnectionSettings(ConnectorModel):
    """Settings every connection has; a connector may extend them with its own."""

    base_url: str | None = Field(
        None,
        alias="baseUrl",
        description="Overrides the provider's base URL (a sandbox, a regional host, a test "
        "server). Must be an absolute http(s) URL.",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
    )
    requests_per_minute: int | None = Field(
        None,
        alias="requestsPerMinute",
        ge=1,
        le=1_000_000,
        description="Overrides the connector's rate limit for this account.",
    )
    burst_limit: int | None = Field(
        None,
        alias="burstLimit",
        ge=1,
        le=100_000,
        description="Overrides the connector's burst for this account.",
    )


@dataclass(frozen=True, slots=True)
class RateLimits:
    """A token bucket: ``requests_per_minute`` on average, at most ``burst_limit`` at once."""

    requests_per_minute: int
    burst_limit: int

    def __post_init__(self) -> None:
        if self.requests_per_minute < 1 or self.burst_limit < 1:
            raise ValueError("rate limits must be at least 1")

    @property
    def per_second(self) -> float:
        return self.requests_per_minute / 60.0


# ----------------------------------------------------------------------- requests and responses


class CannotBuildRequest(ClientError):
    """The operation's request cannot be built from these parameters and this connection (a
    builder's own check, e.g. no sender and no default sender): the step fails without retry."""


Body = Literal["json", "form", "raw", "none"]


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One HTTP request an operation wants sent, before authentication is applied.

    ``path`` is appended to the connection's base URL unless ``url`` is given (an absolute URL
    taken from the connection or the parameters, as for Slack or a generic webhook). ``json``
    is sent as JSON, ``form`` as ``application/x-www-form-urlencoded``, ``raw`` as it is (with
    its ``Content-Type`` in ``headers``).
    """

    method: str
    path: str = ""
    url: str | None = None
    query: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    json: Any = None
    form: Mapping[str, str] | None = None
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What an operation may put into its request besides its parameters.

    ``tracking`` identifies the step that sends (workspace, execution, node); operations pass it
    where the provider echoes it back on its webhooks (SendGrid ``custom_args``, Mandrill
    ``metadata``), so an ``email.opened`` confirms the step that sent the message.
    """

    idempotency_key: str
    tracking: Mapping[str, str]
    settings: ConnectionSettings
    credentials: Mapping[str, str]
    now_unix: int


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    """A 2xx answer: status, lower-cased headers and the body (parsed JSON, text or None)."""

    status: int
    headers: Mapping[str, str]
    body: Any


def default_output(response: ProviderResponse) -> Any:
    """The step output when an operation says nothing else: status and body."""
    return {"status": response.status, "body": response.body}


@dataclass(frozen=True, slots=True)
class Operation:
    """One thing a connector can do; ``connector.operation`` is its action name."""

    name: str
    summary: str
    params: type[ConnectorModel]
    request: Callable[[Any, RequestContext], OutboundRequest]
    output: Callable[[ProviderResponse], Any] = default_output
    # For operations that send messages: the recipients' addresses in the (validated) params.
    # The executor checks them against the suppression list before sending, and the provider's
    # webhooks later report on the message, so the step gets a delivery status.
    recipients: Callable[[Any], list[str]] | None = None
    provider_message_id: Callable[[ProviderResponse], str | None] | None = None
    # The channel of a message operation (``email``, ``sms``): the send-time policy's consent,
    # caps and quiet hours are per channel. None: the connector's category says (see
    # :func:`message_channel`).
    channel: str | None = None

    @property
    def sends_message(self) -> bool:
        return self.recipients is not None


@dataclass(frozen=True, slots=True)
class Connector:
    """A provider and everything the executor needs to call it; see the module docstring."""

    provider: str
    title: str
    category: Category
    description: str
    base_url: str
    auth: AuthScheme
    operations: Mapping[str, Operation]
    rate_limits: RateLimits
    credentials: type[ConnectorModel] = NoCredentials
    settings: type[ConnectionSettings] = ConnectionSettings
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    test: Callable[[RequestContext], OutboundRequest] | None = None
    idempotency_header: str | None = None
    base_url_for: Callable[[ConnectionSettings, Mapping[str, str]], str] | None = None
    # For a connector whose connections pick their own scheme (the generic ``http`` connector):
    # the scheme to apply, from the connection's credentials. ``auth`` is then the default.
    auth_for: Callable[[Mapping[str, str]], AuthScheme] | None = None
    docs_url: str | None = None
    # For a provider that reports some failures under a status that misleads (Meta answers its
    # rate limiting with HTTP 400): its verdict on an answer, or None for the default one.
    classify: Callable[[int, Any], Verdict | None] | None = None
    # For an OAuth connector whose token endpoint depends on the connection (Salesforce's
    # sandbox login host): the token URL from its settings. ``auth.token_url`` otherwise.
    token_url_for: Callable[[ConnectionSettings], str] | None = None
    # A connector whose refresh token a person grants on the provider's consent page.
    authorization: OAuthAuthorization | None = None
    # A CRM connector's sync declaration (``integrations/crm.py``); None for the others.
    sync: CrmSync | None = None

    def operation(self, name: str) -> Operation:
        try:
            return self.operations[name]
        except KeyError:
            known = ", ".join(sorted(self.operations))
            raise KeyError(f"{self.provider} has no operation {name!r}; it has {known}") from None

    def resolved_base_url(
        self, settings: ConnectionSettings, credentials: Mapping[str, str]
    ) -> str:
        """The connection's override, else the connector's own (which may depend on the
        credentials, e.g. Mailchimp's data centre in the key's suffix)."""
        if settings.base_url:
            return settings.base_url.rstrip("/")
        if self.base_url_for is not None:
            return self.base_url_for(settings, credentials).rstrip("/")
        return self.base_url.rstrip("/")

    def resolved_auth(self, credentials: Mapping[str, str]) -> AuthScheme:
        """The scheme this connection's requests carry: the connector's own, unless the
        connector lets each connection choose (:attr:`auth_for`)."""
        if self.auth_for is not None:
            return self.auth_for(credentials)
        return self.auth

    def limits_for(self, settings: ConnectionSettings) -> RateLimits:
        return RateLimits(
            settings.requests_per_minute or self.rate_limits.requests_per_minute,
            settings.burst_limit or self.rate_limits.burst_limit,
        )


def message_channel(connector: Connector, operation: Operation) -> str | None:
    """The channel a message operation sends on: its own, else its connector's category
    (``email`` for an e-mail connector); None for an operation that sends no message."""
    if operation.recipients is None:
        return None
    return operation.channel or connector.category


def operations(*declared: Operation) -> Mapping[str, Operation]:
    """Operations by name, refusing two of the same name (a copy-paste slip in a declaration)."""
    by_name: dict[str, Operation] = {}
    for operation in declared:
        if operation.name in by_name:
            raise ValueError(f"operation {operation.name!r} is declared twice")
        by_name[operation.name] = operation
    return MappingProxyType(by_name)


# ------------------------------------------------------------------------- error classification


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a provider's answer is taken: ``ok``, or a failure that may be ``retryable``, and
    whether it counts against the provider's health (``breaker_failure``)."""

    ok: bool
    retryable: bool = False
    breaker_failure: bool = False


def classify_answer(connector: Connector, status: int, body: Any) -> Verdict:
    """The connector's own verdict where it has one, else :func:`classify_status`'s."""
    if connector.classify is not None:
        verdict = connector.classify(status, body)
        if verdict is not None:
            return verdict
    return classify_status(status)


def classify_status(status: int) -> Verdict:
    """2xx succeeds. 408, 425, 429 and 5xx are retried; all but 429 count against the breaker
    (a 429 is the provider pacing us, answered by its ``Retry-After``, not ill health). Any
    other 4xx is the request's own fault: not retried, and not the provider's."""
    if 200 <= status < 300:
        return Verdict(ok=True)
    if retryable_status(status):
        return Verdict(ok=False, retryable=True, breaker_failure=status != 429)
    return Verdict(ok=False)
