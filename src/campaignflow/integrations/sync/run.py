"""What one CRM sync run works with: its context, counts and options, and the digests of values.

Shared by the runner and its phases (:mod:`.requests`, :mod:`.pulls`, :mod:`.pushes`); no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from campaignflow.domain.contacts import ContactRecord
from campaignflow.domain.field_transforms import Scalar
from campaignflow.domain.record_merge import LocalSide
from campaignflow.domain.sync_config import FieldMapping, SyncConfig
from campaignflow.integrations.connections import ResolvedConnection
from campaignflow.integrations.crm import CrmSync, any_json
from campaignflow.integrations.sync.cursor import Cursor
from campaignflow.store.crm_sync import FieldSource, SyncRun


class SyncFailed(Exception):
    """The run cannot go on (the CRM keeps failing, the configuration is gone): it ends
    ``failed`` with this message, and the next run starts from its cursor."""


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    lease: timedelta = timedelta(seconds=60)
    attempts: int = 4  # per request, the first included
    backoff_s: float = 1.0  # doubled after each failed attempt
    max_backoff_s: float = 30.0
    max_pages: int = 10_000  # a runaway pull (a CRM repeating a page token) ends here
    retry_batch: int = 100  # failed pushes retried per run
    activity_page: int = 200  # events read at a time to log as activities


@dataclass(slots=True)
class RunStats:
    pulled: int = 0
    created: int = 0
    updated: int = 0
    pushed: int = 0
    unchanged: int = 0
    conflicts: int = 0
    failed: int = 0
    skipped: int = 0
    deleted: int = 0
    pages: int = 0
    activities: int = 0

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> RunStats:
        known = cls.__dataclass_fields__
        return cls(**{k: int(v) for k, v in document.items() if k in known})

    def to_document(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class RunContext:
    """One run: the connection, its adapter and configuration, where the run is, its counts,
    and the CRM's clock offsets measured so far."""

    run: SyncRun
    connection: ResolvedConnection
    adapter: CrmSync
    config: SyncConfig
    mappings: dict[str, FieldMapping]
    cursor: Cursor
    stats: RunStats
    skews: list[float] = field(default_factory=list)

    @property
    def provider(self) -> str:
        return self.connection.connector.provider

    def remote_fields(self) -> list[str]:
        wanted = {mapping.remote for mapping in self.mappings.values()}
        return sorted(wanted | set(self.adapter.system_fields))


def canonical(value: Scalar) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ValueDigests:
    """Keyed digests of field values (the blind-index key): what a link keeps instead of the
    values, which are personal data."""

    keyed: Callable[[str], str]

    def __call__(self, value: Scalar) -> str | None:
        return None if value is None else self.keyed(canonical(value))

    def local_side(
        self, ctx: RunContext, contact: ContactRecord, sources: Mapping[str, FieldSource]
    ) -> LocalSide:
        """The contact's mapped values, with the change time and source of each value a
        sync pulled (while the value is still the one pulled)."""
        values = local_values(contact, ctx.mappings)
        times: dict[str, datetime] = {}
        by: dict[str, str] = {}
        for name, value in values.items():
            source = sources.get(name)
            if source is not None and source.digest == self(value):
                times[name] = source.changed_at
                by[name] = source.source
        return LocalSide(values, contact.updated_at, times, by)


def local_values(contact: ContactRecord, mappings: Mapping[str, FieldMapping]) -> dict[str, Scalar]:
    """The contact's mapped values: ``email`` is the contact's address, others its traits
    (a nested trait becomes its JSON text)."""
    values: dict[str, Scalar] = {}
    for name in mappings:
        if name == "email":
            values[name] = contact.email
        else:
            values[name] = any_json(contact.traits.get(name))
    return values
