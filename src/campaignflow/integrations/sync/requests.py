"""A sync run's requests to its CRM: through the connector executor (the account's rate limit
and breaker, shared with workflows), retried within the run, read into pages.

A request that fails retryably (timeouts, 429, 5xx) is tried again a few times with backoff,
honouring ``Retry-After``; a rate-limit deferral waits without counting. A 4xx other than the
account's own (401, 403, 404) is :class:`RefusedRequest`: the records' fault, which a push
answers per record. Every answer's ``Date`` header is compared with our clock; the median offset
corrects the CRM's change times before last-write-wins compares them.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from campaignflow.engine.actions import ActionFailed
from campaignflow.errors import ClientError
from campaignflow.integrations.connections import ResolvedConnection
from campaignflow.integrations.connector import OutboundRequest, ProviderResponse, RequestContext
from campaignflow.integrations.crm import PullPage
from campaignflow.integrations.sync.run import RunContext, RunnerOptions, SyncFailed
from campaignflow.store.crm_sync import SyncStore

_FATAL_STATUSES = frozenset({401, 403, 404})  # the account or the endpoint, not the record


class Sender(Protocol):
    async def send(
        self, connection: ResolvedConnection, request: OutboundRequest
    ) -> ProviderResponse: ...


class RefusedRequest(Exception):
    """The CRM refused a request as wrong (a 4xx other than the account's): for a push, the
    records' fault, answered per record; for a pull, the run's end."""

    def __init__(self, response: ProviderResponse) -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response


class CrmRequests:
    def __init__(
        self,
        sender: Sender,
        store: SyncStore,
        *,
        owner: str,
        now: Callable[[], datetime],
        options: RunnerOptions,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sender = sender
        self._store = store
        self._owner = owner
        self._now = now
        self._options = options
        self._sleep = sleep

    def context(self, ctx: RunContext) -> RequestContext:
        """What an adapter's request builder gets (the run's id as its idempotency key)."""
        return RequestContext(
            idempotency_key=f"sync:{ctx.run.id}",
            tracking={},
            settings=ctx.connection.settings,
            credentials=ctx.connection.credentials,
            now_unix=int(time.time()),
        )

    async def send(self, ctx: RunContext, request: OutboundRequest) -> ProviderResponse:
        delay = self._options.backoff_s
        last: ActionFailed | None = None
        attempt = 0
        while attempt < self._options.attempts:
            sent = time.time()
            try:
                response = await self._sender.send(ctx.connection, request)
            except ActionFailed as exc:
                last = exc
                if not exc.retryable:
                    status = exc.details.get("status")
                    if isinstance(status, int) and status not in _FATAL_STATUSES:
                        raise RefusedRequest(_refused_response(status, exc)) from exc
                    raise SyncFailed(str(exc)) from exc
                wait = exc.retry_after_s if exc.retry_after_s is not None else delay
                if not exc.deferred:
                    attempt += 1
                    delay = min(delay * 2, self._options.max_backoff_s)
                if attempt >= self._options.attempts:
                    break
                await self._store.renew(ctx.run.id, self._owner, self._now() + self._options.lease)
                await self._sleep(min(wait, self._options.max_backoff_s))
                continue
            _note_skew(ctx, response, sent, time.time())
            return response
        raise SyncFailed(f"{ctx.provider}: {last} (after {self._options.attempts} attempts)")

    async def fetch(self, ctx: RunContext, request: OutboundRequest) -> ProviderResponse:
        """A pull's request: a refusal ends the run (the next one starts again from the
        cursor), since no single record is at fault."""
        try:
            return await self.send(ctx, request)
        except RefusedRequest as refused:
            body = str(refused.response.body)[:300]
            raise SyncFailed(
                f"{ctx.provider} refused the pull: HTTP {refused.response.status} {body}"
            ) from refused

    @staticmethod
    def read(
        ctx: RunContext,
        parse: Callable[[ProviderResponse], PullPage],
        response: ProviderResponse,
    ) -> PullPage:
        try:
            return parse(response)
        except (ClientError, ValueError, KeyError, TypeError) as exc:
            raise SyncFailed(f"{ctx.provider}: an answer the sync cannot read ({exc})") from exc

    @staticmethod
    def skew(ctx: RunContext) -> timedelta:
        """The CRM's clock minus ours, once measured (under a second: the header's
        resolution, taken as none)."""
        if not ctx.skews:
            return timedelta(0)
        skew = statistics.median(ctx.skews)
        return timedelta(seconds=skew) if abs(skew) > 1.0 else timedelta(0)


def _note_skew(ctx: RunContext, response: ProviderResponse, sent: float, received: float) -> None:
    header = response.headers.get("date")
    if not header:
        return
    try:
        remote = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return
    ctx.skews.append(remote - (sent + received) / 2)
    del ctx.skews[:-50]


def _refused_response(status: int, failure: ActionFailed) -> ProviderResponse:
    """The refusal as the adapter's ``parse_push`` reads answers (the executor keeps the
    first 2 KiB of the body, which holds the CRM's reason)."""
    text = str(failure.details.get("body", ""))
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return ProviderResponse(status, {}, body)
