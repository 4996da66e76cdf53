"""Database URLs as users write them become URLs of the async drivers we ship."""

from __future__ import annotations

import pytest

from campaignflow.errors import ConfigurationError
from campaignflow.store.database import Database, normalize_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgresql://app:pw@db.internal:5432/cf",
            "postgresql+asyncpg://app:pw@db.internal:5432/cf",
        ),
        ("postgres://db.internal/cf", "postgresql+asyncpg://db.internal/cf"),
        ("postgresql+asyncpg://db.internal/cf", "postgresql+asyncpg://db.internal/cf"),
        (
            "postgresql://db.internal/cf?ssl=require",
            "postgresql+asyncpg://db.internal/cf?ssl=require",
        ),
        ("postgresql://app:p%40ss%2Fw@db/cf", "postgresql+asyncpg://app:p%40ss%2Fw@db/cf"),
        ("sqlite:///data/campaignflow.db", "sqlite+aiosqlite:///data/campaignflow.db"),
        (
            "sqlite:////var/lib/cf/campaignflow.db",
            "sqlite+aiosqlite:////var/lib/cf/campaignflow.db",
        ),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("sqlite+aiosqlite:///cf.db", "sqlite+aiosqlite:///cf.db"),
    ],
)
def test_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize(
    "url", ["mysql://db/cf", "postgresql+psycopg2://db/cf", "redis://localhost", "not a url"]
)
def test_unsupported_urls_are_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError):
        normalize_url(url)


def test_the_password_never_shows_in_the_representation() -> None:
    database = Database.from_url("postgresql://app:s3cret-pw@db.internal/cf")

    assert "s3cret-pw" not in repr(database)
    assert "s3cret-pw" not in str(database.url)
    assert repr(database) == "Database('postgresql+asyncpg://app:***@db.internal/cf')"
    assert database.dialect == "postgresql"
