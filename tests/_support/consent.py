"""Giving a test contact consent by writing ``contacts.consent`` directly.

The consent store and its API are the only writers in the product (they also keep the history
with its proof); tests that are about something else, or that run before a consent exists, set
the column with this helper, in the format the consent store writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from campaignflow.store.database import Database
from campaignflow.store.tables import contacts

MARKETING = ("email_marketing", "sms_marketing")


def consent_document(*purposes: str, granted: bool = True) -> dict[str, object]:
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {purpose: {"granted": granted, "at": at, "source": "api"} for purpose in purposes}


async def set_consent(
    database: Database,
    contact_id: str,
    *purposes: str,
    granted: bool = True,
    workspace_id: str = "default",
) -> None:
    """Record ``purposes`` (default: email and SMS marketing) as granted (or withdrawn) for the
    contact; the purposes not named are left unrecorded."""
    document = consent_document(*(purposes or MARKETING), granted=granted)
    statement = (
        update(contacts)
        .where(contacts.c.workspace_id == workspace_id, contacts.c.id == contact_id)
        .values(consent=document)
    )
    async with database.transaction() as connection:
        result = await connection.execute(statement)
    assert result.rowcount == 1, f"no contact {contact_id!r} in {workspace_id!r}"
