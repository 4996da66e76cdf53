"""Running connector operations: the engine's executor for every ``provider.operation``.

One call, in order: check the parameters against the operation's model (nothing invalid is
sent); find the connection by name (cached for a few seconds, credentials from the secret
store); skip a message whose recipient is on the suppression list; put a marketing message
through the send-time policy (``compliance/send_gate.py``: consent, frequency caps, quiet
hours; skipped or deferred with the rule and why); reserve a slot on the account's rate
limit (waiting up to ``max_rate_wait`` seconds, else deferring the step); ask the
account's circuit breaker; build the request (pure, ``prepare``); send it over the one pooled
HTTP client; classify the answer; tell the breaker; record a sent message for its delivery
status. Every refusal is an :class:`ActionFailed` that says whether a retry could help, so the
engine's retry policy and dead-letter queue do the rest.

Error messages name the provider, the host and the status, never a credential or a URL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from campaignflow.domain.pydantic_problems import problems_from_error
from campaignflow.domain.send_policy import Defer, Skip
from campaignflow.engine.actions import ActionCall, ActionFailed
from campaignflow.engine.http_action import HttpAnswer, HttpExecutor
from campaignflow.errors import CampaignflowError, ClientError, NotFound
from campaignflow.integrations.connections import ConnectionResolver, ResolvedConnection
from campaignflow.integrations.connector import (
    Connector,
    Operation,
    OutboundRequest,
    ProviderResponse,
    RequestContext,
    classify_answer,
    message_channel,
)
from campaignflow.integrations.guards import OutboundGuards
from campaignflow.integrations.oauth_tokens import AccessTokens
from campaignflow.integrations.prepare import MissingCredential, PreparedRequest, prepare
from campaignflow.observability.metrics import BREAKERS

if TYPE_CHECKING:
    from campaignflow.compliance.send_gate import SendGate

logger = logging.getLogger(__name__)

DETAILS_BODY_CHARS = 2048


class SuppressionList(Protocol):
    async def suppressed(self, workspace_id: str, emails: list[str]) -> set[str]:
        """Which of ``emails`` may not be sent to (compared case-insensitively)."""
        ...


class DeliveryLog(Protocol):
    async def record_sent(
        self,
        *,
        workspace_id: str,
        send_id: str,
        execution_id: str,
        node_id: str,
        token: str,
        connection_id: str,
        provider: str,
        provider_message_id: str | None,
        at: datetime,
    ) -> None:
        """Note that a step sent a message, so webhooks can report on it."""
        ...


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    max_rate_wait: float = 5.0  # longer waits defer the step instead of holding the worker
    timeout_s: float = 10.0


def tracking_for(call: ActionCall) -> dict[str, str]:
    """What a message carries so the provider's webhooks name the step that sent it."""
    return {
        "cf_workspace": call.workspace_id,
        "cf_send": call.idempotency_key,
        "cf_execution": call.execution_id,
        "cf_node": call.node_id,
    }


class ConnectorExecutor:
    """The :class:`~campaignflow.engine.actions.ActionExecutor` of every connector operation."""

    def __init__(
        self,
        connectors: Mapping[str, Connector],
        connections: ConnectionResolver,
        guards: OutboundGuards,
        http: HttpExecutor,
        tokens: AccessTokens,
        *,
        suppressions: SuppressionList | None = None,
        deliveries: DeliveryLog | None = None,
        send_gate: SendGate | None = None,
        options: ExecutorOptions | None = None,
        now: Callable[[], datetime],
    ) -> None:
        self._connectors = connectors
        self._connections = connections
        self._guards = guards
        self._http = http
        self._tokens = tokens
        self._suppressions = suppressions
        self._deliveries = deliveries
        self._gate = send_gate
        self._options = options or ExecutorOptions()
        self._now = now

    async def execute(self, call: ActionCall) -> Any:
        provider, _, name = call.action.partition(".")
        connector = self._connectors.get(provider)
        if connector is None or name not in connector.operations:
            raise ActionFailed(f"no connector operation {call.action!r}", retryable=False)
        operation = connector.operations[name]
        params = _validated(operation, call)
        connection = await self._connection(call, connector)
        if operation.recipients is not None:
            skipped = await self._suppressed(call, operation.recipients(params))
            if skipped is not None:
                return skipped
            refused = await self._admit(call, message_channel(connector, operation))
            if refused is not None:
                return refused
        try:
            return await self._send(call, operation, params, connection)
        except ActionFailed as exc:
            if operation.recipients is not None:
                await self._unsent(call, exc)
            raise

    async def _send(
        self, call: ActionCall, operation: Operation, params: Any, connection: ResolvedConnection
    ) -> Any:
        context = RequestContext(
            idempotency_key=call.idempotency_key,
            tracking=tracking_for(call),
            settings=connection.settings,
            credentials=connection.credentials,
            now_unix=int(time.time()),
        )
        try:  # built before pacing: a request that cannot be built takes no slot
            request = operation.request(params, context)
        except ClientError as exc:  # the builder's own checks (CannotBuildRequest, …)
            raise ActionFailed(exc.message, retryable=False) from exc
        await self._pace(connection)
        answer = await self.exchange(connection, request, call)
        response = ProviderResponse(answer.status, answer.headers, answer.body)
        if operation.recipients is not None:
            await self._record_sent(call, connection, operation, response)
        return operation.output(response)

    async def _record_sent(
        self,
        call: ActionCall,
        connection: ResolvedConnection,
        operation: Operation,
        response: ProviderResponse,
    ) -> None:
        """Note the sent message for its delivery status. The provider has it by now: failing
        the step here would send it again on retry, so a failure to note it is only logged."""
        if self._deliveries is None:
            return
        message_id = (
            operation.provider_message_id(response) if operation.provider_message_id else None
        )
        try:
            await self._deliveries.record_sent(
                workspace_id=call.workspace_id,
                send_id=call.idempotency_key,
                execution_id=call.execution_id,
                node_id=call.node_id,
                token=call.token,
                connection_id=connection.record.id,
                provider=connection.connector.provider,
                provider_message_id=message_id,
                at=self._now(),
            )
        except CampaignflowError:
            logger.warning(
                "%s: message of step %s sent, but its delivery record could not be written",
                call.action,
                call.node_id,
                exc_info=True,
            )

    async def send(
        self, connection: ResolvedConnection, request: OutboundRequest
    ) -> ProviderResponse:
        """One request outside any workflow step (a CRM sync's pages and batches), paced by
        the account's rate limit and breaker like every action: the sync and the workflows
        calling one account share its limit. A failure is an :class:`ActionFailed`; a slot
        too far ahead is one with ``deferred`` set, for the caller to wait and try again."""
        await self._pace(connection)
        answer = await self.exchange(connection, request)
        return ProviderResponse(answer.status, answer.headers, answer.body)

    async def exchange(
        self, connection: ResolvedConnection, request: Any, call: ActionCall | None = None
    ) -> HttpAnswer:
        """Send one request of ``connection`` past its breaker; a 2xx answer or ActionFailed.
        (Also how the connections API tests a connection.)"""
        connector = connection.connector
        key = connection.record.id
        admission = await self._guards.admit(key, connector.breaker)
        BREAKERS.observe(connector.provider, key, admission.state.mode)
        if not admission.allowed:
            raise ActionFailed(
                f"{connector.provider}: calls are paused after repeated failures "
                "(circuit breaker open)",
                retryable=True,
                retry_after_s=admission.retry_after,
                details={"breaker": admission.state.mode},
            )
        try:
            prepared = await self._prepared(connection, request, call)
            answer = await self._http.send(
                prepared.method,
                prepared.url,
                headers=prepared.headers,
                body=prepared.body,
                timeout_s=self._options.timeout_s,
                labels=(connector.provider, _operation_of(call)),
            )
        except ActionFailed as exc:
            state = await self._guards.record(key, connector.breaker, success=not exc.retryable)
            BREAKERS.observe(connector.provider, key, state.mode)
            raise
        except BaseException:
            # Cancelled (a worker stopping) or a bug of ours: says nothing about the provider.
            # A half-open probe must still end, or its slot stays taken; ending it as a failure
            # is the cautious reading of "we do not know" (the breaker waits once more).
            if admission.state.mode == "half_open":
                await self._guards.record(key, connector.breaker, success=False)
            raise
        verdict = classify_answer(connector, answer.status, answer.body)
        state = await self._guards.record(
            key, connector.breaker, success=not verdict.breaker_failure
        )
        BREAKERS.observe(connector.provider, key, state.mode)
        if verdict.ok:
            return answer
        if answer.status == 401:
            self._tokens.forget(key)  # an expired or revoked OAuth token: fetch a new one next
        raise ActionFailed(
            f"{connector.provider}: HTTP {answer.status} from {prepared.host}",
            retryable=verdict.retryable,
            retry_after_s=self._http.retry_after(answer) if verdict.retryable else None,
            details={"status": answer.status, "body": answer.text[:DETAILS_BODY_CHARS]},
        )

    async def _prepared(
        self, connection: ResolvedConnection, request: Any, call: ActionCall | None
    ) -> PreparedRequest:
        connector = connection.connector
        token = await self._tokens.token_for(connection)
        try:
            return prepare(
                connector,
                request,
                base_url=connector.resolved_base_url(connection.settings, connection.credentials),
                credentials=connection.credentials,
                idempotency_key=call.idempotency_key if call is not None else None,
                access_token=token,
                settings=connection.settings,
                now_unix=int(time.time()),  # a signing scheme's clock (SigV4)
            )
        except MissingCredential as exc:
            raise ActionFailed(exc.message, retryable=False) from exc

    async def _connection(self, call: ActionCall, connector: Connector) -> ResolvedConnection:
        if not call.connection:
            raise ActionFailed(
                f"{call.action} needs a connection: name one in the node's config.connection",
                retryable=False,
            )
        try:
            connection = await self._connections.resolve(call.workspace_id, call.connection)
        except NotFound as exc:
            raise ActionFailed(
                f"no connection named {call.connection!r} in this workspace; create it with "
                "POST /api/v1/connections, then replay the step",
                retryable=False,
            ) from exc
        if connection.connector.provider != connector.provider:
            raise ActionFailed(
                f"connection {call.connection!r} is a {connection.connector.provider} "
                f"connection, not {connector.provider}",
                retryable=False,
            )
        return connection

    @property
    def send_gate(self) -> SendGate | None:
        return self._gate

    async def _admit(self, call: ActionCall, channel: str | None) -> Any:
        """The step output of a message the policy skips, None when it may go now; a deferral
        is an ActionFailed the engine parks the step on (logged ``deferred`` with the rule).
        Transactional messages meet only the suppression list."""
        if self._gate is None or channel is None or call.purpose != "marketing":
            return None
        verdict = (await self._gate.admit(call, channel)).verdict
        if isinstance(verdict, Skip):
            return {"sent": False, "skipped": verdict.rule, "reason": verdict.reason}
        if isinstance(verdict, Defer):
            wait = max(1.0, (verdict.until - self._now()).total_seconds())
            raise ActionFailed(
                f"deferred by the send-time policy ({verdict.rule}): {verdict.reason}",
                retryable=True,
                deferred=True,
                retry_after_s=wait,
                details={
                    "policy": {
                        "rule": verdict.rule,
                        "reason": verdict.reason,
                        "until": verdict.until.isoformat(),
                    }
                },
            )
        return None

    async def _unsent(self, call: ActionCall, failure: ActionFailed) -> None:
        """Give back the frequency-cap slot of a message that was not sent: refused for good,
        or held back on our side (rate limit, breaker; the retry takes a slot again). A
        retryable failure of the request itself keeps it: the provider may have the message
        (a timeout, a 5xx), and the retry, with the same send id, counts once."""
        if self._gate is None or call.purpose != "marketing":
            return
        ours = failure.deferred or "breaker" in failure.details
        if failure.retryable and not ours:
            return
        try:
            await self._gate.release(call)
        except CampaignflowError:
            logger.warning("could not release the cap slot of step %s", call.node_id, exc_info=True)

    async def _suppressed(self, call: ActionCall, recipients: list[str]) -> Any:
        if self._suppressions is None or not recipients:
            return None
        blocked = await self._suppressions.suppressed(call.workspace_id, recipients)
        if not blocked:
            return None
        return {"sent": False, "skipped": "suppressed", "suppressedRecipients": len(blocked)}

    async def _pace(self, connection: ResolvedConnection) -> None:
        limits = connection.connector.limits_for(connection.settings)
        slot = await self._guards.reserve(connection.record.id, limits, self._options.max_rate_wait)
        if not slot.granted:
            raise ActionFailed(
                f"{connection.connector.provider}: the account's rate limit is taken for the "
                "next seconds; deferred",
                retryable=True,
                deferred=True,
                retry_after_s=slot.wait + self._options.max_rate_wait,
                details={"rateLimit": limits.requests_per_minute},
            )
        if slot.wait > 0:
            await asyncio.sleep(slot.wait)


def _operation_of(call: ActionCall | None) -> str:
    """The metrics' operation label: the step's operation; ``direct`` for requests outside a
    step (a CRM sync's pages, a connection test)."""
    return call.action.partition(".")[2] if call is not None else "direct"


def _validated(operation: Operation, call: ActionCall) -> Any:
    try:
        return operation.params.model_validate(dict(call.params))
    except ValidationError as exc:
        problems = problems_from_error(exc, dict(call.params), prefix=("params",))
        raise ActionFailed(
            f"invalid parameters for {call.action}: "
            + "; ".join(f"{problem.pointer}: {problem.message}" for problem in problems[:5]),
            retryable=False,
            details={"problems": [problem.to_dict() for problem in problems]},
        ) from exc
