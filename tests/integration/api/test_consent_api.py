"""``/api/v1/contacts/{id}/consent`` as a client sees it, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from campaignflow.security.rbac import Role
from tests.integration.api.conftest import ClientFactory, make_settings
from tests.integration.api.test_authorization import make_key

PROBLEM = "application/problem+json"


async def new_contact(client: httpx.AsyncClient, user_id: str = "u-1") -> str:
    response = await client.post("/api/v1/contacts", json={"userId": user_id})
    assert response.status_code == 201, response.text
    contact_id: str = response.json()["id"]
    return contact_id


async def change(
    client: httpx.AsyncClient, contact_id: str, body: object, **headers: str
) -> httpx.Response:
    return await client.patch(f"/api/v1/contacts/{contact_id}/consent", json=body, headers=headers)


def pointers(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    return {error["pointer"]: error["code"] for error in response.json()["errors"]}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_consent_given_through_the_api_shows_everywhere_with_its_proof(
    client: httpx.AsyncClient,
) -> None:
    contact_id = await new_contact(client)
    before = (await client.get(f"/api/v1/contacts/{contact_id}/consent")).json()

    response = await change(
        client,
        contact_id,
        {
            "purposes": {"email_marketing": True, "sms_marketing": False},
            "source": "form",
            "proof": {"form": "newsletter-signup"},
            "occurredAt": "2026-03-01T10:00:00+01:00",
        },
        **{"User-Agent": "Browser/1.0"},
    )

    assert before == {"contactId": contact_id, "purposes": {}}
    assert response.status_code == 200, response.text
    assert response.json() == {
        "contactId": contact_id,
        "purposes": {
            "email_marketing": {"granted": True, "at": "2026-03-01T09:00:00Z", "source": "form"},
            "sms_marketing": {"granted": False, "at": "2026-03-01T09:00:00Z", "source": "form"},
        },
    }
    read = (await client.get(f"/api/v1/contacts/{contact_id}/consent")).json()
    contact = (await client.get(f"/api/v1/contacts/{contact_id}")).json()
    assert read == response.json()
    assert contact["consent"] == response.json()["purposes"]
    history = (await client.get(f"/api/v1/contacts/{contact_id}/consent/history")).json()
    assert [(i["purpose"], i["granted"]) for i in history["items"]] == [
        ("sms_marketing", False),
        ("email_marketing", True),
    ]
    proof = history["items"][1]["proof"]
    assert proof["form"] == "newsletter-signup"
    assert proof["userAgent"] == "Browser/1.0"
    assert proof["ip"] == "127.0.0.1"  # the peer: no trusted proxy in between
    assert proof["apiClient"].startswith("api_key:")
    assert history["items"][1]["occurredAt"] == "2026-03-01T09:00:00Z"
    assert history["nextCursor"] is None


async def test_a_relaying_server_names_the_persons_address_but_not_another_client(
    client: httpx.AsyncClient,
) -> None:
    contact_id = await new_contact(client)
    body = {
        "purposes": {"tracking": True},
        "proof": {"ip": "2001:db8::1", "userAgent": "Their browser"},
    }

    assert (await change(client, contact_id, body)).status_code == 200
    forged = await change(
        client, contact_id, {"purposes": {"tracking": True}, "proof": {"apiClient": "someone"}}
    )

    (item,) = (await client.get(f"/api/v1/contacts/{contact_id}/consent/history")).json()["items"]
    assert item["proof"]["ip"] == "2001:db8::1"
    assert item["proof"]["userAgent"] == "Their browser"
    assert item["source"] == "api"
    assert pointers(forged) == {"/proof/apiClient": "unknown_field"}


async def test_every_bad_member_is_a_problem_with_its_pointer(client: httpx.AsyncClient) -> None:
    contact_id = await new_contact(client)
    future = iso(datetime.now(UTC) + timedelta(days=1))

    many = await change(
        client,
        contact_id,
        {
            "purposes": {"Email Marketing": True, "sms_marketing": "yes", "a/b": False},
            "source": "Web Form",
            "proof": {"ip": "not-an-ip"},
            "occurredAt": "2026-03-01T09:00:00",
        },
    )
    empty = await change(client, contact_id, {"purposes": {}})
    ahead = await change(client, contact_id, {"purposes": {"tracking": True}, "occurredAt": future})
    typo = await change(client, contact_id, {"purpose": {"tracking": True}})
    ancient = await change(
        client,
        contact_id,
        {"purposes": {"tracking": True}, "occurredAt": "0001-01-01T00:00:00+01:00"},
    )

    assert pointers(many) == {
        "/purposes/Email Marketing": "invalid_value",
        "/purposes/sms_marketing": "type",
        "/purposes/a~1b": "invalid_value",
        "/source": "invalid_value",
        "/proof/ip": "invalid_value",
        "/occurredAt": "invalid_timestamp",
    }
    assert pointers(empty) == {"/purposes": "too_short"}
    assert list(pointers(ahead)) == list(pointers(ancient)) == ["/occurredAt"]
    assert pointers(typo) == {"/purpose": "unknown_field", "/purposes": "required"}
    assert (await client.get(f"/api/v1/contacts/{contact_id}/consent")).json()["purposes"] == {}


async def test_an_unknown_contact_is_404(client: httpx.AsyncClient) -> None:
    body = {"purposes": {"tracking": True}}

    for response in (
        await client.get("/api/v1/contacts/nobody/consent"),
        await change(client, "nobody", body),
        await client.get("/api/v1/contacts/nobody/consent/history"),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == PROBLEM


async def test_an_older_statement_is_history_only_and_a_repeat_is_a_reconfirmation(
    client: httpx.AsyncClient,
) -> None:
    contact_id = await new_contact(client)
    withdrawn = {"purposes": {"email_marketing": False}, "occurredAt": "2026-03-01T12:00:00Z"}
    older = {"purposes": {"email_marketing": True}, "occurredAt": "2026-03-01T11:00:00Z"}
    again = {"purposes": {"email_marketing": False}, "occurredAt": "2026-03-01T13:00:00Z"}

    await change(client, contact_id, withdrawn)
    late = (await change(client, contact_id, older)).json()
    reconfirmed = (await change(client, contact_id, again)).json()

    assert late["purposes"]["email_marketing"]["granted"] is False
    assert reconfirmed["purposes"]["email_marketing"] == {
        "granted": False,
        "at": "2026-03-01T13:00:00Z",
        "source": "api",
    }
    items = (await client.get(f"/api/v1/contacts/{contact_id}/consent/history")).json()["items"]
    assert [i["granted"] for i in items] == [False, True, False]


async def test_the_history_pages_and_filters(client: httpx.AsyncClient) -> None:
    contact_id = await new_contact(client)
    for hour in range(4):
        body = {
            "purposes": {"email_marketing": hour % 2 == 0, "tracking": True},
            "occurredAt": f"2026-03-01T1{hour}:00:00Z",
        }
        assert (await change(client, contact_id, body)).status_code == 200
    url = f"/api/v1/contacts/{contact_id}/consent/history"

    first = (await client.get(url, params={"purpose": "email_marketing", "limit": 3})).json()
    rest = (
        await client.get(
            url, params={"purpose": "email_marketing", "limit": 3, "cursor": first["nextCursor"]}
        )
    ).json()
    early = (await client.get(url, params={"before": "2026-03-01T11:00:00Z"})).json()
    bad_cursor = await client.get(url, params={"cursor": "nope"})
    bad_before = await client.get(url, params={"before": "yesterday"})

    occurred = [i["occurredAt"] for i in first["items"] + rest["items"]]
    assert occurred == [f"2026-03-01T1{hour}:00:00Z" for hour in (3, 2, 1, 0)]
    assert rest["nextCursor"] is None
    assert {i["purpose"] for i in early["items"]} == {"email_marketing", "tracking"}
    assert {i["occurredAt"] for i in early["items"]} == {"2026-03-01T10:00:00Z"}
    assert (bad_cursor.status_code, bad_before.status_code) == (400, 400)


async def test_reading_consent_needs_contacts_read_and_changing_it_contacts_write(
    client: httpx.AsyncClient,
) -> None:
    contact_id = await new_contact(client)
    reader = await make_key(client, Role.EDITOR, scopes=["contacts:read"])
    auth = {"Authorization": f"Bearer {reader}"}

    read = await client.get(f"/api/v1/contacts/{contact_id}/consent", headers=auth)
    write = await change(client, contact_id, {"purposes": {"tracking": True}}, **auth)

    assert read.status_code == 200
    assert write.status_code == 403


async def test_workspaces_do_not_see_each_others_contacts_consent(
    app_client: ClientFactory,
) -> None:
    async with app_client(make_settings("acme")) as acme:
        contact_id = await new_contact(acme)
        async with app_client(make_settings("globex")) as globex:
            body: dict[str, Any] = {"purposes": {"tracking": True}}
            assert (await change(globex, contact_id, body)).status_code == 404
            read = await globex.get(f"/api/v1/contacts/{contact_id}/consent")
            assert read.status_code == 404
        assert (await acme.get(f"/api/v1/contacts/{contact_id}/consent")).json()["purposes"] == {}
