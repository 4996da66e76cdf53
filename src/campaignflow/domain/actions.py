"""The action catalog: which actions exist and what parameters each one takes.

The catalog is an immutable value handed to the validator (and later to the engine), never a
registry mutated at import time: ``builtin_catalog().register(spec, ...)`` returns a new catalog.
Built-ins are ``http``, ``set`` and ``log``. Connector actions are named ``connector.operation``
(``hubspot.upsert_contact``). Until the connector framework registers its operations, a catalog
with ``open_namespaces=True`` (the default) accepts any well-formed namespaced name with
free-form parameters and checks nothing else about it; once any operation of a namespace is
registered, that namespace is closed and its unknown operations are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from types import MappingProxyType
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, JsonValue, field_validator

from campaignflow.domain.fields import (
    CelSource,
    DurationValue,
    FormatModel,
    Identifier,
    domain_error,
)
from campaignflow.domain.templates import is_template
from campaignflow.errors import ClientError

NAMESPACED_ACTION = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")


class HttpParams(FormatModel):
    """Parameters of ``http``: one HTTP request; its response becomes the step output."""

    method: Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"] = Field(
        "POST", description="HTTP method."
    )
    url: Annotated[str, Field(min_length=1, max_length=8000)] = Field(
        description="Absolute http(s) URL; a Liquid template."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers; values are Liquid templates."
    )
    body: JsonValue = Field(
        None, description="JSON body; every string inside is a Liquid template."
    )
    timeout: DurationValue | None = Field(
        None, description="Give up after this long (default: the engine's HTTP timeout)."
    )

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, url: str) -> str:
        if is_template(url):
            return url  # known only after rendering
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise domain_error("invalid_value", "must be an absolute http:// or https:// URL")
        return url


class SetParams(FormatModel):
    """Parameters of ``set``: assigns CEL results to workflow variables (``vars``)."""

    variables: dict[Identifier, CelSource] = Field(
        min_length=1,
        description="Variable name → CEL expression; later nodes read the value as vars.NAME.",
    )


class LogParams(FormatModel):
    """Parameters of ``log``: writes a line to the execution's step log."""

    message: Annotated[str, Field(min_length=1, max_length=10_000)] = Field(
        description="The line to log; a Liquid template."
    )
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Severity.")


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """What the validator needs to know about one action.

    ``params`` is the pydantic model of the parameters, or ``None`` for free-form parameters.
    ``expression_params`` names top-level parameters whose string values are CEL expressions
    (compiled in the node context) instead of Liquid templates.
    """

    name: str
    description: str
    params: type[BaseModel] | None = None
    expression_params: frozenset[str] = frozenset()
    connector: str | None = None  # a connector operation: its provider, whose connection it needs


class UnknownAction(ClientError):
    """The action is not in the catalog."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.known = tuple(sorted(known))
        super().__init__(f"unknown action {name!r}; known actions: {', '.join(self.known)}")


@dataclass(frozen=True, slots=True)
class ActionCatalog:
    """An immutable mapping of action names to :class:`ActionSpec`."""

    specs: Mapping[str, ActionSpec] = field(default_factory=lambda: MappingProxyType({}))
    open_namespaces: bool = True

    def register(self, *specs: ActionSpec) -> Self:
        """A new catalog with ``specs`` added (a later spec with the same name replaces one)."""
        merged = {**self.specs, **{spec.name: spec for spec in specs}}
        return replace(self, specs=MappingProxyType(merged))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.specs))

    def resolve(self, name: str) -> ActionSpec:
        """The spec for ``name``, or :class:`UnknownAction` listing what would be accepted."""
        spec = self.specs.get(name)
        if spec is not None:
            return spec
        if NAMESPACED_ACTION.fullmatch(name) is None:
            raise UnknownAction(name, self._plain_names())
        namespace = name.partition(".")[0]
        siblings = [known for known in self.specs if known.startswith(namespace + ".")]
        if siblings or not self.open_namespaces:
            raise UnknownAction(name, siblings or self.specs)
        return ActionSpec(
            name, "Connector operation (not registered; params unchecked).", connector=namespace
        )

    def _plain_names(self) -> list[str]:
        return [known for known in self.specs if "." not in known]


BUILTIN_ACTIONS = (
    ActionSpec("http", "Send an HTTP request.", HttpParams),
    ActionSpec(
        "set",
        "Assign workflow variables from CEL expressions.",
        SetParams,
        frozenset({"variables"}),
    ),
    ActionSpec("log", "Write a line to the execution's step log.", LogParams),
)


@cache
def builtin_catalog() -> ActionCatalog:
    """The catalog of built-in actions, open to any ``connector.operation`` name."""
    return ActionCatalog().register(*BUILTIN_ACTIONS)
