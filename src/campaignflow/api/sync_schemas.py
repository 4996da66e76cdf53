"""Shapes of a connection's CRM sync: its runs, their counts and per-record errors."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from campaignflow.api.schemas import ApiModel
from campaignflow.store.crm_sync import RecordError, SyncRun


class SyncRunCounts(ApiModel):
    pulled: int = Field(0, description="CRM records read.")
    created: int = Field(0, description="Contacts created from CRM records.")
    updated: int = Field(0, description="Contacts updated from CRM records.")
    pushed: int = Field(0, description="Contacts written to the CRM.")
    unchanged: int = Field(0, description="Records read that needed nothing.")
    conflicts: int = Field(0, description="Fields changed on both sides, resolved by the mode.")
    failed: int = Field(0, description="Records that could not be synced (see `errors`).")
    skipped: int = Field(0, description="Records without an address to match or create by.")
    deleted: int = Field(0, description="CRM records deleted there, unlinked here.")
    pages: int = Field(0, description="Pages of CRM records read.")
    activities: int = Field(0, description="Events logged on CRM records as activities.")


class SyncRunOut(ApiModel):
    id: str
    connection_id: str
    trigger: Literal["scheduled", "real-time", "on-demand"]
    status: Literal["queued", "running", "succeeded", "partial", "failed"] = Field(
        description="`partial`: it finished, but some records failed (see `errors`)."
    )
    requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(description="Workers that took the run: more than 1 if it resumed.")
    phase: str = Field(
        description="`retry`, `pull`, `push`, `activities`, `done`: where the run is."
    )
    pulled_up_to: datetime | None = Field(
        description="The latest CRM modification time the run has processed."
    )
    counts: SyncRunCounts
    error: str | None = Field(description="Why a `failed` run stopped.")

    @classmethod
    def from_run(cls, run: SyncRun) -> SyncRunOut:
        high_water = run.cursor.get("highWater")
        return cls(
            id=run.id,
            connection_id=run.connection_id,
            trigger=run.trigger,
            status=run.status,
            requested_by=run.requested_by,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            attempts=run.attempts,
            phase=str(run.cursor.get("phase", "retry")),
            pulled_up_to=datetime.fromisoformat(high_water) if high_water else None,
            counts=SyncRunCounts.model_validate(run.stats),
            error=run.error,
        )


class SyncRecordError(ApiModel):
    record: str = Field(description="The contact id (push) or `remote:<CRM id>` (pull).")
    direction: Literal["pull", "push"]
    message: str
    retryable: bool

    @classmethod
    def from_error(cls, error: RecordError) -> SyncRecordError:
        return cls(
            record=error.record,
            direction=error.direction,
            message=error.message,
            retryable=error.retryable,
        )


class SyncRunDetails(SyncRunOut):
    errors: list[SyncRecordError] = Field(description="The records the run could not sync.")


class SyncRunPage(ApiModel):
    items: list[SyncRunOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
