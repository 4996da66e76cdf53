"""Mailchimp Marketing (API 3.0): audience members and their tags, as ``mailchimp_marketing.*``.

Members are addressed by the MD5 of the lower-cased address (Mailchimp's "subscriber hash"),
computed here, so ``upsert_member`` is an idempotent PUT: retrying it cannot create a duplicate.
The host depends on the account's data centre, which is the API key's suffix (``…-us6`` →
``us6.api.mailchimp.com``). Authentication is HTTP Basic with any user name and the API key as
password; users know the secret as an API key, so the credential is called ``api_key``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import Field, JsonValue, model_validator

from campaignflow.domain.circuit_breaker import BreakerPolicy
from campaignflow.integrations.connector import (
    BasicAuth,
    ConnectionSettings,
    Connector,
    ConnectorModel,
    Operation,
    OutboundRequest,
    ProviderResponse,
    RateLimits,
    RequestContext,
    operations,
)
from campaignflow.integrations.prepare import MissingCredential
from campaignflow.integrations.providers._common import (
    EmailAddress,
    Params,
    Secret,
    body_field,
    unique,
)

MemberStatus = Literal["subscribed", "unsubscribed", "cleaned", "pending", "transactional"]
ListId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,50}$", examples=["a1b2c3d4e5"])]
TagName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\r\n]+$")]
_DATA_CENTRE = re.compile(r"-([a-z]{2,5}[0-9]{1,4})$")
API_KEY_PATTERN = r"^[A-Za-z0-9]{1,100}-[a-z]{2,5}[0-9]{1,4}$"


class MailchimpCredentials(ConnectorModel):
    api_key: Secret = Field(
        pattern=API_KEY_PATTERN,
        description="A Mailchimp Marketing API key; its suffix (e.g. -us6) names the data "
        "centre the requests go to.",
    )
    webhook_secret: Secret | None = Field(
        None,
        description="A random secret you append to the webhook URL you give Mailchimp "
        "(?secret=…); Mailchimp webhooks carry no signature, so this is what authenticates "
        "them.",
    )


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 of the lower-cased address (an identifier, not security)."""
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


def base_url_for(_settings: ConnectionSettings, credentials: Mapping[str, str]) -> str:
    """``https://<dc>.api.mailchimp.com/3.0`` for the data centre in the API key's suffix."""
    match = _DATA_CENTRE.search(credentials.get("api_key", ""))
    if match is None:
        raise MissingCredential(
            "mailchimp_marketing: the connection's 'api_key' has no data-centre suffix (like -us6)"
        )
    return f"https://{match.group(1)}.api.mailchimp.com/3.0"


def _member_path(list_id: str, email: str) -> str:
    return f"/lists/{list_id}/members/{subscriber_hash(email)}"


# ---------------------------------------------------------------------------- upsert_member


class UpsertMemberParams(Params):
    """Adds an address to an audience, or updates the member it already is."""

    list_id: ListId = Field(description="The audience (list) id.")
    email: EmailAddress = Field(description="The member's address.")
    status_if_new: MemberStatus = Field(
        "subscribed",
        description="Status if the address is new to the audience; 'pending' sends Mailchimp's "
        "double opt-in confirmation.",
    )
    status: MemberStatus | None = Field(
        None, description="Status to set even if the member exists (unset: keep theirs)."
    )
    merge_fields: dict[str, JsonValue] | None = Field(
        None, description='Merge field values by tag, e.g. {"FNAME": "Alice"}.'
    )
    language: str | None = Field(
        None, pattern=r"^[a-z]{2}(_[A-Z]{2})?$", description="Language code, e.g. 'fr'."
    )
    vip: bool | None = Field(None, description="Mark the member as VIP.")
    skip_merge_validation: bool = Field(
        False, description="Accept the member even if required merge fields are missing."
    )


