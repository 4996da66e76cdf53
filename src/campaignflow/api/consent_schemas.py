"""Request and response shapes of a contact's consent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from ipaddress import ip_address
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema

from campaignflow.api.schemas import ApiModel
from campaignflow.domain.consent import (
    API_SOURCE,
    PURPOSE_PATTERN,
    ConsentDocument,
    ConsentProof,
    is_purpose,
    read_state,
)
from campaignflow.domain.fields import Timestamp, domain_error
from campaignflow.services.consents import ConsentStatement
from campaignflow.store.consents import ConsentRecord

#: Members of the request body, to suggest a spelling for an unknown one.
FIELDS = ("purposes", "source", "proof", "occurredAt", "form", "ip", "userAgent")
MAX_PURPOSES = 64


def _purpose(value: str) -> str:
    if not is_purpose(value):
        raise domain_error(
            "invalid_value",
            "is not a purpose: a lower-case letter, then up to 63 lower-case letters, digits "
            "or '_' (email_marketing, sms_marketing, tracking)",
        )
    return value


def _address(value: str) -> str:
    try:
        return str(ip_address(value))
    except ValueError:
        raise domain_error("invalid_value", "must be an IPv4 or IPv6 address") from None


PurposeName = Annotated[
    str,
    AfterValidator(_purpose),
    WithJsonSchema({"type": "string", "pattern": PURPOSE_PATTERN}),
]
SourceName = Annotated[
    str,
    Field(pattern=PURPOSE_PATTERN, examples=["form", "preference_center", "import"]),
]


class ProofIn(ApiModel):
    """Evidence of the statement; `ip` and `userAgent` default to this request's (send the
    person's when your server relays what they submitted)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    form: str | None = Field(
        None, min_length=1, max_length=2048, description="The form or page it was given on."
    )
    ip: Annotated[str, AfterValidator(_address)] | None = Field(
        None, max_length=45, description="The person's IP address."
    )
    user_agent: str | None = Field(None, min_length=1, max_length=512)


class ConsentPatch(ApiModel):
    """The body of `PATCH /contacts/{id}/consent`: purposes granted (`true`) or withdrawn
    (`false`); purposes left out stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    purposes: dict[PurposeName, bool] = Field(
        min_length=1,
        max_length=MAX_PURPOSES,
        examples=[{"email_marketing": True, "sms_marketing": False}],
    )
    source: SourceName = Field(API_SOURCE, description="Where the person said so.")
    proof: ProofIn | None = None
    occurred_at: Timestamp | None = Field(
        None, description="When the person said so (RFC 3339, with offset); default: now."
    )

    def to_statement(
        self, *, ip: str | None, user_agent: str | None, client: str
    ) -> ConsentStatement:
        """The statement, its proof completed with this request's address, user agent and
        the credential that made it (always that one: a client cannot name another)."""
        given = self.proof or ProofIn()
        proof = ConsentProof(
            ip=given.ip or ip,
            user_agent=given.user_agent or user_agent,
            form=given.form,
            api_client=client,
        )
        return ConsentStatement(self.purposes, self.source, proof, self.occurred_at)


class PurposeState(ApiModel):
    granted: bool
    at: datetime = Field(description="When the person last said so.")
    source: str


def purposes_of(document: Mapping[str, Any] | None) -> dict[str, PurposeState]:
    """A ``contacts.consent`` document as the API shows it."""
    return {
        purpose: PurposeState(granted=entry.granted, at=entry.at, source=entry.source)
        for purpose, entry in read_state(document).items()
    }


class ContactConsent(ApiModel):
    contact_id: str
    purposes: dict[str, PurposeState] = Field(
        description="The consent now, per purpose; a purpose never stated is absent."
    )

    @classmethod
    def of(cls, contact_id: str, document: ConsentDocument) -> ContactConsent:
        return cls(contact_id=contact_id, purposes=purposes_of(document))


class ProofOut(ApiModel):
    ip: str | None = None
    user_agent: str | None = None
    form: str | None = None
    api_client: str | None = Field(None, description="The credential that reported it.")
    message_id: str | None = Field(None, description="The event that carried it.")


class ConsentHistoryItem(ApiModel):
    id: str
    purpose: str
    granted: bool
    source: str
    proof: ProofOut
    occurred_at: datetime = Field(description="When the person said so.")
    recorded_at: datetime

    @classmethod
    def from_record(cls, record: ConsentRecord) -> ConsentHistoryItem:
        return cls(
            id=record.id,
            purpose=record.purpose,
            granted=record.granted,
            source=record.source,
            proof=ProofOut.model_validate(record.proof),
            occurred_at=record.occurred_at,
            recorded_at=record.recorded_at,
        )


class ConsentHistoryPage(ApiModel):
    items: list[ConsentHistoryItem]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )
