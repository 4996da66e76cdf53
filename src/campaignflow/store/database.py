"""One seam to the database: an async engine for SQLite (embedded) or PostgreSQL (production).

Everything the store runs goes through :class:`Database`. It is also the boundary where driver
exceptions (asyncpg, sqlite3, SQLAlchemy) become :mod:`campaignflow.errors`: callers of the store
never see a driver exception, only :class:`StorageError` and its subclasses, with the driver's
exception kept as ``__cause__``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from campaignflow.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidValue,
    StorageError,
)

Dialect = Literal["sqlite", "postgresql"]

_DRIVERS: dict[str, str] = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
)

_AIOSQLITE_STOP_GRACE_S = 0.05

# Raised by asyncpg before SQLAlchemy can wrap them (refused connection, DNS, timeouts).
_NETWORK_ERRORS = (OSError, TimeoutError)


def normalize_url(url: str) -> str:
    """Return ``url`` with the async driver this package uses.

    ``postgres://`` and ``postgresql://`` become ``postgresql+asyncpg://``; ``sqlite:///path``
    becomes ``sqlite+aiosqlite:///path``. Other schemes raise :class:`ConfigurationError`.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"Not a database URL: {_mask(url)!r}") from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            f"Unsupported database URL scheme {parsed.drivername!r}: use postgresql:// or sqlite://"
        )
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _mask(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Database:
    """Owns one :class:`AsyncEngine`; create it with :meth:`from_url`, close it with
    :meth:`dispose`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Same pool; connections checked out through it run each statement on its own.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    def from_url(cls, url: str, *, pre_ping: bool = True) -> Database:
        """Open (lazily: nothing connects until first use) the database at ``url``.

        ``pre_ping`` (PostgreSQL): test a pooled connection before handing it out, so a server
        restart or failover costs a reconnect, not a failed API request. It is a round trip per
        checkout; a worker turns it off, because a failed batch is simply claimed again.
        """
        parsed = make_url(normalize_url(url))
        if parsed.get_backend_name() == "sqlite":
            return cls(_sqlite_engine(parsed))
        engine = create_async_engine(
            parsed, json_serializer=_dumps, json_deserializer=orjson.loads, pool_pre_ping=pre_ping
        )
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def dialect(self) -> Dialect:
        return "sqlite" if self._engine.dialect.name == "sqlite" else "postgresql"

    @property
    def url(self) -> URL:
        """The engine's URL; ``str()`` of it masks the password."""
        return self._engine.url

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection from the pool; driver errors inside the block are translated."""
        async with self._connection(self._engine) as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for single-statement reads, outside any transaction.

        It saves the BEGIN and ROLLBACK round trips a pooled connection otherwise spends on
        every read. Each statement sees its own snapshot: use :meth:`transaction` when several
        reads must agree with each other.
        """
        async with self._connection(self._reader) as connection:
            yield connection

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose every statement commits on its own: for reads (see :meth:`read`)
        and, on PostgreSQL only, for single statements that are atomic by themselves (a task
        claim). On SQLite the connection opens ``BEGIN IMMEDIATE`` itself and never commits, so
        a write there must use :meth:`transaction`."""
        async with self._connection(self._reader) as connection:
            yield connection

    @asynccontextmanager
    async def _connection(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        connection = await self._checkout(engine)
        try:
            with translate_errors():
                yield connection
        finally:
            with translate_errors():
                await connection.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction: committed when the block exits normally, rolled back
        when it raises."""
        async with self.connect() as connection, connection.begin():
            yield connection

    async def ping(self) -> None:
        """Raise :class:`DatabaseUnavailable` unless the database answers a query."""
        async with self.connect() as connection:
            try:
                await connection.execute(text("SELECT 1"))
            except SQLAlchemyError as exc:
                raise DatabaseUnavailable(_unavailable_message(self, exc)) from exc

    async def _checkout(self, engine: AsyncEngine) -> AsyncConnection:
        """Open a connection; every failure to do so means the database is unavailable (down,
        unknown database, wrong password, unwritable SQLite directory)."""
        try:
            return await engine.connect()
        except (SQLAlchemyError, *_NETWORK_ERRORS) as exc:
            if self.dialect == "sqlite":
                # After a failed open, aiosqlite stops its worker thread without waiting for it;
                # let it finish, or it raises in its thread if the loop closes first (a CLI
                # command that fails and exits).
                await asyncio.sleep(_AIOSQLITE_STOP_GRACE_S)
            raise DatabaseUnavailable(_unavailable_message(self, exc)) from exc

    async def dispose(self) -> None:
        """Close every pooled connection. The object can be used again afterwards."""
        await self._engine.dispose()


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver and SQLAlchemy exceptions raised inside the block into storage errors.

    Integrity errors that mean something to a caller (a duplicate id) are handled where the
    statement runs; any that reach this point are reported as :class:`StorageError`.
    """
    try:
        yield
    except (SQLAlchemyError, *_NETWORK_ERRORS) as exc:
        if _is_unavailable(exc):
            raise DatabaseUnavailable(f"The database is not available: {_reason(exc)}") from exc
        if _is_bad_value(exc):
            raise InvalidValue(
                f"The database cannot store a value of this request: {_reason(exc)}"
            ) from exc
        raise StorageError(f"The database operation failed: {_reason(exc)}") from exc


def _is_bad_value(exc: BaseException) -> bool:
    """SQLSTATE class 22 (data exception): a value the database refuses — U+0000 in text, a
    number or date out of its range. It came with the request; the request is what is wrong."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return sqlstate.startswith("22")


# SQLSTATE classes: connection exception, insufficient resources, operator intervention.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
_UNAVAILABLE_SQLITE_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (InterfaceError, *_NETWORK_ERRORS)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc.orig, _NETWORK_ERRORS):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    sqlite_error = getattr(exc.orig, "sqlite_errorname", None) or ""
    return sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES) or sqlite_error.startswith(
        _UNAVAILABLE_SQLITE_ERRORS
    )


IntegrityKind = Literal["unique", "foreign_key", "other"]

_UNIQUE_SQLSTATE = "23505"
_FOREIGN_KEY_SQLSTATE = "23503"
_SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"})


def integrity_kind(exc: IntegrityError) -> IntegrityKind:
    """Which kind of constraint an :class:`IntegrityError` violated, on either dialect."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", None)
    if code == _UNIQUE_SQLSTATE or code in _SQLITE_UNIQUE:
        return "unique"
    if code in (_FOREIGN_KEY_SQLSTATE, "SQLITE_CONSTRAINT_FOREIGNKEY"):
        return "foreign_key"
    return "other"


def _reason(exc: BaseException) -> str:
    """The driver's own message, first line only: never the SQL or its parameters."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else 'no detail'}"


def _unavailable_message(database: Database, exc: BaseException) -> str:
    target = database.url.render_as_string(hide_password=True)
    return f"Cannot reach the database at {target}: {_reason(exc)}"


def _sqlite_engine(url: URL) -> AsyncEngine:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        # If this fails, connecting fails too, and reports it as DatabaseUnavailable.
        with suppress(OSError):
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, json_serializer=_dumps, json_deserializer=orjson.loads)
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # Let SQLAlchemy, not sqlite3's legacy mode, decide when a transaction begins: reads then
    # see one snapshot and DDL (migrations) is transactional.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
    # one failing with SQLITE_BUSY when it upgrades a read snapshot that went stale (WAL mode).
    connection.exec_driver_sql("BEGIN IMMEDIATE")
