"""A request context as the executor builds it, for the pure request builders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from campaignflow.integrations.connector import Connector, OutboundRequest, RequestContext

TRACKING = {"cf_workspace": "ws_1", "cf_send": "snd_1", "cf_execution": "ex_1", "cf_node": "n1"}
NOW_UNIX = 1_790_000_000
IDEMPOTENCY_KEY = "send:ex_1:n1"


def ctx(
    connector: Connector,
    credentials: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    *,
    tracking: Mapping[str, str] = TRACKING,
) -> RequestContext:
    return RequestContext(
        idempotency_key=IDEMPOTENCY_KEY,
        tracking=tracking,
        settings=connector.settings.model_validate(settings or {}),
        credentials=credentials or {},
        now_unix=NOW_UNIX,
    )


def build(
    connector: Connector, operation: str, params: Mapping[str, Any], context: RequestContext
) -> OutboundRequest:
    """The operation's OutboundRequest for ``params`` (validated by its model first)."""
    op = connector.operation(operation)
    return op.request(op.params.model_validate(dict(params)), context)
