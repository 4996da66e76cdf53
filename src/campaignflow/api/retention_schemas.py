"""Shapes of retention: the purges the retention purger recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from campaignflow.api.schemas import ApiModel

DataClassName = Literal[
    "events", "webhook_payloads", "execution_logs", "processing_log", "audit_log"
]


class RetentionRunOut(ApiModel):
    id: str
    data_class: DataClassName
    cutoff: datetime = Field(description="Rows older than this were due.")
    started_at: datetime
    finished_at: datetime | None
    purged: int = Field(description="Rows removed (for execution logs: executions).")
    batches: int = Field(description="Transactions the purge took.")
    complete: bool = Field(
        description="False: the pass stopped at its batch budget; the next pass goes on."
    )
    partition: str | None = Field(
        None,
        description="PostgreSQL: the month of the event log dropped whole (e.g. "
        "`events_p202611`), its disk space returned to the operating system; `purged` counts "
        "this workspace's rows in it. Null for a pass of batched deletes.",
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RetentionRunOut:
        details = row.get("details") or {}
        return cls(
            id=row["id"],
            data_class=row["data_class"],
            cutoff=row["cutoff"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            purged=row["purged"],
            batches=int(details.get("batches", 0)),
            complete=bool(details.get("complete", True)),
            partition=details.get("partition"),
        )


class RetentionRunPage(ApiModel):
    items: list[RetentionRunOut]
    next_cursor: str | None = Field(description="Pass it as `cursor` for the next page.")
