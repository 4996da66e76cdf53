"""Request and response shapes of the contacts resource."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from campaignflow.api.consent_schemas import PurposeState, purposes_of
from campaignflow.api.schemas import ApiModel
from campaignflow.domain.contacts import (
    KEEP,
    MAX_EMAIL_LENGTH,
    ContactChange,
    ContactRecord,
    NewContact,
    normalize_email,
)
from campaignflow.domain.fields import TimeZoneName, domain_error

#: Members of the request bodies, to suggest a spelling for an unknown one.
FIELDS = ("userId", "anonymousId", "email", "timezone", "traits")


def _email(value: str) -> str:
    email = normalize_email(value)
    if email is None:
        raise domain_error("invalid_value", "must be an email address such as ada@example.com")
    return email


EmailAddress = Annotated[
    str,
    Field(min_length=1, max_length=MAX_EMAIL_LENGTH, examples=["ada@example.com"]),
    AfterValidator(_email),
]
"""Stored lower-cased, without surrounding spaces: that is the identity the contact has."""
ExternalId = Annotated[str, Field(min_length=1, max_length=200)]


class ContactCreate(ApiModel):
    """The body of `POST /contacts`: at least one of `userId`, `anonymousId`, `email`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: ExternalId | None = Field(None, description="Your id of the person.")
    anonymous_id: ExternalId | None = Field(
        None, description="An anonymous id (a device's or a browser's) the person used."
    )
    email: EmailAddress | None = None
    timezone: TimeZoneName | None = Field(None, description="An IANA time zone name.")
    traits: dict[str, Any] = Field(
        default_factory=dict, description="Anything else known about the person."
    )

    @model_validator(mode="after")
    def _known_by_something(self) -> Self:
        if self.user_id is None and self.anonymous_id is None and self.email is None:
            raise domain_error(
                "required", "needs at least one identity: userId, anonymousId or email"
            )
        return self

    def to_new(self, workspace_id: str) -> NewContact:
        return NewContact(
            workspace_id,
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            email=self.email,
            timezone=self.timezone,
            traits=self.traits,
        )


class ContactPatch(ApiModel):
    """A JSON merge patch (RFC 7396) of a contact: members left out stay, `null` clears;
    `traits` merges into the traits (recursively, `null` removes a trait)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: ExternalId | None = None
    email: EmailAddress | None = None
    timezone: TimeZoneName | None = None
    traits: dict[str, Any] | None = None

    def to_change(self) -> ContactChange:
        given = self.model_fields_set
        return ContactChange(
            user_id=self.user_id if "user_id" in given else KEEP,
            email=self.email if "email" in given else KEEP,
            timezone=self.timezone if "timezone" in given else KEEP,
            traits=self.traits if "traits" in given else KEEP,
        )


class Contact(ApiModel):
    id: str
    user_id: str | None = None
    email: str | None = Field(None, description="Lower-cased.")
    timezone: str | None = None
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None = Field(None, description="When its latest event happened.")
    consent: dict[str, PurposeState] = Field(
        default_factory=dict,
        description="Consent per purpose (`PATCH /contacts/{id}/consent` changes it).",
    )

    @classmethod
    def from_record(cls, record: ContactRecord) -> Contact:
        return cls(
            id=record.id,
            user_id=record.user_id,
            email=record.email,
            timezone=record.timezone,
            traits=record.traits,
            created_at=record.created_at,
            updated_at=record.updated_at,
            last_seen_at=record.last_seen_at,
            consent=purposes_of(record.consent),
        )


class ContactPage(ApiModel):
    items: list[Contact]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )
