"""Admission of trigger matches: dedup keys with a window, and entry rules.

Both are conditional upserts in the router's transaction, so the decision and the execution it
lets in commit together, and two routers (or a cron tick on two workers) cannot both admit the
same start: the second one's upsert waits on the first one's row lock and then sees its row.
PostgreSQL runs a whole batch in one statement per rule (``unnest``); SQLite, one writer at a
time, runs one statement per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.store import pg_batch
from campaignflow.store.types import UTCDateTime


def _instant(name: str) -> BindParameter[datetime]:
    """A raw-SQL parameter stored exactly as the UTCDateTime columns store instants (SQLite
    keeps text), so comparisons in the statement agree with the stored values."""
    return bindparam(name, type_=UTCDateTime())


@dataclass(frozen=True, slots=True)
class DedupClaim:
    """A trigger's dedup key, remembered until ``expires_at``."""

    workspace_id: str
    scope: str
    key: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class EntryRule:
    """A workflow's entry rules, as the upsert needs them."""

    reentry: str  # never | always | after
    cutoff: datetime | None  # "after": an earlier entry before this lets the contact in again
    allow_concurrent: bool

    @property
    def unrestricted(self) -> bool:
        """Every match enters: nothing to record."""
        return self.reentry == "always" and self.allow_concurrent


@dataclass(frozen=True, slots=True)
class EntryClaim:
    workspace_id: str
    workflow_id: str
    subject_id: str
    execution_id: str  # the execution this entry would start
    rule: EntryRule


_ACTIVE_IS_FINAL = (
    "(en.active_execution_id IS NULL OR EXISTS (SELECT 1 FROM executions e "
    "WHERE e.workspace_id = en.workspace_id AND e.id = en.active_execution_id "
    "AND e.status IN ('completed', 'failed', 'cancelled')))"
)

_DEDUP_CONFLICT = """
ON CONFLICT (workspace_id, scope, dedup_key) DO UPDATE SET expires_at = excluded.expires_at
WHERE d.expires_at <= {now}
RETURNING workspace_id, scope, dedup_key
"""
_PG_DEDUP = """
INSERT INTO trigger_dedup AS d (workspace_id, scope, dedup_key, expires_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
""" + _DEDUP_CONFLICT.format(now="$5")
_SQLITE_DEDUP = text(
    "INSERT INTO trigger_dedup AS d (workspace_id, scope, dedup_key, expires_at) "
    "VALUES (:workspace, :scope, :key, :expires)" + _DEDUP_CONFLICT.format(now=":now")
).bindparams(_instant("expires"), _instant("now"))

_ENTRY_CONFLICT = """
ON CONFLICT (workspace_id, workflow_id, subject_id) DO UPDATE
SET last_entered_at = excluded.last_entered_at,
    active_execution_id = excluded.active_execution_id,
    entry_count = en.entry_count + 1
WHERE {condition}
RETURNING workspace_id, workflow_id, subject_id
"""
_PG_ENTRY_SOURCE = """
INSERT INTO entries AS en (workspace_id, workflow_id, subject_id, last_entered_at,
                           active_execution_id, entry_count)
SELECT w, f, s, $5, x, 1
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS v(w, f, s, x)
"""
_SQLITE_ENTRY_SOURCE = """
INSERT INTO entries AS en (workspace_id, workflow_id, subject_id, last_entered_at,
                           active_execution_id, entry_count)
VALUES (:workspace, :workflow, :subject, :now, :execution, 1)
"""


def _entry_condition(rule: EntryRule, cutoff: str) -> str:
    """When an existing entry row lets the contact in again. An active execution blocks a new
    one unless it is final; an execution this very statement's competitor just inserted is not
    visible yet, so EXISTS(final) is false and the entry is refused, as it must be."""
    if rule.reentry == "never":
        return "false"
    again = "true" if rule.reentry == "always" else f"en.last_entered_at <= {cutoff}"
    if rule.allow_concurrent:
        return again
    return f"{again} AND {_ACTIVE_IS_FINAL}"


class AdmissionStore:
    """Dedup keys and entry rules inside a caller's transaction."""

    def __init__(self, dialect: str) -> None:
        self._postgres = dialect == "postgresql"

    async def claim_dedup_keys(
        self, connection: AsyncConnection, claims: Sequence[DedupClaim], now: datetime
    ) -> list[bool]:
        """Whether each claim is new (or its earlier key expired). Claims must be distinct."""
        if not claims:
            return []
        if self._postgres:
            rows = await pg_batch.fetch(
                connection,
                _PG_DEDUP,
                [c.workspace_id for c in claims],
                [c.scope for c in claims],
                [c.key for c in claims],
                [c.expires_at for c in claims],
                now,
            )
            admitted = {(row[0], row[1], row[2]) for row in rows}
        else:
            admitted = set()
            for claim in claims:
                params = _dedup_params(claim, now)
                if (await connection.execute(_SQLITE_DEDUP, params)).first() is not None:
                    admitted.add((claim.workspace_id, claim.scope, claim.key))
        return [(c.workspace_id, c.scope, c.key) in admitted for c in claims]

    async def claim_entries(
        self, connection: AsyncConnection, claims: Sequence[EntryClaim], now: datetime
    ) -> list[bool]:
        """Whether each contact may enter its workflow now. At most one claim per (workspace,
        workflow, subject); claims whose rule is unrestricted are admitted without a row."""
        admitted: set[tuple[str, str, str]] = set()
        by_rule: dict[EntryRule, list[EntryClaim]] = {}
        for claim in claims:
            if not claim.rule.unrestricted:
                by_rule.setdefault(claim.rule, []).append(claim)
        for rule, group in by_rule.items():
            admitted |= await self._claim_group(connection, rule, group, now)
        return [
            claim.rule.unrestricted
            or (claim.workspace_id, claim.workflow_id, claim.subject_id) in admitted
            for claim in claims
        ]

    async def _claim_group(
        self,
        connection: AsyncConnection,
        rule: EntryRule,
        claims: Sequence[EntryClaim],
        now: datetime,
    ) -> set[tuple[str, str, str]]:
        ordered = sorted(claims, key=lambda c: (c.workspace_id, c.workflow_id, c.subject_id))
        if self._postgres:
            statement = _PG_ENTRY_SOURCE + _ENTRY_CONFLICT.format(
                condition=_entry_condition(rule, "$6")
            )
            params: list[Any] = [
                [c.workspace_id for c in ordered],
                [c.workflow_id for c in ordered],
                [c.subject_id for c in ordered],
                [c.execution_id for c in ordered],
                now,
            ]
            if "$6" in statement:
                params.append(rule.cutoff)
            rows = await pg_batch.fetch(connection, statement, *params)
            return {(row[0], row[1], row[2]) for row in rows}
        source = _SQLITE_ENTRY_SOURCE + _ENTRY_CONFLICT.format(
            condition=_entry_condition(rule, ":cutoff")
        )
        instants = [_instant(name) for name in ("now", "cutoff") if f":{name}" in source]
        statement_text = text(source).bindparams(*instants)
        admitted = set()
        for claim in ordered:
            values: dict[str, Any] = {
                "workspace": claim.workspace_id,
                "workflow": claim.workflow_id,
                "subject": claim.subject_id,
                "execution": claim.execution_id,
                "now": now,
            }
            if rule.cutoff is not None:
                values["cutoff"] = rule.cutoff
            if (await connection.execute(statement_text, values)).first() is not None:
                admitted.add((claim.workspace_id, claim.workflow_id, claim.subject_id))
        return admitted


def _dedup_params(claim: DedupClaim, now: datetime) -> dict[str, Any]:
    return {
        "workspace": claim.workspace_id,
        "scope": claim.scope,
        "key": claim.key,
        "expires": claim.expires_at,
        "now": now,
    }
