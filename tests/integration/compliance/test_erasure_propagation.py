"""An erasure propagated to connected providers, through the real connector executor (pacing,
breaker) and the real connections API, on SQLite and PostgreSQL:

- Mailchimp Marketing, Mailchimp Transactional and Pipedrive are Stoplight Prism mocks of
  their own specs (vendored in ``tests/contract/specs``; Pipedrive behind the path router, so
  production paths are checked), which refuse any request their spec does not allow;
- HubSpot is the stateful stand-in ``tests/_support/hubspot_crm.py`` (its spec may not be
  redistributed), which checks the GDPR-delete body and removes the record;
- SendGrid is the fault server: it fails first (the job ends ``partial`` with the reason, and is
  retried later for SendGrid only), then accepts. (SendGrid's suppressions spec is not among the
  vendored ones, so Prism cannot serve it here.)

Each call a provider answered is a record of processing of the erased contact, kept through the
erasure (and its retry) as the proof of propagation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from campaignflow.api.app import create_app
from campaignflow.compliance.erasure import (
    ConnectorPropagator,
    ErasureOptions,
    ErasureRunner,
    ErasureWorker,
    NoStream,
)
from campaignflow.domain.processing import Activity, ProcessingEntry
from campaignflow.engine.clock import SystemClock
from campaignflow.engine.runtime import Engine
from campaignflow.integrations.runtime import Integrations, open_integrations
from campaignflow.store.database import Database
from campaignflow.store.erasure import ErasureStore
from campaignflow.store.processing_log import ProcessingLogStore, ProcessingRecord
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import contact_cipher
from tests._support.faults import FaultServer, Respond, fault_server
from tests._support.hubspot_crm import TOKEN as HUBSPOT_TOKEN
from tests._support.hubspot_crm import HubSpotCrm
from tests._support.hubspot_crm import serving as serving_crm
from tests._support.prism_pool import PrismPool
from tests.contract.path_router import PIPEDRIVE_PREFIXES, routes_for, running_router
from tests.integration.api.conftest import TOKEN, make_settings

pytestmark = [pytest.mark.xdist_group("prism"), pytest.mark.timeout(240)]

SPECS = {
    "mailchimp_marketing": "mailchimp-marketing/marketing.swagger2.json",
    "mandrill": "mailchimp-transactional/transactional.openapi.json",
    "pipedrive_v1": "pipedrive/openapi-v1.yaml",
    "pipedrive_v2": "pipedrive/openapi-v2.yaml",
}
EMAIL = "ann@example.com"
SUPPRESS = "/v3/asm/suppressions/global"


@pytest.fixture(scope="session")
def mocks(prism_pool: PrismPool) -> Mapping[str, str]:
    return prism_pool.urls(SPECS)


@dataclass
class Providers:
    http: httpx.AsyncClient
    database: Database
    integrations: Integrations
    crm: HubSpotCrm
    sendgrid: FaultServer
    connections: dict[str, str]  # provider -> connection id

    async def records(self, contact_id: str) -> list[ProcessingRecord]:
        return await ProcessingLogStore(self.database).list("default", contact_id, limit=100)

    async def connect(self, provider: str, credentials: dict[str, str], base_url: str) -> None:
        response = await self.http.post(
            "/api/v1/connections",
            json={
                "name": provider.replace("_", "-"),
                "provider": provider,
                "credentials": credentials,
                "settings": {"baseUrl": base_url},
            },
        )
        assert response.status_code == 201, response.text
        self.connections[provider] = response.json()["id"]

    def worker(self, at: datetime) -> ErasureWorker:
        store = ErasureStore(self.database, contact_cipher())
        links = self.integrations
        propagator = ConnectorPropagator(
            links.connections,
            links.resolver,
            links.executor,
            records=ProcessingLogStore(self.database),
            now=lambda: at,
        )
        options = ErasureOptions(max_attempts=3, retry_after=timedelta(minutes=5))
        return ErasureWorker(ErasureRunner(store, NoStream(), propagator, "w", lambda: at, options))


@pytest.fixture
async def providers(database: Database, mocks: Mapping[str, str]) -> AsyncIterator[Providers]:
    settings = make_settings()
    engine = Engine.on(database, clock=SystemClock(), contact_cipher=contact_cipher())
    integrations = open_integrations(database, settings, engine.contacts.cipher)
    app = create_app(settings, database=database, engine=engine, integrations=integrations)
    crm = HubSpotCrm(lambda: datetime.now(UTC))
    routes = routes_for(PIPEDRIVE_PREFIXES, mocks)
    try:
        async with (
            serving_crm(crm) as crm_url,
            running_router(routes) as pipedrive_url,
            fault_server(Respond(201, {})) as sendgrid,
            serving(app, bearer(TOKEN)) as http,
        ):
            found = Providers(http, database, integrations, crm, sendgrid, {})
            await found.connect("hubspot", {"token": HUBSPOT_TOKEN}, crm_url)
            await found.connect("pipedrive", {"api_key": "pd-test"}, pipedrive_url)
            await found.connect(
                "mailchimp_marketing",
                {"api_key": "0123456789abcdef0123456789abcdef-us6"},
                mocks["mailchimp_marketing"],
            )
            await found.connect("mailchimp_transactional", {"api_key": "md-k"}, mocks["mandrill"])
            await found.connect("sendgrid", {"token": "SG.test"}, sendgrid.url)
            yield found
    finally:
        await integrations.aclose()
        await engine.wakeup.aclose()
    assert crm.violations == []


async def _link(providers: Providers, contact_id: str, provider: str, remote: str) -> None:
    async with providers.database.transaction() as connection:
        await connection.execute(
            text(
                "INSERT INTO sync_links (workspace_id, connection_id, contact_id, remote_id, "
                "fields, synced_at, pending_push, push_attempts) "
                "VALUES ('default', :conn, :contact, :remote, '{}', NULL, false, 0)"
            ),
            {"conn": providers.connections[provider], "contact": contact_id, "remote": remote},
        )


async def test_a_failed_provider_makes_the_job_partial_and_only_it_is_retried(
    providers: Providers,
) -> None:
    remote = providers.crm.add(EMAIL, firstname="Ann").id
    providers.crm.add("bob@example.com")
    created = await providers.http.post("/api/v1/contacts", json={"email": EMAIL})
    contact_id = created.json()["id"]
    await _link(providers, contact_id, "hubspot", remote)
    await _link(providers, contact_id, "pipedrive", "42")
    providers.sendgrid.script(SUPPRESS, Respond(500, {"errors": []}))
    now = datetime.now(UTC)
    await _sent_earlier(providers, contact_id, now)

    asked = await providers.http.delete(
        f"/api/v1/contacts/{contact_id}", params={"propagate": "true"}
    )
    assert await providers.worker(now).run_once()
    first = (await providers.http.get(asked.headers["location"])).json()

    assert first["status"] == "partial"
    sendgrid_id = providers.connections["sendgrid"]
    assert sendgrid_id in first["error"]
    outcomes = {p["provider"]: p["outcome"] for p in first["propagation"].values()}
    assert outcomes == {
        "hubspot": "ok",
        "pipedrive": "ok",
        "mailchimp_marketing": "ok",
        "mailchimp_transactional": "ok",
        "sendgrid": "failed",
    }
    assert first["propagation"][sendgrid_id]["detail"] == "HTTP 500"
    mailchimp = first["propagation"][providers.connections["mailchimp_marketing"]]
    assert mailchimp["requests"] == 1  # the search found one audience; deleted from it
    assert providers.crm.gdpr_deleted == [remote]
    assert providers.crm.by_email("bob@example.com") is not None
    assert EMAIL not in str(first)
    proofs = await providers.records(contact_id)
    assert _calls(proofs) == {
        ("hubspot (hubspot)", "gdpr_delete"): 1,
        ("pipedrive (pipedrive)", "delete_person"): 1,
        ("mailchimp_marketing (mailchimp-marketing)", "find_member_lists"): 1,
        ("mailchimp_marketing (mailchimp-marketing)", "delete_member_permanently"): 1,
        ("mailchimp_transactional (mailchimp-transactional)", "reject_add"): 1,
    }  # SendGrid failed: nothing was disclosed to record; the action of before is erased
    assert {(p.activity, p.purpose, p.legal_basis) for p in proofs} == {
        ("erasure.propagated", "erasure", "legal_obligation")
    }
    assert {p.details["erasure"] for p in proofs if p.details} == {first["id"]}
    assert EMAIL not in str(proofs)

    assert not await providers.worker(now + timedelta(minutes=1)).run_once()  # not yet due
    hubspot_calls = len(providers.crm.requests)
    assert await providers.worker(now + timedelta(minutes=6)).run_once()
    second = (await providers.http.get(asked.headers["location"])).json()

    assert second["status"] == "succeeded"
    assert second["attempts"] == 2
    assert second["propagation"][sendgrid_id]["outcome"] == "ok"
    assert len(providers.crm.requests) == hubspot_calls  # HubSpot was not asked again
    bodies = [r.json for r in providers.sendgrid.received(SUPPRESS)]
    assert bodies == [{"recipient_emails": [EMAIL]}] * 2
    # the retry erased the contact's rows again, and kept the first attempt's proofs
    after_retry = _calls(await providers.records(contact_id))
    assert after_retry == {**_calls(proofs), ("sendgrid (sendgrid)", "suppress_global"): 1}


async def _sent_earlier(providers: Providers, contact_id: str, at: datetime) -> None:
    """A record of processing as a message step writes it: erasure removes it."""
    entry = ProcessingEntry.of(
        workspace_id="default",
        contact_id=contact_id,
        occurred_at=at,
        activity=Activity.ACTION,
        purpose="marketing",
        recipient="sendgrid (sendgrid)",
        details={"execution": "x1", "node": "send", "action": "sendgrid.send_email"},
    )
    await ProcessingLogStore(providers.database).add([entry])


def _calls(records: list[ProcessingRecord]) -> dict[tuple[str, str], int]:
    """How many calls each (recipient, operation) the records name."""
    counted: dict[tuple[str, str], int] = {}
    for record in records:
        key = (record.recipient, str((record.details or {}).get("operation")))
        counted[key] = counted.get(key, 0) + 1
    return counted


async def test_without_propagate_no_provider_is_called(providers: Providers) -> None:
    providers.crm.add(EMAIL)
    asked = await providers.http.post("/api/v1/erasures", json={"email": EMAIL})
    assert await providers.worker(datetime.now(UTC)).run_once()

    job: dict[str, Any] = (await providers.http.get(asked.headers["location"])).json()
    assert job["status"] == "succeeded"
    assert job["propagation"] == {}
    assert providers.crm.gdpr_deleted == []
    assert providers.sendgrid.received(SUPPRESS) == []
