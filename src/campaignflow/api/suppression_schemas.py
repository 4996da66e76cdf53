"""Request and response shapes of the suppression list."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field

from campaignflow.api.contact_schemas import EmailAddress
from campaignflow.api.schemas import ApiModel
from campaignflow.store.suppressions import SuppressionRecord

#: Members of the request body, to suggest a spelling for an unknown one.
FIELDS = ("email",)


class SuppressionReason(StrEnum):
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    SPAM_REPORT = "spam_report"
    MANUAL = "manual"


class SuppressionCreate(ApiModel):
    """The body of `POST /suppressions`: an address no message may go to any more."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: EmailAddress


class Suppression(ApiModel):
    email_digest: str = Field(
        description="The keyed digest (blind index) of the address: the list keeps no address."
    )
    reason: SuppressionReason
    source: str = Field(description="The provider that reported it, or `api` (added by hand).")
    connection_id: str | None = Field(None, description="The connection whose webhook said so.")
    provider_event_id: str | None = Field(None, description="The provider's id of that event.")
    created_at: datetime

    @classmethod
    def from_record(cls, record: SuppressionRecord) -> Suppression:
        return cls(
            email_digest=record.email_digest,
            reason=SuppressionReason(record.reason),
            source=record.source,
            connection_id=record.connection_id,
            provider_event_id=record.provider_event_id,
            created_at=record.created_at,
        )


class SuppressionCheck(ApiModel):
    email: str = Field(description="The address asked about, as given.")
    suppressed: bool
    suppression: Suppression | None = Field(None, description="Why, when it is suppressed.")


class SuppressionPage(ApiModel):
    items: list[Suppression]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )
