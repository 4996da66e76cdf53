"""The contacts resource as a client sees it, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from campaignflow.store.database import Database
from tests.integration.api.conftest import ClientFactory, make_settings
from tests.integration.api.test_erasures_api import run_erasures

PROBLEM = "application/problem+json"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/contacts", json=body)
    assert response.status_code == 201, response.text
    contact: dict[str, Any] = response.json()
    return contact


async def patch(client: httpx.AsyncClient, contact_id: str, body: object) -> httpx.Response:
    return await client.patch(f"/api/v1/contacts/{contact_id}", json=body, headers=MERGE_PATCH)


def pointers(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == PROBLEM
    return {error["pointer"]: error["code"] for error in response.json()["errors"]}


async def test_create_then_get_a_contact(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/contacts",
        json={
            "userId": "u-1",
            "email": "  Ada@Example.COM ",
            "timezone": "Europe/Berlin",
            "traits": {"plan": "pro", "address": {"city": "Oslo"}},
        },
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/api/v1/contacts/{created['id']}"
    assert created["userId"] == "u-1"
    assert created["email"] == "ada@example.com"
    assert created["timezone"] == "Europe/Berlin"
    assert created["traits"] == {"plan": "pro", "address": {"city": "Oslo"}}
    assert created["lastSeenAt"] is None
    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_patch_is_a_json_merge_patch(client: httpx.AsyncClient) -> None:
    created = await create(
        client, userId="u-1", email="old@x.io", traits={"plan": "free", "a": {"x": 1, "y": 2}}
    )

    response = await patch(
        client,
        created["id"],
        {
            "email": "New@X.io",
            "timezone": "Asia/Tokyo",
            "traits": {"plan": "pro", "a": {"x": None}},
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["userId"], body["email"], body["timezone"]) == ("u-1", "new@x.io", "Asia/Tokyo")
    assert body["traits"] == {"plan": "pro", "a": {"y": 2}}
    assert body["updatedAt"] >= created["updatedAt"]
    plain = await client.patch(
        f"/api/v1/contacts/{created['id']}", json={"timezone": None, "traits": None}
    )
    assert plain.status_code == 200, "application/json is accepted too"
    assert (plain.json()["timezone"], plain.json()["traits"]) == (None, {})
    assert (await client.get(f"/api/v1/contacts/{created['id']}")).json() == plain.json()
    found = await client.get("/api/v1/contacts", params={"email": "new@x.io"})
    assert [c["id"] for c in found.json()["items"]] == [created["id"]]
    assert (await client.get("/api/v1/contacts", params={"email": "old@x.io"})).json()[
        "items"
    ] == []


async def test_delete_erases_the_contact_and_frees_its_identities(
    client: httpx.AsyncClient, database: Database
) -> None:
    created = await create(client, userId="u-1", anonymousId="a-1")

    deleted = await client.delete(f"/api/v1/contacts/{created['id']}", params={"suppress": "false"})

    assert deleted.status_code == 202
    assert deleted.json()["subject"] == {"contactId": created["id"]}
    await run_erasures(database)
    assert (await client.get(f"/api/v1/contacts/{created['id']}")).status_code == 404
    assert (await client.delete(f"/api/v1/contacts/{created['id']}")).status_code == 404
    again = await create(client, userId="u-1", anonymousId="a-1")  # not suppressed: allowed
    assert again["id"] != created["id"]


async def test_list_filters_by_identity_and_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    made = [
        await create(client, userId=f"u-{n}", anonymousId=f"a-{n}", email=f"c{n}@x.io")
        for n in range(5)
    ]
    ids = [contact["id"] for contact in reversed(made)]  # newest first

    first = (await client.get("/api/v1/contacts", params={"limit": 2})).json()
    second = (
        await client.get("/api/v1/contacts", params={"limit": 2, "cursor": first["nextCursor"]})
    ).json()
    last = (
        await client.get("/api/v1/contacts", params={"limit": 2, "cursor": second["nextCursor"]})
    ).json()

    assert [c["id"] for c in first["items"] + second["items"] + last["items"]] == ids
    assert "nextCursor" not in last or last["nextCursor"] is None
    for params, expected in [
        ({"email": " C3@X.IO"}, [made[3]["id"]]),
        ({"userId": "u-2"}, [made[2]["id"]]),
        ({"anonymousId": "a-4"}, [made[4]["id"]]),
        ({"userId": "u-2", "anonymousId": "a-4"}, []),
        ({"userId": "nobody"}, []),
    ]:
        response = await client.get("/api/v1/contacts", params=params)
        assert [c["id"] for c in response.json()["items"]] == expected, params


async def test_bad_query_parameters_name_the_parameter(client: httpx.AsyncClient) -> None:
    bad_limit = await client.get("/api/v1/contacts", params={"limit": 0})
    bad_cursor = await client.get("/api/v1/contacts", params={"cursor": "forged"})

    for response in (bad_limit, bad_cursor):
        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM
    assert bad_limit.json()["errors"][0]["parameter"] == "limit"
    assert bad_cursor.json()["errors"][0]["parameter"] == "cursor"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"traits": {"plan": "pro"}}, {"": "required"}),
        ({"email": "not-an-address"}, {"/email": "invalid_value"}),
        ({"userId": "u", "timezone": "Mars/Olympus"}, {"/timezone": "invalid_timezone"}),
        ({"userId": 42, "traits": ["plan"]}, {"/userId": "type", "/traits": "type"}),
        ({"userId": ""}, {"/userId": "too_short"}),
        ({"userId": "u", "emial": "a@x.io"}, {"/emial": "unknown_field"}),
        (["userId"], {"": "type"}),
    ],
)
async def test_bad_bodies_get_problems_with_pointers(
    client: httpx.AsyncClient, body: object, expected: dict[str, str]
) -> None:
    response = await client.post("/api/v1/contacts", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["type"] == "urn:campaignflow:problem:invalid-body"
    assert pointers(response) == expected
    assert (await client.get("/api/v1/contacts")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"timezone": "Europe/Nowhere"}, {"/timezone": "invalid_timezone"}),
        ({"email": "a@"}, {"/email": "invalid_value"}),
        ({"traits": "plan"}, {"/traits": "type"}),
        ({"id": "other", "createdAt": "2026-01-01T00:00:00Z"}, {"/id": "unknown_field",
                                                               "/createdAt": "unknown_field"}),
        ("replace everything", {"": "type"}),
    ],
)  # fmt: skip
async def test_bad_patches_get_problems_with_pointers(
    client: httpx.AsyncClient, body: object, expected: dict[str, str]
) -> None:
    created = await create(client, userId="u-1", traits={"plan": "pro"})

    response = await patch(client, created["id"], body)

    assert response.status_code == 422, response.text
    assert pointers(response) == expected
    assert (await client.get(f"/api/v1/contacts/{created['id']}")).json() == created


async def test_bodies_must_be_json(client: httpx.AsyncClient) -> None:
    created = await create(client, userId="u-1")

    posted = await client.post(
        "/api/v1/contacts", content=b"userId=u-2", headers={"Content-Type": "text/plain"}
    )
    patched = await client.patch(
        f"/api/v1/contacts/{created['id']}", content=b'{"userId": ', headers=MERGE_PATCH
    )

    assert posted.status_code == 415
    assert patched.status_code == 400
    assert patched.json()["type"] == "urn:campaignflow:problem:malformed-json"


async def test_an_identity_of_another_contact_is_a_conflict(client: httpx.AsyncClient) -> None:
    first = await create(client, userId="u-1", email="ada@x.io", anonymousId="a-1")
    second = await create(client, userId="u-2")

    for body in ({"email": "ADA@x.io"}, {"userId": "u-1"}, {"anonymousId": "a-1"}):
        response = await client.post("/api/v1/contacts", json=body)
        assert response.status_code == 409, body
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "urn:campaignflow:problem:already-exists"
    conflict = await patch(client, second["id"], {"email": "ada@x.io"})
    assert conflict.status_code == 409
    assert (await client.get(f"/api/v1/contacts/{second['id']}")).json() == second
    assert len((await client.get("/api/v1/contacts")).json()["items"]) == 2
    assert (await client.get(f"/api/v1/contacts/{first['id']}")).json() == first


async def test_workspaces_do_not_see_each_other(app_client: ClientFactory) -> None:
    async with app_client() as client:
        ours = await create(client, userId="u-1", email="ada@x.io")
    async with app_client(make_settings(workspace_id="globex")) as other:
        url = f"/api/v1/contacts/{ours['id']}"
        assert (await other.get(url)).status_code == 404
        assert (await patch(other, ours["id"], {"traits": {"hijacked": True}})).status_code == 404
        assert (await other.delete(url)).status_code == 404
        assert (await other.get("/api/v1/contacts")).json()["items"] == []
        listed = await other.get("/api/v1/contacts", params={"userId": "u-1"})
        assert listed.json()["items"] == []
        theirs = await create(other, userId="u-1", email="ada@x.io")
        assert theirs["id"] != ours["id"], "identities are unique per workspace"
    async with app_client() as client:
        assert (await client.get(f"/api/v1/contacts/{ours['id']}")).json() == ours


async def test_contacts_need_the_token(app_client: ClientFactory) -> None:
    async with app_client(auth=False) as client:
        listed = await client.get("/api/v1/contacts")
        created = await client.post("/api/v1/contacts", json={"userId": "u-1"})

    assert listed.status_code == created.status_code == 401
