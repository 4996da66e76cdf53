"""The time-trigger scheduler on a real database (each dialect), with a clock the test moves:
each tick fires once across schedulers, a fan-out interrupted mid-way is finished by another
scheduler without starting anyone twice, and relativeTo moments are due at the right instant."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from campaignflow.bus.in_process import InProcessBus
from campaignflow.bus.wakeup import InProcessWakeup
from campaignflow.config import Settings
from campaignflow.domain.contacts import ContactRecord, NewContact
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.model import ExecutionRecord
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.runtime import Engine
from campaignflow.services.triggers import TriggerService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.admission import AdmissionStore
from campaignflow.store.contacts import ContactStore
from campaignflow.store.database import Database
from campaignflow.store.executions import ExecutionStore
from campaignflow.store.tables import tasks, trigger_ticks
from campaignflow.store.ticks import TickStore
from campaignflow.store.triggers import TriggerStore
from campaignflow.store.workflows import WorkflowStore
from campaignflow.triggers.fanout import FanOutStores
from campaignflow.triggers.scheduler import (
    SchedulerOptions,
    TimeScheduler,
    start_scheduler,
    stop_scheduler,
)
from tests._support.ciphers import contact_cipher

WORKSPACE = "acme"
OTHER = "other"
START = datetime(2026, 3, 27, 6, 0, tzinfo=UTC)  # 07:00 in Berlin (CET)
NINE_BERLIN = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
DAILY_NINE = {"type": "time", "cron": "0 9 * * *", "timezone": "Europe/Berlin"}
OPTIONS = SchedulerOptions(page_size=3, lease=timedelta(seconds=30))
_users = itertools.count(1)


@dataclass
class Scheduling:
    engine: Engine
    clock: ManualClock
    workflows: WorkflowService

    @property
    def database(self) -> Database:
        return self.engine.database

    def scheduler(
        self,
        owner: str = "a",
        *,
        database: Database | None = None,
        executions: ExecutionStore | None = None,
    ) -> TimeScheduler:
        """A scheduler as another worker would run it: its own caches (and, optionally, its
        own connection pool and execution store)."""
        database = database or self.database
        engine = Engine.on(
            database, clock=self.clock, wakeup=InProcessWakeup(), contact_cipher=contact_cipher()
        )
        stores = FanOutStores(
            TickStore(database),
            AdmissionStore(database.dialect),
            executions or ExecutionStore(database, contact_cipher()),
            ContactStore(database, contact_cipher()),
        )
        return TimeScheduler(
            database,
            stores,
            engine.compiled,
            engine.wakeup,
            self.clock,
            owner=owner,
            options=OPTIONS,
        )

    async def deploy(self, definition: Mapping[str, Any], workspace: str = WORKSPACE) -> str:
        record = await self.workflows.create(workspace, dict(definition))
        await self.workflows.activate(workspace, record.id)
        return record.id

    async def contacts(
        self, count: int, workspace: str = WORKSPACE, **traits: Any
    ) -> list[ContactRecord]:
        store = self.engine.contacts
        return [
            await store.create(
                NewContact(workspace, user_id=f"user-{next(_users)}", traits=traits),
                self.clock.now(),
            )
            for _ in range(count)
        ]

    async def contact(
        self, user_id: str, *, timezone: str | None = None, **traits: Any
    ) -> ContactRecord:
        new = NewContact(WORKSPACE, user_id=user_id, timezone=timezone, traits=traits)
        return await self.engine.contacts.create(new, self.clock.now())

    async def executions(self, workspace: str = WORKSPACE) -> list[ExecutionRecord]:
        found = await self.engine.executions.list(workspace, limit=500)
        return sorted(found, key=lambda record: record.id)

    async def start_task_due(self, execution: ExecutionRecord) -> datetime:
        statement = select(tasks.c.run_at).where(
            tasks.c.workspace_id == execution.workspace_id,
            tasks.c.execution_id == execution.id,
        )
        async with self.database.read() as connection:
            due: datetime = (await connection.execute(statement)).scalar_one()
        return due

    async def tick_rows(self) -> list[Any]:
        async with self.database.read() as connection:
            return list((await connection.execute(select(trigger_ticks))).all())


@pytest.fixture
async def scheduling(database: Database) -> AsyncIterator[Scheduling]:
    clock = ManualClock(START)
    engine = Engine.on(
        database,
        clock=clock,
        wakeup=InProcessWakeup(),
        bus=InProcessBus(),
        contact_cipher=contact_cipher(),
    )
    # Workflows and triggers record when they changed on the test's clock: a time trigger
    # fires no tick from before its workflow was activated.
    engine = dataclasses.replace(engine, workflows=WorkflowStore(database, clock=clock.now))
    for workspace in (WORKSPACE, OTHER):
        await engine.workflows.ensure_workspace(workspace, workspace.title())
    yield Scheduling(engine, clock, WorkflowService(engine.workflows))
    await engine.bus.close()


def journey(workflow_id: str, triggers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A workflow started by ``triggers``: it waits a day, then ends."""
    return {
        "workflowId": workflow_id,
        "name": workflow_id.title(),
        "triggers": triggers,
        "errorHandling": {},
        "nodes": [
            {"id": "pause", "type": "delay", "config": {"duration": "P1D"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
        **extra,
    }


def subjects(executions: Sequence[ExecutionRecord]) -> list[str]:
    return sorted(execution.subject_id for execution in executions)


# --------------------------------------------------------------------------- cron


async def test_a_cron_tick_starts_every_matching_contact_once(scheduling: Scheduling) -> None:
    pro = await scheduling.contacts(4, plan="pro")
    await scheduling.contacts(3, plan="free")
    trigger = {**DAILY_NINE, "condition": "contact.plan == 'pro' && event.type == 'time'"}
    await scheduling.deploy(journey("digest", [trigger]))
    scheduler = scheduling.scheduler()

    assert (await scheduler.run_once()).claimed == 0  # 07:00 in Berlin: not yet
    scheduling.clock.set(NINE_BERLIN)
    outcome = await scheduler.run_once()
    assert (outcome.claimed, outcome.fan_out.started) == (1, 4)
    assert outcome.fan_out.completed
    assert (await scheduler.run_once()).claimed == 0  # the tick is done

    executions = await scheduling.executions()
    assert subjects(executions) == sorted(contact.id for contact in pro)
    first = executions[0]
    assert first.trigger == "time:cron"
    assert first.input == {"tick": "2026-03-27T08:00:00Z"}
    assert first.state["event"] == {
        "type": "time",
        "tick": "2026-03-27T08:00:00Z",
        "trigger": "digest#0",
    }
    assert await scheduling.start_task_due(first) == NINE_BERLIN
    (row,) = await scheduling.tick_rows()
    assert (row.started, row.completed_at, row.lease_owner) == (4, NINE_BERLIN, None)


async def test_entry_rules_hold_for_every_tick(scheduling: Scheduling) -> None:
    await scheduling.contacts(2)
    await scheduling.deploy(journey("digest", [DAILY_NINE]))  # reentry: never
    scheduler = scheduling.scheduler()
    scheduling.clock.set(NINE_BERLIN)
    assert (await scheduler.run_once()).fan_out.started == 2
    scheduling.clock.advance(timedelta(days=1))
    outcome = await scheduler.run_once()
    assert (outcome.claimed, outcome.fan_out.started, outcome.fan_out.refused) == (1, 0, 2)


async def test_a_dedup_key_over_the_tick_starts_one_execution_per_key(
    scheduling: Scheduling,
) -> None:
    await scheduling.contacts(3, team="red")
    await scheduling.contacts(2, team="blue")
    trigger = {**DAILY_NINE, "dedup": {"key": "contact.team", "window": "PT1H"}}
    await scheduling.deploy(journey("digest", [trigger]))
    scheduling.clock.set(NINE_BERLIN)
    outcome = await scheduling.scheduler().run_once()
    assert (outcome.fan_out.started, outcome.fan_out.refused) == (2, 3)


async def test_a_workspace_without_contacts_starts_nothing(scheduling: Scheduling) -> None:
    await scheduling.deploy(journey("digest", [DAILY_NINE]))
    scheduling.clock.set(NINE_BERLIN)
    outcome = await scheduling.scheduler().run_once()
    assert (outcome.claimed, outcome.fan_out.started, outcome.fan_out.completed) == (1, 0, True)


async def test_ticks_missed_beyond_the_catch_up_window_are_skipped_and_logged(
    scheduling: Scheduling, caplog: pytest.LogCaptureFixture
) -> None:
    await scheduling.contacts(1)
    hourly = {"type": "time", "cron": "0 * * * *"}
    await scheduling.deploy(journey("hourly", [hourly], entry={"reentry": "always"}))
    scheduling.clock.set(START + timedelta(hours=4, minutes=30))  # down since START
    with caplog.at_level(logging.WARNING):
        outcome = await scheduling.scheduler().run_once()
    assert (outcome.skipped, outcome.claimed) == (3, 1)  # 07, 08, 09:00 UTC; 10:00 fires
    assert "skipped 3 tick(s)" in caplog.text


async def test_activating_a_workflow_fires_no_tick_from_before(scheduling: Scheduling) -> None:
    await scheduling.contacts(1)
    scheduling.clock.set(NINE_BERLIN + timedelta(minutes=10))
    await scheduling.deploy(journey("digest", [DAILY_NINE]))
    assert (await scheduling.scheduler().run_once()).claimed == 0


async def test_a_paused_workflow_fires_nothing(scheduling: Scheduling) -> None:
    await scheduling.contacts(2)
    workflow_id = await scheduling.deploy(journey("digest", [DAILY_NINE]))
    scheduler = scheduling.scheduler()
    await scheduler.run_once()
    scheduling.clock.advance(timedelta(minutes=1))
    await scheduling.workflows.pause(WORKSPACE, workflow_id)
    scheduling.clock.set(NINE_BERLIN)
    outcome = await scheduler.run_once()
    assert (outcome.claimed, outcome.fan_out.started) == (0, 0)
    assert await scheduling.executions() == []


async def test_workspaces_fire_their_own_ticks_for_their_own_contacts(
    scheduling: Scheduling,
) -> None:
    acme = await scheduling.contacts(2)
    other = await scheduling.contacts(3, OTHER)
    await scheduling.deploy(journey("digest", [DAILY_NINE]))
    await scheduling.deploy(journey("digest", [DAILY_NINE]), OTHER)
    scheduling.clock.set(NINE_BERLIN)
    outcome = await scheduling.scheduler().run_once()
    assert (outcome.claimed, outcome.fan_out.started) == (2, 5)
    assert subjects(await scheduling.executions()) == sorted(c.id for c in acme)
    assert subjects(await scheduling.executions(OTHER)) == sorted(c.id for c in other)


async def test_a_stored_time_trigger_fires_like_a_declared_one(scheduling: Scheduling) -> None:
    contacts = await scheduling.contacts(2)
    await scheduling.deploy(journey("digest", [{"type": "api"}]))
    service = TriggerService(TriggerStore(scheduling.database, clock=scheduling.clock.now))
    document = {"workflowId": "digest", "trigger": {**DAILY_NINE, "name": "morning"}}
    view = await service.create(WORKSPACE, document)
    scheduling.clock.set(NINE_BERLIN)
    outcome = await scheduling.scheduler().run_once()
    assert outcome.fan_out.started == 2
    executions = await scheduling.executions()
    assert subjects(executions) == sorted(c.id for c in contacts)
    assert executions[0].state["event"]["trigger"] == f"digest#t:{view.id}"


# --------------------------------------------------------------------------- at


async def test_an_at_trigger_fires_once(scheduling: Scheduling) -> None:
    await scheduling.contacts(2)
    at = START + timedelta(hours=2)
    trigger = {"type": "time", "at": "2026-03-27T08:00:00Z"}
    await scheduling.deploy(journey("launch", [trigger], entry={"reentry": "always"}))
    first = scheduling.scheduler("a")
    assert (await first.run_once()).claimed == 0
    scheduling.clock.set(at)
    assert (await first.run_once()).fan_out.started == 2
    scheduling.clock.advance(timedelta(minutes=1))
    assert (await first.run_once()).claimed == 0
    assert (await scheduling.scheduler("b").run_once()).claimed == 0  # a fresh scheduler, too
    executions = await scheduling.executions()
    assert len(executions) == 2
    assert {e.trigger for e in executions} == {"time:at"}


# --------------------------------------------------------------------------- exactly once


class _FailingOnSecondPage(ExecutionStore):
    """The store a worker would use, failing the second page's transaction (a crash)."""

    calls = 0

    async def insert_started(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("the worker died here")
        await super().insert_started(*args, **kwargs)


async def test_an_interrupted_fan_out_is_finished_by_another_scheduler_after_the_lease(
    scheduling: Scheduling,
) -> None:
    contacts = await scheduling.contacts(7)  # pages of 3: 3 + 3 + 1
    await scheduling.deploy(journey("digest", [DAILY_NINE]))
    failing = scheduling.scheduler(
        "a", executions=_FailingOnSecondPage(scheduling.database, contact_cipher())
    )
    other = scheduling.scheduler("b")
    scheduling.clock.set(NINE_BERLIN)

    interrupted = await failing.run_once()
    assert (interrupted.claimed, interrupted.fan_out.started) == (1, 0)  # the failure is logged
    assert len(await scheduling.executions()) == 3  # the first page committed
    assert (await other.run_once()).resumed == 0  # the lease still holds

    scheduling.clock.advance(OPTIONS.lease + timedelta(seconds=1))
    resumed = await other.run_once()
    assert (resumed.resumed, resumed.fan_out.started, resumed.claimed) == (1, 4, 0)
    assert subjects(await scheduling.executions()) == sorted(c.id for c in contacts)
    (row,) = await scheduling.tick_rows()
    assert row.started == 7
    assert row.completed_at is not None


async def test_an_abandoned_fan_out_of_a_paused_workflow_ends_where_it_stopped(
    scheduling: Scheduling,
) -> None:
    await scheduling.contacts(7)
    workflow_id = await scheduling.deploy(journey("digest", [DAILY_NINE]))
    failing = scheduling.scheduler(
        "a", executions=_FailingOnSecondPage(scheduling.database, contact_cipher())
    )
    scheduling.clock.set(NINE_BERLIN)
    await failing.run_once()
    await scheduling.workflows.pause(WORKSPACE, workflow_id)
    scheduling.clock.advance(OPTIONS.lease + timedelta(seconds=1))
    outcome = await scheduling.scheduler("b").run_once()
    assert (outcome.closed, outcome.resumed, outcome.fan_out.started) == (1, 0, 0)
    assert len(await scheduling.executions()) == 3
    (row,) = await scheduling.tick_rows()
    assert (row.started, row.completed_at, row.lease_until) == (3, scheduling.clock.now(), None)


@pytest.mark.postgres_only
async def test_two_schedulers_on_one_tick_start_each_contact_once(
    scheduling: Scheduling, database_url: str
) -> None:
    contacts = await scheduling.contacts(10)
    await scheduling.deploy(journey("digest", [DAILY_NINE]))
    second_pool = Database.from_url(database_url)
    try:
        first, second = scheduling.scheduler("a"), scheduling.scheduler("b", database=second_pool)
        scheduling.clock.set(NINE_BERLIN)
        outcomes = await asyncio.gather(first.run_once(), second.run_once())
    finally:
        await second_pool.dispose()
    assert sum(o.claimed for o in outcomes) == 1
    assert sum(o.fan_out.started for o in outcomes) == 10
    assert subjects(await scheduling.executions()) == sorted(c.id for c in contacts)


@pytest.mark.postgres_only
async def test_two_schedulers_taking_over_one_abandoned_fan_out_finish_it_once(
    scheduling: Scheduling, database_url: str
) -> None:
    contacts = await scheduling.contacts(10)
    await scheduling.deploy(journey("digest", [DAILY_NINE]))
    failing = scheduling.scheduler(
        "a", executions=_FailingOnSecondPage(scheduling.database, contact_cipher())
    )
    scheduling.clock.set(NINE_BERLIN)
    await failing.run_once()
    scheduling.clock.advance(OPTIONS.lease + timedelta(seconds=1))
    second_pool = Database.from_url(database_url)
    try:
        first, second = scheduling.scheduler("b"), scheduling.scheduler("c", database=second_pool)
        outcomes = await asyncio.gather(first.run_once(), second.run_once())
    finally:
        await second_pool.dispose()
    assert sum(o.resumed for o in outcomes) == 1
    assert sum(o.fan_out.started for o in outcomes) == 7
    assert subjects(await scheduling.executions()) == sorted(c.id for c in contacts)


# --------------------------------------------------------------------------- relativeTo


BIRTHDAY_WEEK_BEFORE = {
    "type": "time",
    "timezone": "America/Los_Angeles",
    "relativeTo": {
        "attribute": "birthday",
        "offset": "-P7D",
        "timeOfDay": "09:00",
        "recurrence": "yearly",
    },
}


async def test_a_birthday_trigger_starts_each_execution_due_at_the_local_moment(
    scheduling: Scheduling,
) -> None:
    # Europe/Berlin moves to summer time on 2026-03-29, between the week-before and the
    # birthday: 09:00 on the 27th is still CET (08:00 UTC), not "seven times 24 hours before
    # 09:00 CEST" (07:00 UTC).
    berlin = await scheduling.contact("berlin", timezone="Europe/Berlin", birthday="1990-04-03")
    new_york = await scheduling.contact("ny", timezone="America/New_York", birthday="1988-04-03")
    no_zone = await scheduling.contact("nozone", birthday="1970-04-03")  # the trigger's zone
    tomorrow = await scheduling.contact("later", timezone="Europe/Berlin", birthday="2000-04-04")
    await scheduling.contact("garbage", timezone="Europe/Berlin", birthday="soon")
    await scheduling.contact("leap", timezone="Europe/Berlin", birthday="2000-02-29")
    await scheduling.contact("none")
    await scheduling.deploy(journey("birthday", [BIRTHDAY_WEEK_BEFORE]))
    scheduler = scheduling.scheduler()

    outcome = await scheduler.run_once()  # plans today, 2026-03-27 (UTC)
    assert (outcome.claimed, outcome.fan_out.started) == (1, 3)
    due = {e.subject_id: await scheduling.start_task_due(e) for e in await scheduling.executions()}
    assert due == {
        berlin.id: datetime(2026, 3, 27, 8, 0, tzinfo=UTC),
        new_york.id: datetime(2026, 3, 27, 13, 0, tzinfo=UTC),  # EDT already
        no_zone.id: datetime(2026, 3, 27, 16, 0, tzinfo=UTC),  # PDT
    }
    (first,) = [e for e in await scheduling.executions() if e.subject_id == berlin.id]
    assert first.trigger == "time:relative"
    assert first.input == {
        "tick": "2026-03-27T00:00:00Z",
        "attribute": "birthday",
        "occurrence": "2026-03-27T08:00:00Z",
    }

    worker = scheduling.engine.worker(ExecutorRegistry(), WorkerOptions(batch_size=10, lanes=1))
    assert await worker.run_once() == 0  # nobody's moment has come yet
    scheduling.clock.set(datetime(2026, 3, 27, 8, 0, tzinfo=UTC))
    assert await worker.run_once() == 1

    scheduling.clock.set(datetime(2026, 3, 27, 17, 59, tzinfo=UTC))
    assert (await scheduler.run_once()).claimed == 0
    scheduling.clock.set(datetime(2026, 3, 27, 18, 0, tzinfo=UTC))  # six hours ahead of the 28th
    outcome = await scheduler.run_once()
    assert (outcome.claimed, outcome.fan_out.started) == (1, 1)
    (later,) = [e for e in await scheduling.executions() if e.subject_id == tomorrow.id]
    assert await scheduling.start_task_due(later) == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- wiring


async def test_a_process_runs_a_scheduler_unless_the_settings_turn_it_off(
    scheduling: Scheduling,
) -> None:
    off = Settings(scheduler={"enabled": False})
    assert start_scheduler(scheduling.engine, off, "x") is None
    running = start_scheduler(scheduling.engine, Settings(), "x")
    assert running is not None
    assert running.scheduler.owner == "x"
    await stop_scheduler(running)
    assert running.task.cancelled()
