"""Maintenance of sealed contact fields: sealing rows written before migration 0006, and
re-wrapping sealed documents after a key rotation.

Both walk ``contacts`` in key order, one transaction per batch, so they can stop anywhere and be
run again: every contact reads correctly throughout (a row not yet sealed is read as it was).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.errors import SealedDataError
from campaignflow.security.contact_fields import ContactCipher, contact_context
from campaignflow.security.envelope import RewrappingSealer
from campaignflow.store import contact_sql as sql
from campaignflow.store.database import Database

DEFAULT_BATCH = 500


async def seal_plaintext_contacts(
    database: Database, cipher: ContactCipher, batch_size: int = DEFAULT_BATCH
) -> int:
    """Seal the sensitive fields of every contact migration 0006 marked, clear their plaintext
    and store their email identities as digests; the number of contacts sealed.

    Run at start-up (``up``, ``serve``, ``worker``, ``migrate``) after migrating: until it has
    run, those contacts cannot be found by email. Cheap once done (an empty partial index).
    """
    total, after = 0, ("", "")
    while True:
        async with database.transaction() as connection:
            rows = (await connection.execute(sql.PENDING_SEALING, _page(after, batch_size))).all()
            await _seal_rows(connection, cipher, rows)
        total += len(rows)
        if len(rows) < batch_size:
            return total
        after = (rows[-1].workspace_id, rows[-1].id)


async def _seal_rows(
    connection: AsyncConnection, cipher: ContactCipher, rows: Sequence[Any]
) -> None:
    """Rows of :data:`sql.STORED_COLUMNS`: seal each, then digest their email identities."""
    by_workspace: defaultdict[str, list[str]] = defaultdict(list)
    updates: list[dict[str, Any]] = []
    for row in rows:
        record = sql.record_of(row[:-1])
        opened, previous = cipher.open(record, row[-1])
        stored = cipher.seal(opened, previous)
        updates.append(
            {
                "b_workspace": record.workspace_id,
                "b_id": record.id,
                "email": stored.email,
                "traits": stored.traits,
                "sealed": stored.sealed,
                "key_id": stored.key_id,
            }
        )
        by_workspace[record.workspace_id].append(record.id)
    if updates:
        await connection.execute(sql.SEAL_CONTACT, updates)
    for workspace, ids in by_workspace.items():
        params = {"workspace": workspace, "contacts": ids}
        plain = (await connection.execute(sql.PLAIN_EMAIL_IDENTITIES, params)).all()
        digests = [
            {"b_workspace": ws, "b_value": value, "digest": cipher.email_digest(value)}
            for ws, value in plain
        ]
        if digests:
            await connection.execute(sql.DIGEST_IDENTITY, digests)


async def rewrap_contacts(
    database: Database, sealer: RewrappingSealer, batch_size: int = DEFAULT_BATCH
) -> int:
    """Re-wrap every contact's sealed document not under the active KEK (compare-and-set: a
    contact written meanwhile keeps what that write sealed); the number re-wrapped."""
    total, after = 0, ("", "")
    while True:
        params = {"active": sealer.active_id, **_page(after, batch_size)}
        async with database.transaction() as connection:
            rows = (await connection.execute(sql.STALE_SEALED, params)).all()
            changes = [_rewrapped(sealer, *row) for row in rows]
            if changes:
                await connection.execute(sql.REWRAP_SEALED, changes)
        total += len(rows)
        if len(rows) < batch_size:
            return total
        after = (rows[-1].workspace_id, rows[-1].id)


def _rewrapped(
    sealer: RewrappingSealer, workspace_id: str, contact_id: str, sealed: str
) -> dict[str, str]:
    try:
        new = sealer.rewrap(sealed, context=contact_context(workspace_id, contact_id))
    except SealedDataError as exc:
        raise SealedDataError(
            f"Contact {contact_id!r} of workspace {workspace_id!r} cannot be re-wrapped: "
            f"{exc.message}"
        ) from exc
    return {
        "b_workspace": workspace_id,
        "b_id": contact_id,
        "old": sealed,
        "new": new,
        "new_key_id": sealer.active_id,
    }


def _page(after: tuple[str, str], limit: int) -> dict[str, object]:
    return {"after_workspace": after[0], "after_id": after[1], "limit": limit}
