"""Right to erasure, orchestrated: a worker loop that carries erasure jobs to the end.

One job: claim (lease) → resolve the subject to contacts and identities (sealed in the job) →
write the erased-identity digests (ingestion drops the person's events from then on) → remove
the person's entries from the Redis ingestion stream → delete their rows in bounded batches →
propagate to connected providers (optional) → finish. Every step is idempotent, so a job whose
worker died is claimed again and runs from the top, doing only what is left; a ``partial`` job
(a provider could not be reached) is claimed again later for the providers that failed, up to
``max_attempts``.

The job, its errors and this module's logs never name the person: only job and contact ids.
Each provider call of the propagation that was answered is a disclosure of an identifier to
that provider, recorded in the records of processing (activity ``erasure.propagated``) for each
of the job's contacts: the only processing-log rows of an erased person, which erasure keeps
(:data:`~campaignflow.store.personal_data.PERSONAL_DATA`) as the proof of propagation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from campaignflow.compliance.processing import ProcessingWriter
from campaignflow.domain.contacts import normalize_email
from campaignflow.domain.events import Event, decode_events, encode_events
from campaignflow.domain.processing import Activity, ProcessingEntry, Purpose, recipient_of
from campaignflow.engine.actions import ActionFailed
from campaignflow.errors import CampaignflowError, LeaseLost, StorageError
from campaignflow.integrations.connections import ConnectionResolver, ResolvedConnection
from campaignflow.integrations.connector import OutboundRequest, ProviderResponse, RequestContext
from campaignflow.integrations.providers.mailchimp_marketing import find_member_lists_output
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.store.connections import ConnectionRecord, ConnectionStore
from campaignflow.store.database import Database
from campaignflow.store.erasure import ErasureJob, ErasureStore, Identities
from campaignflow.store.personal_data import Person
from campaignflow.store.processing_log import ProcessingLogStore
from campaignflow.store.workflows import utc_now

if TYPE_CHECKING:
    from campaignflow.config import Settings
    from campaignflow.integrations.runtime import Integrations

logger = logging.getLogger(__name__)

PAGE = 500  # stream entries per XRANGE


@dataclass(frozen=True, slots=True)
class ErasureOptions:
    lease: timedelta = timedelta(minutes=2)
    batch: int = 500  # rows per delete transaction
    max_attempts: int = 5  # attempts at a job whose propagation keeps failing
    retry_after: timedelta = timedelta(minutes=5)  # before a partial job is tried again
    idle_seconds: float = 1.0


class StreamCleaner(Protocol):
    async def remove(self, person: Person) -> int:
        """Remove the person's events from the event stream; how many were removed."""
        ...

    async def aclose(self) -> None: ...


class Propagator(Protocol):
    async def propagate(self, job: ErasureJob, identities: Identities) -> dict[str, Any]:
        """Ask each connected provider that can to delete or suppress the person; the
        outcome per connection (``job.propagation``: the outcomes of an earlier attempt, whose
        successes are not repeated)."""
        ...


class NoStream:
    """The in-process bus holds events in memory only until routed: nothing to clean."""

    async def remove(self, person: Person) -> int:
        return 0

    async def aclose(self) -> None:
        return None


# --------------------------------------------------------------------------- Redis streams


def names_person(event: Event, person: Person) -> bool:
    """Whether an event is about the person: by userId, anonymousId (or an alias's
    previousId), the address in ``traits``/``context.traits``, or any of their identity values
    anywhere in it (a phone in properties, an address in a webhook's payload)."""
    ids = {*person.user_ids, *person.anonymous_ids}
    if ids.intersection((event.user_id, event.anonymous_id, event.previous_id)):
        return True
    emails = set(person.emails)
    for traits in (event.traits, event.context.get("traits")):
        if isinstance(traits, dict) and normalize_email(traits.get("email")) in emails:
            return True
    raw = msgspec.json.encode(event).decode("utf-8", "replace").casefold()
    return any(value.casefold() in raw for value in person.identity_values if len(value) > 3)


