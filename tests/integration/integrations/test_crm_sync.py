"""CRM sync end to end: each strategy, both conflict modes, per-record failures and a run killed
mid-way, against a local HubSpot that checks every request against its endpoint's schema.

HubSpot is ``tests/_support/hubspot_crm.py`` (a stateful stand-in: HubSpot is not reachable
and its spec may not be redistributed, so no Prism can serve it). Everything else is real: the
app and its APIs (connections, sync configuration, runs, contacts, workflows), the secret store,
the connector executor with its guards, the sync scheduler, runner and store, the contact store,
the in-process bus and router, the engine's worker — on SQLite and PostgreSQL. The scheduler's
and runner's clock is the real clock plus an offset the tests move, so a cron tick comes when
the test wants it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from campaignflow.api.app import create_app
from campaignflow.compliance.erasure import ErasureRunner, ErasureWorker, NoStream, utc_now
from campaignflow.engine.clock import SystemClock
from campaignflow.engine.runtime import Engine
from campaignflow.engine.worker import Worker
from campaignflow.integrations.connections import ResolvedConnection
from campaignflow.integrations.connector import OutboundRequest, ProviderResponse
from campaignflow.integrations.runtime import Integrations, open_integrations
from campaignflow.integrations.sync.runner import RunnerOptions, SyncRunner
from campaignflow.integrations.sync.worker import SyncScheduler, SyncWorker, SyncWorkerOptions
from campaignflow.store.crm_sync import SyncStore
from campaignflow.store.database import Database
from campaignflow.store.erasure import ErasureStore
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import contact_cipher
from tests._support.hubspot_crm import TOKEN as HUBSPOT_TOKEN
from tests._support.hubspot_crm import HubSpotCrm
from tests._support.hubspot_crm import serving as serving_crm
from tests.integration.api.conftest import TOKEN, make_settings

pytestmark = pytest.mark.timeout(120)

MAPPING = {
    "contactFields": {
        "email": "email",
        "firstName": {"remote": "firstname", "transform": "trim"},
        "plan": "plan_tier",
        "lifecycle": {"remote": "lifecyclestage", "direction": "pull"},
    }
}


@dataclass
class Clock:
    """Real time plus an offset the test moves (the CRM's clock can be set apart too)."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Killer:
    """A sender that dies (like a killed worker) on the ``die_on``-th search request."""

    inner: Any
    die_on: int | None = None
    searches: int = 0

    async def send(
        self, connection: ResolvedConnection, request: OutboundRequest
    ) -> ProviderResponse:
        if request.path.endswith("/search"):
            self.searches += 1
            if self.searches == self.die_on:
                raise asyncio.CancelledError  # the process is gone mid-run
        response: ProviderResponse = await self.inner.send(connection, request)
        return response


@dataclass
class Platform:
    http: httpx.AsyncClient
    worker: Worker
    integrations: Integrations
    engine: Engine
    crm: HubSpotCrm
    crm_url: str
    clock: Clock
    sender: Killer
    connection_id: str = ""
    workers: dict[str, SyncWorker] = field(default_factory=dict)

    def sync_worker(self, name: str = "sync-1") -> SyncWorker:
        if name not in self.workers:
            store = SyncStore(self.engine.database)
            runner = SyncRunner(
                store=store,
                contacts=self.engine.contacts,
                resolve=self._resolve,
                sender=self.sender,
                publish=self.engine.ingest().accept,
                erased=self.engine.erased,
                owner=name,
                now=self.clock,
                options=RunnerOptions(backoff_s=0.01),
            )
            options = SyncWorkerOptions(lease=timedelta(seconds=60))
            scheduler = SyncScheduler(store, self.engine.contacts, options=options)
            self.workers[name] = SyncWorker(
                store, scheduler, runner, owner=name, now=self.clock, options=options
            )
        return self.workers[name]

    async def _resolve(self, workspace_id: str, connection_id: str) -> ResolvedConnection:
        record = await self.integrations.connections.get(workspace_id, connection_id)
        return await self.integrations.resolver.complete(record)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.status_code in (200, 201, 202), (method, path, response.text)
        return response.json() if response.content else None

    async def connect(self, sync: dict[str, Any]) -> dict[str, Any]:
        connection = await self.ok(
            "POST",
            "/api/v1/connections",
            json={
                "name": "hubspot",
                "provider": "hubspot",
                "credentials": {"token": HUBSPOT_TOKEN},
                "settings": {"baseUrl": self.crm_url},
            },
        )
        self.connection_id = connection["id"]
        configured: dict[str, Any] = await self.ok(
            "PUT", f"/api/v1/connections/{self.connection_id}/sync", json=sync
        )
        return configured

    async def runs(self) -> list[dict[str, Any]]:
        page = await self.ok("GET", f"/api/v1/connections/{self.connection_id}/sync-runs")
        items: list[dict[str, Any]] = page["items"]
        return items

    async def run(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.ok(
            "GET", f"/api/v1/connections/{self.connection_id}/sync-runs/{run_id}"
        )
        return found

    async def contact(self, email: str) -> dict[str, Any]:
        page = await self.ok("GET", "/api/v1/contacts", params={"email": email})
        assert len(page["items"]) == 1, page
        found: dict[str, Any] = page["items"][0]
        return found

    async def drain_engine(self) -> None:
        for _ in range(100):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")


@pytest.fixture
async def platform(database: Database) -> AsyncIterator[Platform]:
    settings = make_settings()
    engine = Engine.on(database, clock=SystemClock(), contact_cipher=contact_cipher())
    integrations = open_integrations(database, settings, engine.contacts.cipher)
    app = create_app(settings, database=database, engine=engine, integrations=integrations)
    clock = Clock()
    crm = HubSpotCrm(clock)
    try:
        async with serving_crm(crm) as crm_url, serving(app, bearer(TOKEN)) as http:
            yield Platform(
                http,
                engine.worker(integrations.executors()),
                integrations,
                engine,
                crm,
                crm_url,
                clock,
                Killer(integrations.executor),
            )
    finally:
        await integrations.aclose()
        await engine.wakeup.aclose()
    assert crm.violations == []  # every request the sync sent fitted HubSpot's reference


async def local_contact(platform: Platform, email: str, **traits: Any) -> dict[str, Any]:
    created: dict[str, Any] = await platform.ok(
        "POST", "/api/v1/contacts", json={"email": email, "traits": traits}
    )
    return created


# ------------------------------------------------------------------------------- scheduled


@pytest.mark.parametrize(
    ("mode", "winner"),
    [
        # HubSpot first in the priority list: its (earlier) change wins the conflict
        (
            {
                "conflictResolution": "source-priority",
                "sourcePriority": ["hubspot", "campaignflow"],
            },
            "Anne",
        ),
        # last-write-wins: campaignflow's change is the later one
        ({"conflictResolution": "last-write-wins"}, "Annabel"),
    ],
    ids=["source-priority", "last-write-wins"],
)
async def test_a_scheduled_sync_resolves_a_conflict_as_configured(
    platform: Platform, mode: dict[str, Any], winner: str
) -> None:
    crm = platform.crm
    remote = crm.add("ann@example.com", firstname="Ann", lifecyclestage="lead")
    ann = await local_contact(platform, "ann@example.com", firstName="Ann", plan="free")
    await platform.connect(
        {"syncStrategy": "scheduled", "schedule": "*/15 * * * *", "dataMapping": MAPPING, **mode}
    )
    worker = platform.sync_worker()
    assert not await worker.run_once()  # not due yet: the next quarter hour

    platform.clock.offset = timedelta(minutes=16)  # past the next tick
    assert await worker.run_once()
    first = (await platform.runs())[0]
    assert (first["trigger"], first["status"]) == ("scheduled", "succeeded"), first
    # linked by address: HubSpot's lifecycle came in, the local plan went out
    assert (await platform.contact("ann@example.com"))["traits"]["lifecycle"] == "lead"
    assert remote.properties["plan_tier"] == "free"
    assert first["counts"]["conflicts"] == 0

    # Both sides change firstName: HubSpot 2 minutes ago, campaignflow now; and only
    # campaignflow changes the plan (no conflict: it goes out whatever the mode).
    crm.edit(remote.id, at=platform.clock() - timedelta(minutes=2), firstname="Anne")
    await platform.ok(
        "PATCH",
        f"/api/v1/contacts/{ann['id']}",
        json={"traits": {"firstName": "Annabel", "plan": "pro"}},
    )
    platform.clock.offset += timedelta(minutes=15)
    assert await worker.run_once()
    second = (await platform.runs())[0]
    assert second["status"] == "succeeded", second
    assert second["counts"]["conflicts"] == 1
    assert (await platform.contact("ann@example.com"))["traits"]["firstName"] == winner
    assert remote.properties["firstname"] == winner
    assert remote.properties["plan_tier"] == "pro"

    # Converged: the next run finds nothing to do on either side.
    writes = [r for r in crm.requests if "/batch/up" in r[1]]
    platform.clock.offset += timedelta(minutes=15)
    assert await worker.run_once()
    assert [r for r in crm.requests if "/batch/up" in r[1]] == writes
    assert (await platform.runs())[0]["counts"]["conflicts"] == 0


async def test_changes_pulled_from_the_crm_are_events_that_start_workflows(
    platform: Platform,
) -> None:
    crm = platform.crm
    await platform.ok(
        "POST",
        "/api/v1/workflows",
        json={
            "workflowId": "crm-follow-up",
            "name": "CRM follow-up",
            "triggers": [{"type": "behavior", "event": "crm.contact.updated"}],
            "errorHandling": {"retryPolicy": "exponential", "maxRetries": 1},
            "nodes": [{"id": "done", "type": "end"}],
        },
    )
    await platform.ok("POST", "/api/v1/workflows/crm-follow-up/activate")
    remote = crm.add("bo@example.com", firstname="Bo")
    await local_contact(platform, "bo@example.com", firstName="Bo")
    await platform.connect({"syncStrategy": "on-demand", "dataMapping": MAPPING})
    await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert await platform.sync_worker().run_once()

    crm.edit(remote.id, firstname="Bob", lifecyclestage="opportunity")
    await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert await platform.sync_worker().run_once()
    await platform.drain_engine()

    executions = await platform.ok(
        "GET", "/api/v1/executions", params={"workflow": "crm-follow-up"}
    )
    assert len(executions["items"]) == 1
    bo = await platform.contact("bo@example.com")
    assert executions["items"][0]["subject"] == bo["id"]
    assert bo["traits"]["firstName"] == "Bob"


# ------------------------------------------------------------------------------- on demand


async def test_an_on_demand_run_reports_a_refused_record_and_retries_it_alone(
    platform: Platform,
) -> None:
    crm = platform.crm
    for name in ("cy", "di", "ed"):
        await local_contact(platform, f"{name}@example.com", firstName=name.title(), plan="free")
    crm.refuse_emails = {"di@example.com"}
    await platform.connect({"syncStrategy": "on-demand", "dataMapping": MAPPING})

    queued = await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert (queued["trigger"], queued["status"]) == ("on-demand", "queued")
    again = await platform.http.post(f"/api/v1/connections/{platform.connection_id}/sync")
    assert again.status_code == 409  # one run at a time
    assert await platform.sync_worker().run_once()

    run = await platform.run(queued["id"])
    assert run["status"] == "partial"
    assert run["counts"]["pushed"] == 2
    assert run["counts"]["failed"] == 1
    di = await platform.contact("di@example.com")
    assert [(e["record"], e["direction"], e["retryable"]) for e in run["errors"]] == [
        (di["id"], "push", False)
    ]
    assert "VALIDATION_ERROR" in run["errors"][0]["message"]
    assert {c.properties["email"] for c in crm.contacts.values()} == {
        "cy@example.com",
        "ed@example.com",
    }

    crm.refuse_emails = set()
    upserts_before = len([r for r in crm.requests if r[1].endswith("/batch/upsert")])
    retried = await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert await platform.sync_worker().run_once()
    assert (await platform.run(retried["id"]))["status"] == "succeeded"
    assert crm.by_email("di@example.com") is not None
    # the retry was Di alone, in one request of one record
    assert len([r for r in crm.requests if r[1].endswith("/batch/upsert")]) == upserts_before + 1


async def test_a_connector_that_does_not_sync_or_a_bad_configuration_is_refused_precisely(
    platform: Platform,
) -> None:
    mail = await platform.ok(
        "POST",
        "/api/v1/connections",
        json={"name": "mail", "provider": "sendgrid", "credentials": {"token": "SG.x"}},
    )
    refused = await platform.http.put(
        f"/api/v1/connections/{mail['id']}/sync",
        json={"syncStrategy": "on-demand", "dataMapping": MAPPING},
    )
    assert refused.status_code == 409
    assert "hubspot" in refused.json()["detail"]
    await platform.connect({"syncStrategy": "on-demand", "dataMapping": MAPPING})
    invalid = await platform.http.put(
        f"/api/v1/connections/{platform.connection_id}/sync",
        json={"syncStrategy": "scheduled", "conflictResolution": "source-priority",
              "dataMapping": {"contactFields": {"email": "Not A Property!"}}},
    )  # fmt: skip
    assert invalid.status_code == 422
    pointers = {problem["pointer"] for problem in invalid.json()["errors"]}
    assert {"/schedule", "/sourcePriority", "/dataMapping/contactFields/email"} <= pointers


# ------------------------------------------------------------------------------- real time


async def test_real_time_pushes_a_changed_contact_within_a_tick_and_idles_otherwise(
    platform: Platform,
) -> None:
    await platform.connect({"syncStrategy": "real-time", "dataMapping": MAPPING})
    worker = platform.sync_worker()
    platform.clock.offset = timedelta(seconds=3)
    assert await worker.run_once()  # the first run is a full one (pull and push)
    assert (await platform.runs())[0]["status"] == "succeeded"

    fay = await local_contact(platform, "fay@example.com", firstName="Fay", plan="team")
    seen = len(platform.crm.requests)
    platform.clock.offset += timedelta(seconds=3)
    assert await worker.run_once()
    pushed = (await platform.runs())[0]
    assert (pushed["trigger"], pushed["status"], pushed["counts"]["pushed"]) == (
        "real-time",
        "succeeded",
        1,
    )
    remote = platform.crm.by_email("fay@example.com")
    assert remote is not None
    assert remote.properties["plan_tier"] == "team"
    # a push-only run: no search of HubSpot's changes, just the upsert
    assert [path for _, path in platform.crm.requests[seen:]] == [
        "/crm/v3/objects/contacts/batch/upsert"
    ]

    await platform.ok("PATCH", f"/api/v1/contacts/{fay['id']}", json={"traits": {"plan": "pro"}})
    platform.clock.offset += timedelta(seconds=3)
    assert await worker.run_once()
    assert remote.properties["plan_tier"] == "pro"

    runs = len(await platform.runs())
    platform.clock.offset += timedelta(seconds=3)
    assert not await worker.run_once()  # nothing changed: no run at all
    assert len(await platform.runs()) == runs


# --------------------------------------------------------------------------- killed mid-run


async def test_a_run_killed_mid_pull_resumes_elsewhere_without_duplicating_a_record(
    platform: Platform,
) -> None:
    crm = platform.crm
    start = platform.clock() - timedelta(hours=1)
    for n in range(250):  # three pages of 100
        crm.add(f"p{n:03}@example.com", at=start + timedelta(seconds=n), firstname=f"P{n}")
    await platform.connect({"syncStrategy": "on-demand", "dataMapping": MAPPING})
    queued = await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")

    platform.sender.die_on = 3  # the worker dies asking for the third page
    with pytest.raises(asyncio.CancelledError):
        await platform.sync_worker("doomed").run_once()
    interrupted = await platform.run(queued["id"])
    assert (interrupted["status"], interrupted["phase"]) == ("running", "pull")
    assert interrupted["counts"]["created"] == 200  # two pages saved before it died
    # another worker cannot take it while the dead one's lease lasts ...
    platform.sender.die_on = None
    assert not await platform.sync_worker("heir").run_once()
    # ... and takes it over once the lease ran out, resuming at the saved cursor
    platform.clock.offset = timedelta(seconds=61)
    searches = sum(path.endswith("/search") for _, path in crm.requests)
    assert await platform.sync_worker("heir").run_once()
    # from the saved cursor (the 200th record, less the overlap): one page, not three
    assert sum(path.endswith("/search") for _, path in crm.requests) == searches + 1

    done = await platform.run(queued["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 2), done
    page = await platform.ok("GET", "/api/v1/contacts", params={"limit": 500})
    emails = sorted(contact["email"] for contact in page["items"])
    assert emails == sorted(f"p{n:03}@example.com" for n in range(250))  # each exactly once
    assert done["counts"]["created"] == 250
    # nothing went back to HubSpot twice: every contact came from there and agrees with it
    assert not any(r[1].endswith("/batch/upsert") for r in crm.requests)


# ------------------------------------------------------------------------------- activities


async def test_events_named_in_activity_types_are_logged_once_on_the_crm_record(
    platform: Platform,
) -> None:
    mapping = {**MAPPING, "activityTypes": {"demo_booked": "MEETING"}}
    remote = platform.crm.add("gus@example.com", firstname="Gus")
    await platform.ok(
        "POST", "/api/v1/contacts", json={"userId": "gus", "email": "gus@example.com"}
    )
    await platform.ok("POST", "/api/v1/contacts", json={"userId": "hal", "email": "hal@x.io"})
    await platform.connect({"syncStrategy": "on-demand", "dataMapping": mapping})
    await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert await platform.sync_worker().run_once()  # links Gus (and pushes Hal)

    for user, event in [("gus", "demo_booked"), ("gus", "page_viewed"), ("hal", "demo_booked")]:
        accepted = await platform.http.post(
            "/api/v1/events", json={"type": "track", "userId": user, "event": event}
        )
        assert accepted.status_code == 202, accepted.text
    await platform.drain_engine()  # the router writes them to the event log
    platform.clock.offset = timedelta(seconds=5)
    run = await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert await platform.sync_worker().run_once()

    notes = platform.crm.notes
    assert len(notes) == 2  # Gus's and Hal's demo_booked; page_viewed is not an activity type
    hal = platform.crm.by_email("hal@x.io")
    assert hal is not None
    assert sorted(n["associations"][0]["to"]["id"] for n in notes) == sorted([remote.id, hal.id])
    assert all("demo_booked" in n["properties"]["hs_note_body"] for n in notes)
    assert (await platform.run(run["id"]))["counts"]["activities"] == 2

    # the next run logs nothing again
    platform.clock.offset += timedelta(seconds=5)
    await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert await platform.sync_worker().run_once()
    assert len(platform.crm.notes) == 2


async def test_a_crm_repeating_a_page_token_fails_the_run_instead_of_looping(
    platform: Platform,
) -> None:
    for n in range(3):
        platform.crm.add(f"q{n}@example.com")
    platform.crm.stuck_paging = True
    await platform.connect({"syncStrategy": "on-demand", "dataMapping": MAPPING})
    run = await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert await platform.sync_worker().run_once()
    failed = await platform.run(run["id"])
    assert failed["status"] == "failed"
    assert "repeated a page token" in failed["error"]
    assert failed["counts"]["pages"] == 2  # not ten thousand
    # what it read before stopping is kept, and the next run may start again
    assert failed["counts"]["created"] == 3
    again = await platform.http.post(f"/api/v1/connections/{platform.connection_id}/sync")
    assert again.status_code == 202


async def test_the_processs_own_sync_worker_carries_a_run(platform: Platform) -> None:
    """The worker ``campaignflow worker`` and ``up`` run (``Integrations.sync_worker``), wired
    to the connection store, the secret store and the connector executor."""
    platform.crm.add("ivy@example.com", firstname="Ivy")
    await platform.connect({"syncStrategy": "on-demand", "dataMapping": MAPPING})
    run = await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    engine = platform.engine
    worker = platform.integrations.sync_worker(
        engine.contacts, engine.ingest().accept, engine.erased, owner="process"
    )
    assert await worker.run_once()
    done = await platform.run(run["id"])
    assert (done["status"], done["counts"]["created"]) == ("succeeded", 1)
    assert (await platform.contact("ivy@example.com"))["traits"]["firstName"] == "Ivy"


# ------------------------------------------------------------------------------- erasure


async def test_a_pull_does_not_bring_back_a_person_erased_here(platform: Platform) -> None:
    """An erasure without propagation leaves the person in the CRM; the next pull must not
    create them again (their address is on the erased list, as a keyed digest)."""
    platform.crm.add("gone@example.com", firstname="Gone")
    platform.crm.add("kept@example.com", firstname="Kept")
    erasure = await platform.ok("POST", "/api/v1/erasures", json={"email": "gone@example.com"})
    runner = ErasureRunner(
        ErasureStore(platform.engine.database, platform.engine.contacts.cipher),
        NoStream(),
        None,
        "erasure-test",
        utc_now,
    )
    assert await ErasureWorker(runner).run_once()
    done = await platform.ok("GET", f"/api/v1/erasures/{erasure['id']}")
    assert done["status"] == "succeeded"

    await platform.connect({"syncStrategy": "on-demand", "dataMapping": MAPPING})
    await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert await platform.sync_worker().run_once()

    gone = await platform.ok("GET", "/api/v1/contacts", params={"email": "gone@example.com"})
    assert gone["items"] == []
    assert (await platform.contact("kept@example.com"))["traits"]["firstName"] == "Kept"
    (run,) = await platform.runs()
    details = await platform.run(run["id"])
    (error,) = details["errors"]
    assert "erased" in error["message"]
    assert "gone@example.com" not in str(details)
