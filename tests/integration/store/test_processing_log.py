"""The records of processing on both dialects: batch writes, the per-contact list, the purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaignflow.domain.processing import Activity, LegalBasis, ProcessingEntry
from campaignflow.store.database import Database
from campaignflow.store.processing_log import ProcessingFilter, ProcessingLogStore

T0 = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)


def entry(
    contact: str = "c1",
    minutes: int = 0,
    *,
    workspace: str = "acme",
    activity: Activity = Activity.ACTION,
    purpose: str = "marketing",
    node: str = "send",
) -> ProcessingEntry:
    return ProcessingEntry.of(
        workspace_id=workspace,
        contact_id=contact,
        occurred_at=T0 + timedelta(minutes=minutes),
        activity=activity,
        purpose=purpose,
        recipient="sendgrid (mail)",
        details={"execution": "x1", "node": node, "action": "sendgrid.send_email"},
    )


async def test_a_contacts_entries_come_back_newest_first_and_only_theirs(
    database: Database,
) -> None:
    store = ProcessingLogStore(database)
    await store.add(
        [
            entry("c1", 0, node="first"),
            entry("c1", 2, purpose="transactional", node="third"),
            entry("c1", 1, node="second"),
            entry("c2", 3),
            entry("c1", 4, workspace="globex"),
        ]
    )

    listed = await store.list("acme", "c1")

    assert [r.details["node"] for r in listed if r.details] == ["third", "second", "first"]
    assert {(r.workspace_id, r.contact_id) for r in listed} == {("acme", "c1")}
    assert listed[0].legal_basis == LegalBasis.CONTRACT.value
    assert listed[1].legal_basis == LegalBasis.CONSENT.value
    assert listed[0].occurred_at == T0 + timedelta(minutes=2)
    assert listed[0].recipient == "sendgrid (mail)"


async def test_filters_and_the_keyset_position_combine(database: Database) -> None:
    store = ProcessingLogStore(database)
    await store.add([entry("c1", minute) for minute in range(6)])
    await store.add([entry("c1", 10, activity=Activity.EXPORT, purpose="access_request")])

    exports = await store.list("acme", "c1", ProcessingFilter(activity="export"))
    window = await store.list(
        "acme",
        "c1",
        ProcessingFilter(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=4)),
    )
    first = await store.list("acme", "c1", ProcessingFilter(activity="action"), limit=4)
    rest = await store.list(
        "acme", "c1", ProcessingFilter(activity="action", before=first[-1].id), limit=4
    )

    assert [(r.activity, r.legal_basis) for r in exports] == [("export", "legal_obligation")]
    assert [r.occurred_at.minute for r in window] == [3, 2, 1]  # since inclusive, until exclusive
    assert [r.occurred_at.minute for r in first] == [5, 4, 3, 2]
    assert [r.occurred_at.minute for r in rest] == [1, 0]


async def test_a_large_batch_is_written_whole(database: Database) -> None:
    store = ProcessingLogStore(database)
    await store.add([entry(f"c{n % 7}", n % 50) for n in range(1500)])

    listed = await store.list("acme", "c3", limit=1000)

    assert len(listed) == len([n for n in range(1500) if n % 7 == 3])
    assert len({r.id for r in listed}) == len(listed)


async def test_the_purge_removes_what_is_older_than_the_cutoff_in_bounded_batches(
    database: Database,
) -> None:
    store = ProcessingLogStore(database)
    await store.add([entry("c1", minute) for minute in range(10)])
    await store.add([entry("c1", 0, workspace="globex")])
    cutoff = T0 + timedelta(minutes=7)

    batches = [await store.purge_older_than("acme", cutoff, 3) for _ in range(4)]

    assert batches == [3, 3, 1, 0]
    assert [r.occurred_at.minute for r in await store.list("acme", "c1")] == [9, 8, 7]
    assert len(await store.list("globex", "c1")) == 1  # another workspace keeps its entries


async def test_nothing_to_write_touches_nothing(database: Database) -> None:
    store = ProcessingLogStore(database)
    await store.add([])

    assert await store.list("acme", "c1") == []