class RedisStreamCleaner:
    """Removes the person's events from the ingestion stream's shards: entries still waiting
    to be routed, or delivered to a router that has not acknowledged them. An entry holding
    only their events is deleted; one that also holds others' is replaced by an entry of the
    others' (appended to the same shard, so they are still routed) and then deleted."""

    def __init__(
        self, client: Redis, *, prefix: str, shards: int, owns_client: bool = False
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        self._streams = [f"{prefix}:events:{shard}" for shard in range(shards)]

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def remove(self, person: Person) -> int:
        removed = 0
        try:
            for stream in self._streams:
                removed += await self._clean(stream, person)
        except redis_exceptions.RedisError as exc:
            raise StorageError(f"The event stream could not be cleaned: {exc}") from exc
        return removed

    async def _clean(self, stream: str, person: Person) -> int:
        removed, start = 0, "-"
        while True:
            reply: Any = await self._client.xrange(stream, min=start, max="+", count=PAGE)
            entries: list[tuple[bytes, dict[bytes, bytes]]] = list(reply or [])
            for entry_id, fields in entries:
                removed += await self._clean_entry(stream, entry_id, fields, person)
            if len(entries) < PAGE:
                return removed
            start = "(" + _text(entries[-1][0])

    async def _clean_entry(
        self, stream: str, entry_id: bytes, fields: Mapping[bytes, bytes], person: Person
    ) -> int:
        payload = fields.get(b"p")
        if payload is None:
            return 0
        events = decode_events(payload)
        kept = [event for event in events if not names_person(event, person)]
        if len(kept) == len(events):
            return 0
        if kept:
            await self._client.xadd(stream, {"p": encode_events(kept)})
        await self._client.xdel(stream, entry_id)
        return len(events) - len(kept)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --------------------------------------------------------------------------- propagation


class Sender(Protocol):
    """The connector executor's paced, breaker-guarded send (``ConnectorExecutor.send``)."""

    async def send(
        self, connection: ResolvedConnection, request: OutboundRequest
    ) -> ProviderResponse: ...


Plan = list[tuple[str, dict[str, Any]]]  # (operation, params by their camelCase names)
Answered = list[tuple[str, int]]  # (operation, HTTP status) of the calls a provider answered


def _hubspot(emails: list[str], remote: list[str]) -> Plan:
    if remote:  # the linked record, whatever its address is now
        return [("gdpr_delete", {"objectId": r}) for r in remote]
    return [("gdpr_delete", {"email": e}) for e in emails]


# provider -> the operations that delete or suppress the person (emails, linked CRM ids).
_PLANS: dict[str, Callable[[list[str], list[str]], Plan]] = {
    "sendgrid": lambda emails, _: [("suppress_global", {"emails": emails})] if emails else [],
    "mailchimp_transactional": lambda emails, _: [
        ("reject_add", {"email": e, "comment": "erasure"}) for e in emails
    ],
    "mailchimp_marketing": lambda emails, _: [
        ("delete_member_permanently", {"email": e}) for e in emails
    ],
    "pipedrive": lambda _, remote: [
        ("delete_person", {"id": int(r)}) for r in remote if r.isdigit()
    ],
    "hubspot": _hubspot,
}


def erasure_plan(provider: str, connection_id: str, identities: Identities) -> Plan | None:
    """What to ask a provider for the person: the operations and their parameters; ``None``
    when the provider cannot delete or suppress anyone, ``[]`` when it holds nothing of the
    person that we know of. Mailchimp Marketing's audiences are listed first (see
    :meth:`ConnectorPropagator._one`)."""
    plan = _PLANS.get(provider)
    if plan is None:
        return None
    remote = [r for c, r in identities.links if c == connection_id]
    return plan(list(identities.emails), remote)


class ConnectorPropagator:
    """Asks each connection of the workspace whose provider can delete or suppress the person
    to do so, through the connector executor (so the account's rate limit and breaker apply).
    A provider that answers 404 no longer has the person: that counts as done. Outcomes never
    carry the provider's answer body (it may repeat the address): only its status.

    Every call the provider answered (2xx, or 404) is written to ``records`` at once, one entry
    per contact of the job (an erasure that found no contact has only the job as its record):
    activity ``erasure.propagated``, purpose ``erasure`` (legal obligation, Art. 17(2), 19),
    recipient ``<provider> (<connection>)``, details the job, connection, operation and status,
    never an identity. A failed write stops the job like any storage error; it is resumed, and
    its calls (deletions, idempotent) are made and recorded again."""

    def __init__(
        self,
        connections: ConnectionStore,
        resolver: ConnectionResolver,
        sender: Sender,
        *,
        records: ProcessingWriter,
        now: Callable[[], datetime],
    ) -> None:
        self._connections = connections
        self._resolver = resolver
        self._sender = sender
        self._records = records
        self._now = now

    async def propagate(self, job: ErasureJob, identities: Identities) -> dict[str, Any]:
        outcomes = dict(job.propagation)
        for record in await self._connections.list(job.workspace_id, limit=1000):
            plan = erasure_plan(record.provider, record.id, identities)
            if plan is None or outcomes.get(record.id, {}).get("outcome") == "ok":
                continue
            answered: Answered = []
            outcomes[record.id] = await self._one(record, plan, answered)
            await self._record(job, record, answered)
        return outcomes

    async def _one(
        self, record: ConnectionRecord, plan: Plan, answered: Answered
    ) -> dict[str, Any]:
        outcome: dict[str, Any] = {"provider": record.provider, "name": record.name}
        if not plan:
            return {**outcome, "outcome": "skipped", "detail": "nothing of the person there"}
        try:
            connection = await self._resolver.complete(record)
            if record.provider == "mailchimp_marketing":
                plan = await self._each_audience(connection, plan, answered)
            for operation, params in plan:
                await self._call(connection, operation, params, answered)
        except ActionFailed as exc:
            status = exc.details.get("status")
            detail = f"HTTP {status}" if status else "the provider could not be reached"
            return {**outcome, "outcome": "failed", "detail": detail}
        except CampaignflowError as exc:
            return {**outcome, "outcome": "failed", "detail": type(exc).__name__}
        return {**outcome, "outcome": "ok", "requests": len(plan)}

    async def _call(
        self,
        connection: ResolvedConnection,
        operation: str,
        params: Mapping[str, Any],
        answered: Answered,
    ) -> ProviderResponse | None:
        """One operation, noted in ``answered``; ``None`` when the provider answered 404 (it
        has no such record)."""
        op = connection.connector.operations[operation]
        context = RequestContext(
            idempotency_key=f"erasure:{connection.record.id}:{operation}",
            tracking={},
            settings=connection.settings,
            credentials=connection.credentials,
            now_unix=int(time.time()),
        )
        request = op.request(op.params.model_validate(dict(params)), context)
        try:
            response = await self._sender.send(connection, request)
        except ActionFailed as exc:
            if exc.details.get("status") == HTTPStatus.NOT_FOUND:
                answered.append((operation, HTTPStatus.NOT_FOUND))
                return None
            raise
        answered.append((operation, response.status))
        return response

    async def _record(self, job: ErasureJob, record: ConnectionRecord, answered: Answered) -> None:
        at = self._now()
        await self._records.add(
            [
                ProcessingEntry.of(
                    workspace_id=job.workspace_id,
                    contact_id=contact_id,
                    occurred_at=at,
                    activity=Activity.ERASURE_PROPAGATED,
                    purpose=Purpose.ERASURE,
                    recipient=recipient_of(record.provider, record.name),
                    details={
                        "erasure": job.id,
                        "connection": record.id,
                        "operation": operation,
                        "status": int(status),
                    },
                )
                for operation, status in answered
                for contact_id in job.contact_ids
            ]
        )

    async def _each_audience(
        self, connection: ResolvedConnection, plan: Plan, answered: Answered
    ) -> Plan:
        """Mailchimp Marketing: the delete in each audience the address is a member of."""
        planned: Plan = []
        for operation, params in plan:
            email = {"email": params["email"]}
            found = await self._call(connection, "find_member_lists", email, answered)
            lists = [] if found is None else find_member_lists_output(found)["listIds"]
            planned += [(operation, {**params, "listId": list_id}) for list_id in lists]
        return planned


# --------------------------------------------------------------------------- the runner


@dataclass
class ErasureRunner:
    """Carries one claimed job through every step (see the module docstring)."""

    store: ErasureStore
    stream: StreamCleaner
    propagator: Propagator | None
    owner: str
    now: Callable[[], datetime]
    options: ErasureOptions = field(default_factory=ErasureOptions)

    async def run(self, job: ErasureJob) -> ErasureJob:
        job = await self.store.resolve(job, self.owner)
        person = self.store.person(job)
        remembered = 0
        if job.options.get("suppress", True):
            remembered = await self.store.remember(job, person, self.now())
        streamed = await self.stream.remove(person)
        stats = await self.store.erase(job, self.owner, person, self.now(), self.options.batch)
        stats["erasedIdentitiesAdded"] = stats.get("erasedIdentitiesAdded", 0) + remembered
        stats["streamEvents"] = stats.get("streamEvents", 0) + streamed
        propagation = dict(job.propagation)
        if job.options.get("propagate") and self.propagator is not None:
            identities = self.store.identities_of(job)
            propagation = await self.propagator.propagate(job, identities)
        return await self._finish(job, stats, propagation)

    async def _finish(
        self, job: ErasureJob, stats: dict[str, Any], propagation: dict[str, Any]
    ) -> ErasureJob:
        failed = sorted(k for k, v in propagation.items() if v.get("outcome") == "failed")
        now = self.now()
        status, error, retry_at = "succeeded", None, None
        if failed:
            status = "partial"
            error = "propagation failed for connection(s) " + ", ".join(failed)
            if job.attempts < self.options.max_attempts:
                retry_at = now + self.options.retry_after
        await self.store.finish(
            job,
            self.owner,
            status=status,
            stats=stats,
            propagation=propagation,
            error=error,
            now=now,
            retry_at=retry_at,
        )
        logger.info(
            "erasure finished",
            extra={"erasure_id": job.id, "status": status, "contacts": len(job.contact_ids)},
        )
        return await self.store.get(job.workspace_id, job.id)


class ErasureWorker:
    """Claims erasure jobs and runs them, one at a time, until cancelled."""

    def __init__(self, runner: ErasureRunner) -> None:
        self._runner = runner

    async def run_once(self) -> bool:
        """Carry one job if there is one; whether there was."""
        runner = self._runner
        options = runner.options
        job = await runner.store.claim(
            runner.owner, runner.now(), options.lease, max_attempts=options.max_attempts
        )
        if job is None:
            return False
        try:
            await runner.run(job)
        except LeaseLost:
            logger.warning("erasure %s was taken over by another worker", job.id)
        except CampaignflowError:
            # The job keeps its lease until it expires, then another attempt resumes it.
            logger.exception("erasure %s stopped; it will be resumed", job.id)
        return True

    async def run_until_cancelled(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except Exception:  # a bug in one round must not end erasures for the process
                logger.exception("erasure worker: a round failed; trying again")
                busy = False
            if not busy:
                await asyncio.sleep(self._runner.options.idle_seconds)


@dataclass
class ErasureLoop:
    """The erasure worker of a process, as a task, with the stream cleaner it opened."""

    task: asyncio.Task[None]
    stream: StreamCleaner

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.stream.aclose()


def start_erasures(
    database: Database,
    cipher: ContactCipher,
    settings: Settings,
    integrations: Integrations | None,
    *,
    owner: str,
) -> ErasureLoop:
    """Run erasure jobs in this process (``worker``, and ``up``'s embedded worker):
    propagation goes through ``integrations``' connector executor."""
    stream = stream_cleaner_for(
        settings.redis_url, prefix=settings.events.stream_prefix, shards=settings.events.shards
    )
    propagator = None
    if integrations is not None:
        propagator = ConnectorPropagator(
            integrations.connections,
            integrations.resolver,
            integrations.executor,
            records=ProcessingLogStore(database),
            now=utc_now,
        )
    runner = ErasureRunner(ErasureStore(database, cipher), stream, propagator, owner, utc_now)
    task = asyncio.create_task(ErasureWorker(runner).run_until_cancelled(), name="erasures")
    return ErasureLoop(task, stream)


async def stop_erasures(loop: ErasureLoop | None) -> None:
    if loop is not None:
        await loop.stop()


def stream_cleaner_for(redis_url: str | None, *, prefix: str, shards: int) -> StreamCleaner:
    """The cleaner of the configured bus: Redis Streams when ``redis_url`` is set."""
    if redis_url is None:
        return NoStream()
    return RedisStreamCleaner(
        Redis.from_url(redis_url), prefix=prefix, shards=shards, owns_client=True
    )
