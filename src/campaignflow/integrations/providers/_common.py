"""What the built-in connectors share: the parameter base, value types the providers' specs
accept, and the error a request builder raises.

The e-mail pattern is the one the providers' own specs enforce through ``format: email`` as
Stoplight Prism (ajv-formats, "full" mode) reads it, with its domain labels capped at 63
characters as ajv's "fast" mode does. An address the parameter models accept is therefore one
the provider accepts; an address it refuses fails before any request is built, at the step that
named it, instead of as a 400 from the provider after the step was sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import ConfigDict, Field, JsonValue, PlainValidator
from pydantic.alias_generators import to_camel

from campaignflow.domain.fields import domain_error
from campaignflow.integrations.connector import (
    CannotBuildRequest,
    ConnectionSettings,
    ConnectorModel,
    ProviderResponse,
)
from campaignflow.integrations.prepare import MissingCredential

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_LABEL}$"

EMAIL_MAX_LENGTH = 254
MAX_RECIPIENTS = 1000
_EMAIL = re.compile(EMAIL_PATTERN)

EmailAddress = Annotated[
    str,
    Field(pattern=EMAIL_PATTERN, max_length=EMAIL_MAX_LENGTH, examples=["alice@example.com"]),
]


def _addresses(value: object) -> list[str]:
    """One address or a non-empty list of them, as a list.

    A plain validator rather than a union: a union's errors are located inside pydantic's
    member tags (``to/constrained-str``), where the workflow validator cannot see that the
    value is a Liquid template to be checked after rendering. Errors here sit on the value
    itself (``to``, or ``to/2`` for the third address).
    """
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_RECIPIENTS:
        message = f"must be an address or an array of 1 to {MAX_RECIPIENTS} addresses"
        raise domain_error("invalid_value", message)
    for index, item in enumerate(items):
        if not (isinstance(item, str) and len(item) <= EMAIL_MAX_LENGTH and _EMAIL.fullmatch(item)):
            at = () if isinstance(value, str) else (index,)
            raise domain_error("invalid_value", "must be an e-mail address", at=at)
    return list(items)


EmailAddresses = Annotated[
    list[str],
    PlainValidator(
        _addresses,
        json_schema_input_type=EmailAddress
        | Annotated[list[EmailAddress], Field(min_length=1, max_length=MAX_RECIPIENTS)],
    ),
]
# A secret: never shown back by the connections API; UIs render it as a password field.
Secret = Annotated[
    str,
    Field(min_length=1, max_length=4096, json_schema_extra={"writeOnly": True}),
]
# Header names are RFC 9110 tokens; values must not smuggle in a second header.
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
HeaderValue = Annotated[str, Field(max_length=8000, pattern=r"^[^\r\n\x00]*$")]
HTTP_URL_PATTERN = r"^https?://[^\s/?#]+(/[^\s]*)?$"
HTTPS_URL_PATTERN = r"^https://[^\s/?#]+(/[^\s]*)?$"
JsonObject = dict[str, JsonValue]


class Params(ConnectorModel):
    """Base of every operation's parameters: camelCase names, like the rest of the workflow
    format (``fromName``, ``templateId``), while Python code reads snake_case attributes."""

    model_config = ConfigDict(alias_generator=to_camel)


def credential(ctx_credentials: Mapping[str, str], name: str, provider: str) -> str:
    """A credential a request builder itself puts into the request (a Slack webhook URL, a
    signing secret); the same error as :func:`~campaignflow.integrations.prepare.prepare` gives
    for credentials of an auth scheme."""
    value = ctx_credentials.get(name)
    if not value:
        raise MissingCredential(f"{provider}: the connection has no {name!r} credential")
    return value


def unique(values: list[str]) -> list[str]:
    """Refuses duplicates where a provider's spec says ``uniqueItems`` (a model validator)."""
    if len(set(values)) != len(values):
        raise ValueError("must not contain the same value twice")
    return values


def body_field(response: ProviderResponse, name: str) -> Any:
    """``body[name]`` if the body is a JSON object, else None (providers' bodies vary)."""
    return response.body.get(name) if isinstance(response.body, Mapping) else None


class SenderSettings(ConnectionSettings):
    """Settings of e-mail connections: the sender used when a step names none, so workflows
    need not repeat the account's verified sender."""

    default_from: EmailAddress | None = Field(
        None,
        alias="defaultFrom",
        description="Sender address for steps that give no 'from' (a verified sender).",
    )
    default_from_name: str | None = Field(
        None, alias="defaultFromName", max_length=200, description="Its display name."
    )


def sender(
    params_from: str | None, params_name: str | None, settings: ConnectionSettings, provider: str
) -> tuple[str, str | None]:
    """The step's sender, else the connection's default; a step cannot send without one."""
    if params_from is not None:
        return params_from, params_name
    if isinstance(settings, SenderSettings) and settings.default_from is not None:
        return settings.default_from, params_name or settings.default_from_name
    raise CannotBuildRequest(
        f"{provider}: give 'from', or set defaultFrom in the connection's settings"
    )
