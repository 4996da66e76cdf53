"""Request and response shapes of erasures (GDPR Art. 17).

The person's email or userId travels in the request body only, never in a URL (paths and
queries are what proxies and access logs keep), and no response repeats it: a job shows how it
was asked as a contact id or a keyed digest.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import ConfigDict, Field, model_validator

from campaignflow.api.contact_schemas import EmailAddress, ExternalId
from campaignflow.api.schemas import ApiModel
from campaignflow.store.erasure import ErasureJob

#: Members of the request body, to suggest a spelling for an unknown one.
FIELDS = ("contactId", "email", "userId", "propagate", "suppress")


class ErasureStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"


class ErasureCreate(ApiModel):
    """The body of `POST /erasures`: exactly one of `contactId`, `email`, `userId`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    contact_id: str | None = Field(None, min_length=1, max_length=64)
    email: EmailAddress | None = None
    user_id: ExternalId | None = None
    propagate: bool = Field(
        False,
        description="Also ask connected CRMs and email providers to delete or suppress the "
        "person (SendGrid, Mailchimp, Mailchimp Transactional, Pipedrive, HubSpot).",
    )
    suppress: bool = Field(
        True,
        description="Keep keyed digests of the person's identities, so their events are "
        "dropped at ingestion and no message goes to their address again.",
    )

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        given = [v for v in (self.contact_id, self.email, self.user_id) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of contactId, email and userId")
        return self


class Erasure(ApiModel):
    id: str
    status: ErasureStatus
    subject: dict[str, Any] = Field(
        description="How the erasure was asked: `contactId`, or the keyed digest of the email "
        "(`emailDigest`) or userId (`userIdDigest`); never the value itself."
    )
    contact_ids: list[str] = Field(description="The contacts the subject resolved to.")
    options: dict[str, Any] = Field(description="`propagate` and `suppress`, as asked.")
    stats: dict[str, Any] = Field(
        description="Rows removed per table, events removed from the stream "
        "(`streamEvents`), executions cancelled, contacts found (`contactsFound`)."
    )
    propagation: dict[str, Any] = Field(
        description="Per connection id: `{provider, outcome: ok|failed|skipped, detail}`."
    )
    error: str | None = None
    attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_job(cls, job: ErasureJob) -> Erasure:
        return cls(
            id=job.id,
            status=ErasureStatus(job.status),
            subject=job.public_subject(),
            contact_ids=job.contact_ids,
            options=job.options,
            stats=job.stats,
            propagation=job.propagation,
            error=job.error,
            attempts=job.attempts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class ErasurePage(ApiModel):
    items: list[Erasure]
    next_cursor: str | None = None
