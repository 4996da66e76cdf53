"""Retention: how long a workspace keeps each class of data (GDPR Art. 5(1)(e)).

.. code-block:: json

    {"events": 365, "webhookPayloads": 90, "executionLogs": 180,
     "processingLog": 1095, "auditLog": 2555}

Each value is a number of days; a class left out keeps its default. The classes:

- ``events``: the event log (what sites, apps and Segment sent), by the time it was received;
- ``webhookPayloads``: the events that providers' webhooks produced (delivered, opened,
  bounced, a CRM record changed …), usually wanted for a shorter time than a customer's own
  events;
- ``executionLogs``: finished executions with their step log, dead letters and message
  deliveries, by the time they finished (an execution still running or waiting is never due);
- ``processingLog``: the records of processing (Art. 30);
- ``auditLog``: the access log. It is kept longest: a policy that would keep any other class
  longer than the audit log is refused, because the audit log is what shows how the rest was
  used and by whom.

Pure: cut-offs are computed from a ``now`` handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Final, Literal, Self

from pydantic import Field, Strict, model_validator
from pydantic.alias_generators import to_camel

from campaignflow.domain.fields import FormatModel, domain_error

DataClass = Literal["events", "webhook_payloads", "execution_logs", "processing_log", "audit_log"]
DATA_CLASSES: Final[tuple[DataClass, ...]] = (
    "events",
    "webhook_payloads",
    "execution_logs",
    "processing_log",
    "audit_log",
)
MAX_DAYS: Final = 36_500  # a century: beyond it a limit means nothing

Days = Annotated[int, Strict()]  # "30" is a mistake to report, not a number to guess


def _days(default: int, what: str) -> Days:
    return Field(default, ge=1, le=MAX_DAYS, description=f"Days to keep {what}.")


class RetentionPolicy(FormatModel):
    """A workspace's retention, in days per data class (see the module docstring)."""

    events: Days = _days(365, "events (by the time they were received)")
    webhook_payloads: Days = _days(90, "events produced by provider webhooks")
    execution_logs: Days = _days(180, "finished executions, their steps and dead letters")
    processing_log: Days = _days(1095, "the records of processing")
    audit_log: Days = _days(2555, "the audit log; it must be the longest")

    @model_validator(mode="after")
    def _audit_log_longest(self) -> Self:
        problem = longer_than_audit_log(self)
        if problem is not None:
            data_class, days = problem
            raise domain_error(
                "retention_longer_than_audit_log",
                f"{days} days is longer than the audit log's {self.audit_log}: the audit log "
                "is kept longest (raise auditLog too).",
                at=(to_camel(data_class),),
            )
        return self

    def days(self, data_class: DataClass) -> int:
        value: int = getattr(self, data_class)
        return value

    def cutoffs(self, now: datetime) -> dict[DataClass, datetime]:
        """Per class, the instant before which its data is due for purging."""
        return {name: cutoff(now, self.days(name)) for name in DATA_CLASSES}


def longer_than_audit_log(policy: RetentionPolicy) -> tuple[DataClass, int] | None:
    """The first class kept longer than the audit log, with its days; ``None`` if none is."""
    for data_class in DATA_CLASSES:
        days = policy.days(data_class)
        if data_class != "audit_log" and days > policy.audit_log:
            return data_class, days
    return None


DEFAULT_POLICY: Final = RetentionPolicy()


def cutoff(now: datetime, days: int) -> datetime:
    """Data strictly older than this instant is past its age."""
    return now - timedelta(days=days)


@dataclass(frozen=True, slots=True)
class PurgeOutcome:
    """What one pass over one class of one workspace removed."""

    data_class: DataClass
    cutoff: datetime
    purged: int
    batches: int
    partitions_dropped: tuple[str, ...] = ()
    complete: bool = True  # False: the pass stopped at its batch budget; the rest is next time


@dataclass(frozen=True, slots=True)
class PurgeLimits:
    """How much one purge pass may do: rows per transaction, transactions per class and pass,
    the pause between them (so the engine's own writes are never starved)."""

    batch_size: int = 1000
    max_batches: int = 100  # per class and pass: at most 100,000 rows before the next pass
    pause_seconds: float = 0.05
