"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant, stored in UTC and read back as an aware UTC ``datetime``.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones and would silently drop
    ``tzinfo``, so values are converted to UTC before they are written. Naive datetimes are
    refused on write: their meaning depends on the machine that produced them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware datetime")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONDocument(TypeDecorator[Any]):
    """A JSON document: ``JSONB`` on PostgreSQL, ``JSON`` (text) on SQLite.

    Serialization uses orjson through the engine's ``json_serializer``/``json_deserializer``,
    which :meth:`campaignflow.store.database.Database.from_url` configures.
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


def identifier() -> TypeEngine[str]:
    """An id or slug column: ``String(64)``, compared byte-wise (``COLLATE "C"``) on PostgreSQL
    so that ordering and keyset pagination agree with SQLite's binary collation."""
    return String(64).with_variant(String(64, collation="C"), "postgresql")