def upsert_member_request(params: UpsertMemberParams, _ctx: RequestContext) -> OutboundRequest:
    body: dict[str, Any] = {"email_address": params.email, "status_if_new": params.status_if_new}
    optional: dict[str, Any] = {
        "status": params.status,
        "merge_fields": params.merge_fields,
        "language": params.language,
        "vip": params.vip,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    query = {"skip_merge_validation": "true"} if params.skip_merge_validation else {}
    return OutboundRequest(
        "PUT", _member_path(params.list_id, params.email), query=query, json=body
    )


def upsert_member_output(response: ProviderResponse) -> dict[str, Any]:
    return {
        "status": response.status,
        "id": body_field(response, "id"),
        "memberStatus": body_field(response, "status"),
    }


# ------------------------------------------------------------------------------ update_tags


class UpdateTagsParams(Params):
    """Adds and removes tags on a member; tags that do not exist yet are created."""

    list_id: ListId = Field(description="The audience (list) id.")
    email: EmailAddress = Field(description="The member's address.")
    add: Annotated[list[TagName], Field(max_length=100)] = Field(
        default_factory=list, description="Tags to add."
    )
    remove: Annotated[list[TagName], Field(max_length=100)] = Field(
        default_factory=list, description="Tags to remove."
    )
    is_syncing: bool = Field(
        False, description="Do not start automations triggered by these tag changes."
    )

    @model_validator(mode="after")
    def _some_change(self) -> Self:
        if not self.add and not self.remove:
            raise ValueError("give tags to add or to remove")
        unique([*self.add, *self.remove])  # one tag both added and removed is a mistake
        return self


def update_tags_request(params: UpdateTagsParams, _ctx: RequestContext) -> OutboundRequest:
    tags = [{"name": name, "status": "active"} for name in params.add]
    tags += [{"name": name, "status": "inactive"} for name in params.remove]
    body = {"tags": tags, "is_syncing": params.is_syncing}
    return OutboundRequest("POST", _member_path(params.list_id, params.email) + "/tags", json=body)


class DeleteMemberParams(Params):
    """Permanently deletes an audience member and their data; Mailchimp keeps no copy and the
    address cannot be re-imported (only re-subscribe by the person). How an erasure is
    propagated."""

    list_id: ListId = Field(description="The audience (list) id.")
    email: EmailAddress = Field(description="The member's address.")


def delete_member_request(params: DeleteMemberParams, _ctx: RequestContext) -> OutboundRequest:
    path = _member_path(params.list_id, params.email) + "/actions/delete-permanent"
    return OutboundRequest("POST", path)


class FindMemberListsParams(Params):
    """Finds the audiences an address is a member of (Mailchimp's member search, exact
    matches): where an erased address must be deleted."""

    email: EmailAddress = Field(description="The member's address.")


def find_member_lists_request(
    params: FindMemberListsParams, _ctx: RequestContext
) -> OutboundRequest:
    return OutboundRequest("GET", "/search-members", query={"query": params.email})


def find_member_lists_output(response: ProviderResponse) -> dict[str, Any]:
    """``listIds``: the audiences of the exact matches."""
    matches = body_field(response, "exact_matches")
    members = matches.get("members") if isinstance(matches, dict) else None
    ids = (
        [m.get("list_id") for m in members if isinstance(m, dict)]
        if isinstance(members, list)
        else []
    )
    return {"status": response.status, "listIds": sorted({i for i in ids if isinstance(i, str)})}


def ping_request(_ctx: RequestContext) -> OutboundRequest:
    return OutboundRequest("GET", "/ping")


MAILCHIMP_MARKETING = Connector(
    provider="mailchimp_marketing",
    title="Mailchimp Marketing",
    category="email",
    description="Mailchimp audiences: add or update members (idempotently, by address) and "
    "change their tags.",
    base_url="https://us1.api.mailchimp.com/3.0",  # replaced by the key's data centre
    base_url_for=base_url_for,
    auth=BasicAuth(fixed_username="campaignflow", password_credential="api_key"),  # noqa: S106
    credentials=MailchimpCredentials,
    operations=operations(
        Operation(
            name="upsert_member",
            summary="Add or update an audience member.",
            params=UpsertMemberParams,
            request=upsert_member_request,
            output=upsert_member_output,
        ),
        Operation(
            name="update_tags",
            summary="Add or remove tags on an audience member.",
            params=UpdateTagsParams,
            request=update_tags_request,
        ),
        Operation(
            name="delete_member_permanently",
            summary="Permanently delete an audience member and their data.",
            params=DeleteMemberParams,
            request=delete_member_request,
        ),
        Operation(
            name="find_member_lists",
            summary="Find the audiences an address is a member of.",
            params=FindMemberListsParams,
            request=find_member_lists_request,
            output=find_member_lists_output,
        ),
    ),
    # Mailchimp limits concurrency (10 connections per user), not rate, and sends no rate
    # headers (NOTES §5): a burst of 10 keeps simultaneous calls within that.
    rate_limits=RateLimits(requests_per_minute=600, burst_limit=10),
    breaker=BreakerPolicy(),
    test=ping_request,
    docs_url="https://mailchimp.com/developer/marketing/api/",
)
