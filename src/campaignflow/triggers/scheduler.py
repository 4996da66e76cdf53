"""The time-trigger scheduler: fires each tick of every active time trigger exactly once, however
many workers run one.

Every ``interval`` it reloads the catalog if it changed (the same loader as the router), and for
each time trigger whose next tick is due:

* claims the tick by inserting its row; the one scheduler whose insert lands fans it out, the
  others move on (:mod:`campaignflow.store.ticks`);
* fans out in pages, each page one transaction (:mod:`campaignflow.triggers.fanout`);
* takes over fan-outs whose lease lapsed (their worker died), from their last committed page.

Ticks older than ``catch_up`` (the scheduler was down, or behind) are skipped and logged rather
than fired late; a trigger fires no tick from before its workflow was activated or published.
A ``relativeTo`` trigger ticks once per UTC day, ``plan_ahead`` before the day begins: that tick
starts the executions of the day's moments with their start task due at each moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from campaignflow.bus.wakeup import Wakeup
from campaignflow.config import Settings
from campaignflow.engine.clock import Clock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.errors import CampaignflowError
from campaignflow.store.catalog import catalog_stamp
from campaignflow.store.database import Database
from campaignflow.store.ticks import TickKey
from campaignflow.triggers.catalog import load_catalog
from campaignflow.triggers.fanout import (
    FanOut,
    FanOutOptions,
    FanOutOutcome,
    FanOutStores,
    TimeSpec,
    time_specs,
)
from campaignflow.triggers.time_plan import Due, Window, due, first_after

if TYPE_CHECKING:
    from campaignflow.engine.runtime import Engine

logger = logging.getLogger(__name__)

_NEVER_LOOKED = datetime.min.replace(tzinfo=UTC)
_PRUNE_EVERY = timedelta(hours=1)
_MAX_BACKOFF = 30.0


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    interval: timedelta = timedelta(seconds=1)
    catch_up: timedelta = timedelta(hours=1)
    plan_ahead: timedelta = timedelta(hours=6)
    page_size: int = 500
    lease: timedelta = timedelta(seconds=30)
    retention: timedelta = timedelta(days=7)

    @property
    def window(self) -> Window:
        return Window(self.catch_up, self.plan_ahead)

    @property
    def fan_out(self) -> FanOutOptions:
        return FanOutOptions(self.page_size, self.lease, self.catch_up)

    @property
    def kept_for(self) -> timedelta:
        """How long completed ticks are kept: longer than any tick can still be claimed (the
        catch-up window, plus the planned day of a relativeTo trigger), or it would fire again."""
        return max(self.retention, self.catch_up + timedelta(days=2))


@dataclass(slots=True)
class SchedulerOutcome:
    """What one look did, for logs, metrics and tests."""

    claimed: int = 0  # ticks this scheduler claimed
    resumed: int = 0  # abandoned fan-outs it took over
    closed: int = 0  # abandoned fan-outs of triggers that are off now
    skipped: int = 0  # ticks older than the catch-up window
    fan_out: FanOutOutcome = field(default_factory=FanOutOutcome)


@dataclass(slots=True)
class _State:
    """Where one trigger stands in this scheduler: ticks up to ``through`` are handled."""

    spec: TimeSpec
    through: datetime
    next_at: datetime | None = _NEVER_LOOKED  # None: nothing is ever due again (a past ``at``)


class TimeScheduler:
    def __init__(
        self,
        database: Database,
        stores: FanOutStores,
        compiled: CompiledWorkflows,
        wakeup: Wakeup,
        clock: Clock,
        *,
        owner: str,
        options: SchedulerOptions | None = None,
    ) -> None:
        self._db = database
        self._ticks = stores.ticks
        self._compiled = compiled
        self._clock = clock
        self.owner = owner
        self.options = options or SchedulerOptions()
        self.fan_out = FanOut(
            database, stores, wakeup, clock, owner=owner, options=self.options.fan_out
        )
        self.specs: dict[tuple[str, str], TimeSpec] = {}
        self._states: dict[tuple[str, str], _State] = {}
        self._stamp: tuple[object, ...] | None = None
        self._pruned_at: datetime | None = None

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload the time triggers if the catalog changed; ``True`` when it was reloaded."""
        stamp = await catalog_stamp(self._db)
        if stamp == self._stamp and not force:
            return False
        catalog = await load_catalog(self._db, self._compiled)
        self.specs = {spec.key: spec for spec in time_specs(catalog)}
        self._states = {key: s for key, s in self._states.items() if key in self.specs}
        self._stamp = stamp
        return True

    # ------------------------------------------------------------------ running

    async def run_until_cancelled(self) -> None:
        delay = self.options.interval.total_seconds()
        while True:
            try:
                await self.run_once()
                delay = self.options.interval.total_seconds()
            except Exception as exc:
                logger.error(
                    "the scheduler's look failed; again in %.1f s: %s",
                    delay,
                    exc,
                    exc_info=not isinstance(exc, CampaignflowError),
                )
                delay = min(delay * 2, _MAX_BACKOFF)
            await asyncio.sleep(delay)

    async def run_once(self) -> SchedulerOutcome:
        """Fire what is due now and take over abandoned fan-outs. A failure of one trigger is
        logged and retried at the next look; it does not hold the others up."""
        await self.refresh()
        now = self._clock.now()
        outcome = SchedulerOutcome()
        for spec in list(self.specs.values()):
            try:
                await self._fire(spec, now, outcome)
            except Exception as exc:
                _log_failure(f"time trigger {spec.start.scope}", spec.start.workspace_id, exc)
        await self._resume_abandoned(now, outcome)
        await self._prune(now)
        return outcome

    async def _fire(self, spec: TimeSpec, now: datetime, outcome: SchedulerOutcome) -> None:
        state = await self._state(spec)
        if state.next_at is None or now < state.next_at:
            return
        plan = due(spec.trigger, state.through, now, self.options.window)
        if plan.skipped:
            outcome.skipped += len(plan.skipped)
            _log_skipped(spec, plan, self.options.catch_up)
        until = now + self.options.lease
        for tick_at in plan.fire:
            claimed = await self._ticks.claim(
                spec.tick(tick_at), owner=self.owner, now=now, until=until
            )
            state.through = tick_at  # handled: a failed fan-out is taken over once its lease lapses
            if claimed:
                outcome.claimed += 1
                outcome.fan_out.add(await self.fan_out.run(spec, tick_at))
        state.through, state.next_at = plan.through, plan.next_at

    async def _state(self, spec: TimeSpec) -> _State:
        state = self._states.get(spec.key)
        if state is not None and state.spec == spec:
            return state
        if state is None:
            last = await self._ticks.last_tick(*spec.key)
            through = first_after(spec.trigger, spec.since, last)
        else:  # a new version or a changed trigger: no tick from before the change
            through = max(state.through, first_after(spec.trigger, spec.since, None))
        self._states[spec.key] = state = _State(spec, through)
        return state

    async def _resume_abandoned(self, now: datetime, outcome: SchedulerOutcome) -> None:
        for key in await self._ticks.abandoned(now):
            try:
                await self._resume(key, now, outcome)
            except Exception as exc:
                _log_failure(f"resuming tick {key.tick_at} of {key.scope}", key.workspace_id, exc)

    async def _resume(self, key: TickKey, now: datetime, outcome: SchedulerOutcome) -> None:
        spec = self.specs.get((key.workspace_id, key.scope))
        if spec is None:  # paused, disabled or deleted since: the fan-out ends here
            if await self._ticks.close(key, now):
                outcome.closed += 1
                logger.info(
                    "abandoned fan-out of tick %s of %s (workspace %s) closed: its trigger is off",
                    key.tick_at.isoformat(),
                    key.scope,
                    key.workspace_id,
                )
            return
        until = now + self.options.lease
        if await self._ticks.take_over(key, owner=self.owner, now=now, until=until):
            outcome.resumed += 1
            outcome.fan_out.add(await self.fan_out.run(spec, key.tick_at))

    async def _prune(self, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < _PRUNE_EVERY:
            return
        self._pruned_at = now
        await self._ticks.prune(now - self.options.kept_for)


def _log_skipped(spec: TimeSpec, plan: Due, catch_up: timedelta) -> None:
    logger.warning(
        "time trigger %s (workspace %s) skipped %d tick(s) from %s to %s: older than the "
        "catch-up window of %s",
        spec.start.scope,
        spec.start.workspace_id,
        len(plan.skipped),
        plan.skipped[0].isoformat(),
        plan.skipped[-1].isoformat(),
        catch_up,
    )


def _log_failure(what: str, workspace_id: str, exc: Exception) -> None:
    logger.error(
        "%s (workspace %s) failed; retried at the next look: %s",
        what,
        workspace_id,
        exc,
        exc_info=not isinstance(exc, CampaignflowError),
    )


# --------------------------------------------------------------------------- as a background task


@dataclass(frozen=True, slots=True)
class RunningScheduler:
    scheduler: TimeScheduler
    task: asyncio.Task[None]


def scheduler_options(settings: Settings) -> SchedulerOptions:
    config = settings.scheduler
    return SchedulerOptions(
        interval=timedelta(seconds=config.interval_seconds),
        catch_up=timedelta(seconds=config.catch_up_seconds),
        plan_ahead=timedelta(hours=config.plan_ahead_hours),
        page_size=config.page_size,
        lease=timedelta(seconds=config.lease_seconds),
        retention=timedelta(days=config.retention_days),
    )


def start_scheduler(engine: Engine, settings: Settings, owner: str) -> RunningScheduler | None:
    """Run a scheduler in this process (``None`` when the settings turn it off)."""
    if not settings.scheduler.enabled:
        return None
    scheduler = engine.scheduler(owner, scheduler_options(settings))
    return RunningScheduler(scheduler, asyncio.create_task(scheduler.run_until_cancelled()))


async def stop_scheduler(running: RunningScheduler | None) -> None:
    """Stop between pages or mid-page: an interrupted page rolls back, and its tick is taken
    over (by this process's successor or another worker) once the lease lapses."""
    if running is None:
        return
    running.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running.task
