"""Fixtures of the contract tests: Prism mocks of the providers' specs, and the path from an
operation's parameters to the bytes the executor would send."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from campaignflow.integrations.connector import Connector, OutboundRequest, RequestContext
from campaignflow.integrations.prepare import PreparedRequest, prepare
from tests._support.prism_pool import PrismPool

SPEC_FILES: Mapping[str, str] = {
    "sendgrid_mail": "sendgrid/tsg_mail_v3.json",
    "sendgrid_contacts": "sendgrid/tsg_mc_contacts_v3.json",
    "sendgrid_lists": "sendgrid/tsg_mc_lists_v3.json",
    "sendgrid_suppressions": "sendgrid/tsg_suppressions_v3.json",
    "mandrill": "mailchimp-transactional/transactional.openapi.json",
    "mailchimp_marketing": "mailchimp-marketing/marketing.swagger2.json",
}
TRACKING = {
    "cf_workspace": "ws_01",
    "cf_send": "snd_01J9Z6",
    "cf_execution": "ex_01J9Z6",
    "cf_node": "send-welcome",
}
NOW_UNIX = 1_790_000_000


@pytest.fixture(scope="session")
def prism(prism_pool: PrismPool) -> Mapping[str, str]:
    """Spec name (see SPEC_FILES) → base URL of its Prism mock, for the whole session."""
    return prism_pool.urls(SPEC_FILES)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def context(
    connector: Connector,
    credentials: Mapping[str, str],
    settings: Mapping[str, Any] | None = None,
    *,
    tracking: Mapping[str, str] = TRACKING,
    idempotency_key: str = "send:ex_01J9Z6:send-welcome",
) -> RequestContext:
    """What the executor hands an operation: the connector's own settings model, validated."""
    return RequestContext(
        idempotency_key=idempotency_key,
        tracking=tracking,
        settings=connector.settings.model_validate(settings or {}),
        credentials=credentials,
        now_unix=NOW_UNIX,
    )


def prepared(
    connector: Connector, request: OutboundRequest, ctx: RequestContext
) -> PreparedRequest:
    """The request as the executor prepares it, the base URL resolved from the connection's
    settings (the tests point ``baseUrl`` at Prism, as a user would at a sandbox)."""
    return prepare(
        connector,
        request,
        base_url=connector.resolved_base_url(ctx.settings, ctx.credentials),
        credentials=ctx.credentials,
        idempotency_key=ctx.idempotency_key,
        settings=ctx.settings,
        now_unix=ctx.now_unix,
    )


def operation_request(
    connector: Connector,
    operation: str,
    params: Mapping[str, Any],
    ctx: RequestContext,
) -> PreparedRequest:
    """Validate ``params`` with the operation's model, build and prepare its request."""
    op = connector.operation(operation)
    return prepared(connector, op.request(op.params.model_validate(dict(params)), ctx), ctx)
