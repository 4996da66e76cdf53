"""Assembling the engine from its parts, the same way for the API, the worker and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from campaignflow.bus.events import EventBus
from campaignflow.bus.in_process import InProcessBus
from campaignflow.bus.step_feed import StepFeed
from campaignflow.bus.step_feed_memory import InProcessStepFeed
from campaignflow.bus.wakeup import Wakeup, wakeup_for
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.clock import Clock, SystemClock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.engine.feed_observer import StepFeedObserver
from campaignflow.engine.http_action import HttpExecutor
from campaignflow.engine.interpreter import Interpreter
from campaignflow.engine.observers import BatchObserver
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.worker import Worker, database_lanes
from campaignflow.observability.engine_metrics import MetricsObserver, timed_executors
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.services.executions import ExecutionService
from campaignflow.services.ingest import IngestLimits, IngestService
from campaignflow.store.admission import AdmissionStore
from campaignflow.store.contacts import ContactStore
from campaignflow.store.database import Database
from campaignflow.store.dead_letters import DeadLetterStore
from campaignflow.store.deliveries import DeliveryStore
from campaignflow.store.erasure import ErasedIdentities
from campaignflow.store.events import EventStore
from campaignflow.store.executions import ExecutionStore
from campaignflow.store.task_queue import TaskQueue
from campaignflow.store.ticks import TickStore
from campaignflow.store.workflows import WorkflowStore
from campaignflow.triggers.batch import BatchStores
from campaignflow.triggers.fanout import FanOutStores
from campaignflow.triggers.router import EventRouter, RouterOptions
from campaignflow.triggers.scheduler import SchedulerOptions, TimeScheduler


@dataclass(frozen=True, slots=True)
class Engine:
    """What the API and a worker in one process share: one store, one cache, one wake-up."""

    database: Database
    workflows: WorkflowStore
    executions: ExecutionStore
    queue: TaskQueue
    dead_letters: DeadLetterStore
    compiled: CompiledWorkflows
    wakeup: Wakeup
    clock: Clock
    bus: EventBus
    contacts: ContactStore
    # The erased-identity list every ingestion path consults (the API, provider webhooks, a
    # CRM sync's publishing): an erased person's events are dropped wherever they come from.
    erased: ErasedIdentities
    # Who sees each committed batch of this process's workers (metrics, the live step feed).
    observers: tuple[BatchObserver, ...] = ()
    # Where this process's workers publish their steps and its API subscribes (SSE, GraphQL):
    # in-process in the embedded mode, Redis when workers and API run apart.
    feed: StepFeed = field(default_factory=InProcessStepFeed)

    @classmethod
    def on(
        cls,
        database: Database,
        *,
        contact_cipher: ContactCipher,
        clock: Clock | None = None,
        wakeup: Wakeup | None = None,
        bus: EventBus | None = None,
        observers: tuple[BatchObserver, ...] = (),
        feed: StepFeed | None = None,
    ) -> Engine:
        """``contact_cipher`` seals the sensitive fields of contacts, executions and events
        (required: there is no plaintext mode; build it with ``contact_cipher_from``)."""
        workflows = WorkflowStore(database)

        async def load(workspace: str, workflow: str, version: int) -> dict[str, Any]:
            return (await workflows.get_version(workspace, workflow, version)).definition

        step_feed = feed or InProcessStepFeed()
        return cls(
            database,
            workflows,
            ExecutionStore(database, contact_cipher),
            TaskQueue(database, contact_cipher),
            DeadLetterStore(database),
            CompiledWorkflows(load),
            wakeup or wakeup_for(database),
            clock or SystemClock(),
            bus or InProcessBus(),
            ContactStore(database, contact_cipher),
            ErasedIdentities(database, contact_cipher),
            # every engine feeds the Prometheus metrics (and the live step feed)
            (MetricsObserver(), StepFeedObserver(step_feed), *observers),
            step_feed,
        )

    def service(self) -> ExecutionService:
        return ExecutionService(
            self.workflows,
            self.executions,
            self.dead_letters,
            self.compiled,
            self.wakeup,
            self.clock,
            DeliveryStore(self.database),
        )

    def worker(self, executors: ExecutorRegistry, options: WorkerOptions | None = None) -> Worker:
        options = options or WorkerOptions()
        lanes = database_lanes(self.database, options.lanes)
        if lanes != options.lanes:
            options = WorkerOptions(options.batch_size, lanes, options.lease, options.max_idle)
        return Worker(
            self.queue,
            self.compiled,
            Interpreter(timed_executors(executors, self.observers)),
            self.wakeup,
            self.clock,
            options=options,
            observers=self.observers,
        )

    def ingest(self, limits: IngestLimits | None = None) -> IngestService:
        return IngestService(self.bus, self.clock, limits, self.erased)

    def router(self, consumer: str, options: RouterOptions | None = None) -> EventRouter:
        dialect = self.database.dialect
        stores = BatchStores(
            events=EventStore(dialect, self.contacts.cipher),
            contacts=self.contacts,
            admission=AdmissionStore(dialect),
            executions=self.executions,
            compiled=self.compiled,
        )
        return EventRouter(
            self.database,
            self.bus,
            stores,
            self.wakeup,
            self.clock,
            consumer=consumer,
            options=options,
        )

    def scheduler(self, owner: str, options: SchedulerOptions | None = None) -> TimeScheduler:
        """A time-trigger scheduler; ``owner`` names it in the leases of its fan-outs."""
        stores = FanOutStores(
            TickStore(self.database),
            AdmissionStore(self.database.dialect),
            self.executions,
            self.contacts,
        )
        return TimeScheduler(
            self.database,
            stores,
            self.compiled,
            self.wakeup,
            self.clock,
            owner=owner,
            options=options,
        )


def builtin_executors() -> tuple[ExecutorRegistry, HttpExecutor]:
    """The executors every worker has (``http``); close the returned client at shutdown."""
    http = HttpExecutor()
    return ExecutorRegistry().with_executor("http", http), http
