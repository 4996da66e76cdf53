"""Response shapes of a contact's records of processing and of its export."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from campaignflow.api.schemas import ApiModel
from campaignflow.domain.processing import LegalBasis
from campaignflow.store.processing_log import ProcessingRecord


class ProcessingLogEntry(ApiModel):
    """One processing of the contact's data (GDPR Art. 30)."""

    id: str
    occurred_at: datetime
    activity: str = Field(
        description="What was done: `action` (a connector or `http` step sent the data to a "
        "third party), `crm.sync` (a sync pushed the contact to a CRM), `export` (handed to the "
        "person), `erasure.propagated` (a provider was asked to erase the person)."
    )
    purpose: str = Field(
        description="Why: `marketing` or `transactional` (the node's `config.purpose`), "
        "`crm_sync`, `access_request`, `erasure`."
    )
    legal_basis: LegalBasis = Field(description="The basis of GDPR Art. 6(1) the purpose rests on.")
    recipient: str = Field(
        description="Who received the data: `<provider> (<connection>)`, the origin "
        "(`https://host[:port]`, never a path) an `http` step called, or `data subject`."
    )
    details: dict[str, Any] | None = Field(
        None, description="Where it happened: execution, node and action; a sync run; …"
    )

    @classmethod
    def from_record(cls, record: ProcessingRecord) -> ProcessingLogEntry:
        return cls(
            id=record.id,
            occurred_at=record.occurred_at,
            activity=record.activity,
            purpose=record.purpose,
            legal_basis=LegalBasis(record.legal_basis),
            recipient=record.recipient,
            details=record.details,
        )


class ProcessingLogPage(ApiModel):
    items: list[ProcessingLogEntry]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )
