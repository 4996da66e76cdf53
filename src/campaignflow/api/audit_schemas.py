"""Response shapes of ``/api/v1/audit-log`` (camelCase, like every other schema)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from campaignflow.api.schemas import ApiModel
from campaignflow.security.audit_chain import AuditEntry as ChainEntry
from campaignflow.services.audit import VerifyReport


class AuditOutcome(StrEnum):
    SUCCESS = "success"  # 2xx, 3xx
    DENIED = "denied"  # 401, 403
    FAILURE = "failure"  # any other status


class AuditEntry(ApiModel):
    seq: int = Field(description="Position in the workspace's chain: 1, 2, 3, …")
    id: str
    occurred_at: datetime = Field(description="When the request arrived.")
    actor_id: str | None = Field(description="The principal's id.")
    credential: str | None = Field(description="`api_key:<id>` or `oauth:<client_id>`.")
    action: str = Field(description="`<resource>.<verb>`, e.g. `workflows.update`.")
    resource_type: str | None
    resource_id: str | None
    method: str
    path: str = Field(description="The request path, without its query string.")
    status: int = Field(description="The HTTP status of the answer.")
    outcome: AuditOutcome
    ip: str | None = Field(description="The client's address.")
    user_agent: str | None
    request_id: str | None = Field(description="`X-Request-ID` if sent, else generated.")
    details: dict[str, str] | None = None
    prev_hash: str = Field(description="`hash` of the entry before (64 zeros for the first).")
    hash: str = Field(description="SHA-256 of `prevHash` and the entry's canonical form.")

    @classmethod
    def from_entry(cls, entry: ChainEntry) -> AuditEntry:
        event = entry.event
        return cls(
            seq=entry.seq,
            id=event.id,
            occurred_at=event.occurred_at,
            actor_id=event.actor_id,
            credential=event.credential,
            action=event.action,
            resource_type=event.resource_type,
            resource_id=event.resource_id,
            method=event.method,
            path=event.path,
            status=event.status,
            outcome=AuditOutcome(event.outcome),
            ip=event.ip,
            user_agent=event.user_agent,
            request_id=event.request_id,
            details=dict(event.details) if event.details is not None else None,
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )


class AuditEntryPage(ApiModel):
    items: list[AuditEntry]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )


class AuditVerification(ApiModel):
    valid: bool = Field(description="Every entry checks out, in order, from seq 1.")
    checked: int = Field(description="How many entries checked out before any break.")
    first_broken_seq: int | None = Field(
        None, description="The first entry that was edited, removed, inserted or moved."
    )

    @classmethod
    def from_report(cls, report: VerifyReport) -> AuditVerification:
        return cls(
            valid=report.valid, checked=report.checked, first_broken_seq=report.first_broken_seq
        )
