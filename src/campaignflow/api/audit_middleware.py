"""The audit middleware (pure ASGI): records audited requests before their answer leaves.

Which requests are audited and how they are named is :mod:`campaignflow.security.audit_policy`.
The route is known only after routing, so the decision is taken when the app starts its
response: the ``http.response.start`` message is held, the entry is recorded (durably, through
the group-committing :class:`~campaignflow.services.audit.AuditWriter`), then the response goes.

Who: the :class:`~campaignflow.security.principal.Principal` the auth dependency puts on
``request.state.principal``. A request without one (an unknown credential: 401) has no
workspace, hence no chain to join: it becomes a structured warning in the logs instead (method,
path, status, address, request id — never the credential).

When recording fails: a successful read of personal data is replaced by a 503 (the data is not
disclosed unrecorded); any other answer still goes out — a mutation has already committed, and
a 5xx would invite a client to repeat it — and the entry is logged at error level in full.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from http import HTTPStatus
from typing import Any, Protocol

import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaignflow.api.problems import problem_response
from campaignflow.engine.clock import Clock, SystemClock
from campaignflow.security.audit_chain import AuditEvent
from campaignflow.security.audit_policy import (
    PERSONAL_DATA_READS,
    AuditTarget,
    GraphQLOperation,
    is_audited,
    is_graphql,
    may_be_audited,
    outcome,
    target,
)
from campaignflow.security.principal import Principal
from campaignflow.services.audit import AuditService, AuditWriter
from campaignflow.store.audit import AuditStore
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id

logger = structlog.get_logger(__name__)

# Column widths of audit_log: longer values are cut so an entry is never refused.
_MAX_PATH = 2000
_MAX_USER_AGENT = 500
_MAX_ID = 200
_MAX_SHORT = 64


class AuditRecorder(Protocol):
    async def record(self, event: AuditEvent) -> object: ...


def _clean(value: str | None, limit: int) -> str | None:
    """Cut to the column; replace U+0000 (PostgreSQL refuses it in text) and lone surrogates
    (not encodable): one unstorable entry would fail every entry of its batch."""
    if value is None:
        return None
    return value.encode("utf-8", "replace").decode().replace("\x00", "\ufffd")[:limit]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class AuditMiddleware:
    """``recorder`` is called per request: the writer is built in the app's lifespan, after the
    middleware stack."""

    def __init__(
        self, app: ASGIApp, *, recorder: Callable[[], AuditRecorder], clock: Clock | None = None
    ) -> None:
        self.app = app
        self._recorder = recorder
        self._clock = clock or SystemClock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not may_be_audited(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self._recorder(), scope, receive, send, self._clock.now())
        try:
            await self.app(scope, receive, exchange.send)
        except Exception:
            if not exchange.started:
                await exchange.record(HTTPStatus.INTERNAL_SERVER_ERROR, None)
            raise


class _Exchange:
    """One audited request: holds its response start until its entry is recorded."""

    def __init__(
        self,
        recorder: AuditRecorder,
        scope: Scope,
        receive: Receive,
        send: Send,
        arrived_at: datetime,
    ) -> None:
        self._recorder = recorder
        self._scope = scope
        self._receive = receive
        self._send = send
        self._arrived_at = arrived_at
        self._state: dict[str, Any] = scope.setdefault("state", {})
        self._state.setdefault("request_id", self._request_id())
        self.started = False
        self._replaced = False

    def _request_id(self) -> str:
        given = _clean(_header(self._scope, b"x-request-id"), _MAX_SHORT)
        return given if given and given.isprintable() else new_id()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and not self.started:
            self.started = True
            recorded = await self.record(message["status"], message)
            if not recorded and self._fails_closed(message["status"]):
                self._replaced = True
                await self._refuse()
                return
        elif self._replaced:
            return
        await self._send(message)

    async def record(self, status: int, start: Message | None) -> bool:
        """Record the request if the policy audits it; ``False`` only when recording failed."""
        event = self._event(status, start)
        if event is None:
            return True
        try:
            await self._recorder.record(event)
        except Exception as exc:
            logger.error("audit.record_failed", error=repr(exc), **_log_fields(event))
            return False
        return True

    def _fails_closed(self, status: int) -> bool:
        route = self._scope.get("route")
        operation = self._state.get("graphql_operation")
        if isinstance(operation, GraphQLOperation):  # a GraphQL read of personal data
            return operation.personal and not operation.failed and not operation.denied
        return status < 400 and getattr(route, "name", None) in PERSONAL_DATA_READS

    async def _refuse(self) -> None:
        response = problem_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "audit-unavailable",
            "This read could not be recorded in the audit log, so nothing was disclosed.",
            instance=self._scope["path"],
            headers={"Retry-After": "1"},
        )
        await response(self._scope, self._receive, self._send)

    def _event(self, status: int, start: Message | None) -> AuditEvent | None:
        scope = self._scope
        method, path = scope["method"], scope["path"]
        route_name = getattr(scope.get("route"), "name", None)
        decided = self._decide(method, path, route_name, status)
        if decided is None:
            return None
        what, result = decided
        principal = self._state.get("principal")
        if not isinstance(principal, Principal):
            logger.warning(
                "audit.unattributed",
                method=method,
                path=_clean(path, _MAX_PATH),
                status=status,
                ip=self._client_ip(),
                request_id=self._state["request_id"],
            )
            return None
        details = dict(what.details or {})
        location = _header(start, b"location") if start is not None else None
        if location is not None:
            details["location"] = location
        return AuditEvent(
            workspace_id=principal.workspace_id,
            id=new_id(),
            occurred_at=self._arrived_at,
            actor_id=_clean(principal.subject, _MAX_ID),
            credential=_clean(principal.credential.label, 100),
            action=what.action[:100],
            resource_type=_clean(what.resource_type, _MAX_SHORT),
            resource_id=_clean(what.resource_id, _MAX_ID),
            method=method[:10],
            path=_clean(path, _MAX_PATH) or "",
            status=status,
            outcome=result,
            ip=self._client_ip(),
            user_agent=_clean(_header(scope, b"user-agent"), _MAX_USER_AGENT),
            request_id=self._state["request_id"],
            details={key: _clean(value, _MAX_PATH) or "" for key, value in details.items()} or None,
        )

    def _decide(
        self, method: str, path: str, route_name: str | None, status: int
    ) -> tuple[AuditTarget, str] | None:
        """What to record and its outcome; ``None`` when the request is not audited. A GraphQL
        request is named by the operation its view recorded (its HTTP status is always 200)."""
        if is_graphql(path):
            operation = self._state.get("graphql_operation")
            if not isinstance(operation, GraphQLOperation) or not operation.audited:
                return None
            return operation.target(), operation.outcome(status)
        if not is_audited(method, path, route_name, status):
            return None
        what = target(method, path, route_name, self._scope.get("path_params") or {})
        return what, outcome(status)

    def _client_ip(self) -> str | None:
        given = self._state.get("client_ip")
        if given is None and self._scope.get("client"):
            given = self._scope["client"][0]
        return _clean(str(given), _MAX_SHORT) if given is not None else None


def _log_fields(event: AuditEvent) -> dict[str, Any]:
    """The entry, for the error log that stands in for it when the database refused it."""
    return {
        "workspace_id": event.workspace_id,
        "audit_id": event.id,
        "occurred_at": event.occurred_at.isoformat(),
        "actor_id": event.actor_id,
        "credential": event.credential,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "method": event.method,
        "path": event.path,
        "status": event.status,
        "outcome": event.outcome,
        "ip": event.ip,
        "request_id": event.request_id,
    }


def install_audit(app: FastAPI) -> None:
    """Wire the audit log into ``app``: the writer starts after the app's own start-up (it needs
    ``app.state.database``) and is flushed and stopped before the database closes; the
    middleware is added outermost of the middleware installed so far, so it sees their answers
    too (install it last)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        async with inner(app_):  # create_app's lifespan yields no state
            database: Database = app_.state.database
            store = AuditStore(database)
            writer = AuditWriter(store)
            await writer.start()
            app_.state.audit_writer = writer
            app_.state.audit = AuditService(store)
            try:
                yield
            finally:
                await writer.aclose()

    app.router.lifespan_context = lifespan
    app.add_middleware(AuditMiddleware, recorder=lambda: app.state.audit_writer)
