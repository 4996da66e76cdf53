"""Writes by the worker that holds a job's lease (CRM sync runs, erasure jobs).

A leased job's row carries ``status``, ``lease_owner`` and ``lease_until``. A worker writes its
progress only while the row is still ``running`` under its name: one that stalled past its lease
and was replaced must not overwrite its successor's progress, so its write matches no row and it
learns (:class:`~campaignflow.errors.LeaseLost`) that it should stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, update
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.errors import LeaseLost


async def update_if_held(
    connection: AsyncConnection,
    table: Table,
    key: Sequence[ColumnElement[bool]],
    owner: str,
    what: str,
    **values: Any,
) -> None:
    """Set ``values`` on the row ``key`` selects if ``owner`` still holds it; else
    :class:`LeaseLost` naming ``what``."""
    statement = (
        update(table)
        .where(*key, table.c.lease_owner == owner, table.c.status == "running")
        .values(**values)
    )
    if (await connection.execute(statement)).rowcount != 1:
        raise LeaseLost(f"{what} is no longer held by {owner}")
