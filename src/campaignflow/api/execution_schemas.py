"""Request and response shapes of the executions and dead-letters resources."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from campaignflow.api.schemas import ApiModel
from campaignflow.domain.deliveries import DeliveryStatus
from campaignflow.engine.model import ExecutionRecord, ExecutionStatus, StepStatus
from campaignflow.services.executions import ExecutionDetail as ExecutionDetailRecord
from campaignflow.store.dead_letters import DeadLetterRecord
from campaignflow.store.deliveries import DeliveryRecord
from campaignflow.store.executions import StepRecord


class DeadLetterStatus(StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


class ExecuteRequest(ApiModel):
    """The body of `POST /workflows/{workflowId}/execute`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    subject: str = Field(
        min_length=1,
        max_length=200,
        description="Who the execution is about (a contact id); `contact.id` in templates.",
    )
    input: dict[str, Any] = Field(
        default_factory=dict, description="Available to the workflow as `input`."
    )
    contact: dict[str, Any] | None = Field(
        None, description="Traits of the subject (`timezone`, `email`, …) as `contact`."
    )


class Execution(ApiModel):
    id: str
    workflow_id: str
    workflow_version: int = Field(description="The version the execution is pinned to.")
    subject: str
    status: ExecutionStatus
    trigger: str = Field(description="What started it (`api`, …).")
    input: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    error: dict[str, Any] | None = Field(
        None, description="Why it failed: the node, its branch and the last error."
    )
    exit_reason: dict[str, Any] | None = Field(
        None,
        description="Why a cancelled execution ended early: `exitCriterion` (with the event, "
        "its messageId and whether it is a goal).",
    )

    @classmethod
    def from_record(cls, record: ExecutionRecord) -> Execution:
        return cls(**_execution_fields(record))


def _execution_fields(record: ExecutionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "workflow_id": record.workflow_id,
        "workflow_version": record.workflow_version,
        "subject": record.subject_id,
        "status": ExecutionStatus(record.status),
        "trigger": record.trigger,
        "input": record.input,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "finished_at": record.finished_at,
        "error": record.error,
        "exit_reason": record.exit_reason,
    }


class DeliveryEvent(ApiModel):
    event: str = Field(description="`sent`, `delivered`, `opened`, `bounced` …")
    at: datetime
    id: str | None = Field(None, description="The provider's id of the event.")


class Delivery(ApiModel):
    """How far the message a step sent got, by the provider's webhooks."""

    status: DeliveryStatus = Field(
        description="The furthest it got: `sent` < `deferred` < `delivered` < `opened` < "
        "`clicked`; `dropped`, `bounced`, `unsubscribed` and `spam_reported` outrank those. "
        "Webhooks arriving out of order or twice do not change it."
    )
    provider: str
    provider_message_id: str | None = None
    events: list[DeliveryEvent] = Field(description="Its history, oldest first (at most 50).")
    updated_at: datetime

    @classmethod
    def from_record(cls, record: DeliveryRecord) -> Delivery:
        return cls(
            status=record.status,
            provider=record.provider,
            provider_message_id=record.provider_message_id,
            events=[DeliveryEvent.model_validate(event) for event in record.events],
            updated_at=record.updated_at,
        )


class Step(ApiModel):
    seq: int = Field(description="Order of the step within the execution, from 1.")
    node_id: str
    node_type: str
    branch: str = Field(
        description='The token of the path that ran it: `""` is the main path, a parallel '
        "branch is `<parent>/<parallel id>:<first node of the branch>`."
    )
    attempt: int
    status: StepStatus
    started_at: datetime
    finished_at: datetime
    output: Any = None
    error: dict[str, Any] | None = None
    delivery: Delivery | None = Field(
        None, description="The message the step sent, if it sent one, and how far it got."
    )

    @classmethod
    def from_record(cls, record: StepRecord, delivery: DeliveryRecord | None = None) -> Step:
        return cls(
            seq=record.seq,
            node_id=record.node_id,
            node_type=record.node_type,
            branch=record.token,
            attempt=record.attempt,
            status=StepStatus(record.status),
            started_at=record.started_at,
            finished_at=record.finished_at,
            output=record.output,
            error=record.error,
            delivery=Delivery.from_record(delivery) if delivery is not None else None,
        )


class ExecutionDetail(Execution):
    steps: list[Step] = Field(description="Every step run so far, in order.")

    @classmethod
    def from_detail(cls, detail: ExecutionDetailRecord) -> ExecutionDetail:
        return cls(
            **_execution_fields(detail.execution),
            steps=[
                Step.from_record(step, detail.deliveries.get(step.seq)) for step in detail.steps
            ],
        )


class ExecutionPage(ApiModel):
    items: list[Execution]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )


class DeadLetter(ApiModel):
    id: str
    execution_id: str
    workflow_id: str
    workflow_version: int
    node_id: str = Field(description="The node that failed for good.")
    branch: str = Field(description='The token of the path the node ran on (`""`: main).')
    status: DeadLetterStatus
    attempts: int
    errors: list[dict[str, Any]] = Field(description="Every attempt's error, oldest first.")
    input: dict[str, Any] = Field(description="The execution's input.")
    created_at: datetime
    resolved_at: datetime | None = None

    @classmethod
    def from_record(cls, record: DeadLetterRecord) -> DeadLetter:
        return cls(
            id=record.id,
            execution_id=record.execution_id,
            workflow_id=record.workflow_id,
            workflow_version=record.workflow_version,
            node_id=record.node_id,
            branch=record.token,
            status=DeadLetterStatus(record.status),
            attempts=record.attempts,
            errors=record.errors,
            input=record.input,
            created_at=record.created_at,
            resolved_at=record.resolved_at,
        )


class DeadLetterPage(ApiModel):
    items: list[DeadLetter]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )
