"""Listing workflows: filters, case-insensitive search and keyset pages, on both dialects."""

from __future__ import annotations

import pytest

from campaignflow.store.workflows import WorkflowStore
from tests.integration.store.conftest import WORKSPACE, create


async def ids(store: WorkflowStore, **filters: object) -> list[str]:
    return [record.id for record in await store.list(WORKSPACE, **filters)]  # type: ignore[arg-type]


async def test_archived_workflows_are_listed_only_when_asked_for(store: WorkflowStore) -> None:
    for workflow_id in ("active-one", "archived-one", "draft-one", "paused-one"):
        await create(store, workflow_id)
    await store.set_status(WORKSPACE, "active-one", "active", allowed_from={"draft"})
    await store.set_status(WORKSPACE, "paused-one", "paused", allowed_from={"draft"})
    await store.set_status(WORKSPACE, "archived-one", "archived", allowed_from={"draft"})

    assert await ids(store) == ["active-one", "draft-one", "paused-one"]
    assert await ids(store, status="archived") == ["archived-one"]
    assert await ids(store, status="paused") == ["paused-one"]


async def test_list_summarises_each_workflow_at_its_latest_version(store: WorkflowStore) -> None:
    await create(store, "welcome")
    await create(store, "winback")
    await store.add_version(
        WORKSPACE, "welcome", name="Welcome v2", definition={"v": 2}, content_hash="h2",
        expected_version=1,
    )  # fmt: skip

    listed = await store.list(WORKSPACE)

    assert [(r.id, r.version, r.name) for r in listed] == [
        ("welcome", 2, "Welcome v2"),
        ("winback", 1, "Winback"),
    ]
    full = await store.get(WORKSPACE, "welcome")
    assert (full.version, full.definition) == (2, {"v": 2})
    assert listed[0].updated_at == full.updated_at


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("50%", ["fifty"]),
        ("%", ["fifty"]),
        ("_", ["snake"]),
        ("a_b", ["snake"]),
        ("\\", ["slash"]),
        ("ab", ["plain"]),
        ("SALE", ["fifty", "summer"]),
    ],
)
async def test_search_treats_like_wildcards_as_plain_characters(
    store: WorkflowStore, query: str, expected: list[str]
) -> None:
    await create(store, "fifty", "50% off sale")
    await create(store, "snake", "a_b test")
    await create(store, "slash", "either\\or")
    await create(store, "plain", "aXb and ab")
    await create(store, "summer", "Summer Sale")

    assert await ids(store, name_contains=query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ÉTÉ", ["summer"]),
        ("été", ["summer"]),
        ("STRASSE", ["german"]),
        ("straße", ["german"]),
        ("ΣΟΦΊΑ", ["greek"]),
        ("Ü", ["german"]),
    ],
)
async def test_search_ignores_case_beyond_ascii(
    store: WorkflowStore, query: str, expected: list[str]
) -> None:
    await create(store, "summer", "Soldes d'Été")
    await create(store, "german", "Grüße aus der Straße")
    await create(store, "greek", "σοφία")

    assert await ids(store, name_contains=query) == expected


async def test_search_combines_with_status_and_pages(store: WorkflowStore) -> None:
    for workflow_id in ("sale-a", "sale-b", "sale-c", "other"):
        await create(store, workflow_id, f"{workflow_id} campaign")
    await store.set_status(WORKSPACE, "sale-b", "archived", allowed_from={"draft"})

    assert await ids(store, name_contains="SALE") == ["sale-a", "sale-c"]
    assert await ids(store, name_contains="sale", after="sale-a", limit=1) == ["sale-c"]
    assert await ids(store, name_contains="sale", status="archived") == ["sale-b"]


async def test_keyset_pages_have_no_duplicates_or_gaps(store: WorkflowStore) -> None:
    # Ids whose byte-wise and linguistic orders differ: pages follow code point order on both
    # dialects, whatever the database's collation.
    created = ["ab", "a-b", "a_b", "aB", "Z", "z9", "z10", "0-start", "b", "ba", "b-a"]
    for workflow_id in created:
        await create(store, workflow_id)

    pages: list[list[str]] = []
    after: str | None = None
    while page := await ids(store, after=after, limit=3):
        pages.append(page)
        after = page[-1]

    assert [len(page) for page in pages] == [3, 3, 3, 2]
    assert [workflow_id for page in pages for workflow_id in page] == sorted(created)


async def test_a_page_can_start_after_an_id_that_no_longer_matches(store: WorkflowStore) -> None:
    for workflow_id in ("a", "b", "c"):
        await create(store, workflow_id)
    await store.set_status(WORKSPACE, "b", "archived", allowed_from={"draft"})

    assert await ids(store, after="b") == ["c"]
    assert await ids(store, after="bb", limit=5) == ["c"]
