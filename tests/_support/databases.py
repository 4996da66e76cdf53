"""Pytest plugin: real, freshly migrated databases for every test, on SQLite and PostgreSQL.

- ``postgres_server_url`` (session): ``CAMPAIGNFLOW_TEST_DATABASE_URL`` if set, else a throwaway
  server started from the installed binaries; a missing server is an error, never a skip.
- The schema is migrated once per session into a template (a PostgreSQL template database, a
  SQLite file); each test gets its own clone, dropped afterwards. Names are unique per run, so
  parallel runs can share one server. PostgreSQL clones are made one ahead and dropped in a
  background thread (:class:`ClonePool`): a test waits for neither.
- ``database_url`` / ``database`` run a test on both dialects (ids ``sqlite`` and
  ``postgresql``); ``postgres_database_url`` / ``postgres_database`` on PostgreSQL only. Tests
  marked ``postgres_only`` that use ``database_url`` are deselected for SQLite.
- ``redis_url`` (session): ``CAMPAIGNFLOW_TEST_REDIS_URL`` if set, else a throwaway
  ``redis-server`` with persistence off.
"""

from __future__ import annotations

import asyncio
import os
import queue
import secrets
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from campaignflow.store.database import Database
from campaignflow.store.migrate import upgrade
from tests._support.servers import ServerUnavailable, throwaway_postgres, throwaway_redis

DATABASE_URL_ENV = "CAMPAIGNFLOW_TEST_DATABASE_URL"
REDIS_URL_ENV = "CAMPAIGNFLOW_TEST_REDIS_URL"
# database_url's parameters (the test ids) and the fixture each one delegates to.
DIALECTS = {"sqlite": "sqlite_database_url", "postgresql": "postgres_database_url"}

T = TypeVar("T")


def run_in_thread(function: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private event loop, from synchronous fixture code."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(function())).result()


async def migrate_url(url: str) -> None:
    database = Database.from_url(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


# --- PostgreSQL ---------------------------------------------------------------------------


@dataclass
class PostgresAdmin:
    """CREATE/DROP DATABASE on one server (autocommit, through SQLAlchemy + psycopg)."""

    server_url: str
    engine: Engine
    clone_strategy: str = ""

    @classmethod
    def connect(cls, server_url: str) -> PostgresAdmin:
        url = make_url(server_url).set(drivername="postgresql+psycopg")
        admin = cls(server_url, create_engine(url, isolation_level="AUTOCOMMIT", pool_size=2))
        admin.clone_strategy = admin._fastest_clone_strategy()
        return admin

    def _fastest_clone_strategy(self) -> str:
        """FILE_COPY (PostgreSQL 15+) is the fastest clone of a small template, but costs two
        checkpoints: use it only where they are cheap, on a server without fsync (ours)."""
        with self.engine.connect() as connection:
            version = int(connection.execute(text("SHOW server_version_num")).scalar_one())
            fsync = connection.execute(text("SHOW fsync")).scalar_one()
        return " STRATEGY FILE_COPY" if version >= 150000 and fsync == "off" else ""

    def url_for(self, name: str) -> str:
        url = make_url(self.server_url).set(drivername="postgresql", database=name)
        return url.render_as_string(hide_password=False)

    def create(self, name: str, *, template: str | None = None) -> None:
        clone = f" TEMPLATE {self._quote(template)}{self.clone_strategy}" if template else ""
        self._execute(f"CREATE DATABASE {self._quote(name)}{clone}")

    def create_template(self, name: str) -> None:
        """An empty database with a linguistic collation (ICU ``en-US``) where the server has
        ICU, as production databases usually have: tests then catch ordering that silently
        depends on the byte-wise "C" collation."""
        try:
            self._execute(
                f"CREATE DATABASE {self._quote(name)} TEMPLATE template0 "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
            )
        except DBAPIError:  # PostgreSQL < 15, or built without ICU
            self.create(name)

    def drop(self, name: str) -> None:
        self._execute(f"DROP DATABASE IF EXISTS {self._quote(name)} WITH (FORCE)")

    def _quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(name)

    def _execute(self, statement: str) -> None:
        with self.engine.connect() as connection:
            connection.execute(text(statement))


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server on which the tests may create and drop databases."""
    configured = os.environ.get(DATABASE_URL_ENV)
    if configured:
        yield configured
        return
    try:
        with throwaway_postgres() as url:
            yield url
    except ServerUnavailable as exc:
        pytest.fail(f"No PostgreSQL for the integration tests: {exc}", pytrace=False)


class ClonePool:
    """Fresh clones of the template, made one ahead and dropped behind, in a background thread.

    Creating and dropping a database costs the server a few hundred milliseconds each (more on a
    busy machine); done in a test's setup and teardown it was a large share of the suite's time.
    The template never changes after migration, so a clone made ahead is as fresh as one made
    on demand. Drops run before creates: the server never holds more than a few clones.
    """

    _STOP = object()
    _TAKE_TIMEOUT_S = 120.0

    def __init__(self, admin: PostgresAdmin, template: str, *, ahead: int = 1) -> None:
        self._admin = admin
        self._template = template
        self._ahead = ahead
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._work: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="clone-pool", daemon=True)
        self._thread.start()
        for _ in range(ahead):
            self._work.put(None)  # None: make one clone

    def take(self) -> str:
        """The name of a fresh clone for one test; another is made for the next (also after a
        failure, so the next test gets its own attempt instead of waiting for ever)."""
        try:
            made = self._ready.get(timeout=self._TAKE_TIMEOUT_S)
        except queue.Empty:
            raise RuntimeError(
                f"no test database cloned within {self._TAKE_TIMEOUT_S:g} s"
            ) from None
        self._work.put(None)
        if isinstance(made, BaseException):
            raise made
        return made

    def give_back(self, name: str) -> None:
        """Drop ``name`` (in the background)."""
        self._work.put(name)

    def close(self) -> None:
        """Drop every clone still held, then stop."""
        self._work.put(self._STOP)
        self._thread.join()
        while not self._ready.empty():
            made = self._ready.get()
            if isinstance(made, str):
                self._admin.drop(made)

    def _run(self) -> None:
        while (item := self._work.get()) is not self._STOP:
            try:
                if isinstance(item, str):
                    self._admin.drop(item)
                else:
                    name = unique_name("cf_t")
                    self._admin.create(name, template=self._template)
                    self._ready.put(name)
            except Exception as exc:  # handed to the test that waits for the clone
                if not isinstance(item, str):
                    self._ready.put(exc)


@pytest.fixture(scope="session")
def _postgres_template(postgres_server_url: str) -> Iterator[tuple[PostgresAdmin, str]]:
    """A migrated template database, created once per session and dropped at its end."""
    try:
        admin = PostgresAdmin.connect(postgres_server_url)
    except OperationalError as exc:
        target = make_url(postgres_server_url).render_as_string(hide_password=True)
        reason = f"Cannot connect to PostgreSQL at {target} ({DATABASE_URL_ENV}): {exc.orig}"
        pytest.fail(reason, pytrace=False)
    name = unique_name("cf_tpl")
    admin.create_template(name)
    try:
        run_in_thread(lambda: migrate_url(admin.url_for(name)))
        yield admin, name
    finally:
        admin.drop(name)
        admin.engine.dispose()


@pytest.fixture(scope="session")
def _postgres_clones(_postgres_template: tuple[PostgresAdmin, str]) -> Iterator[ClonePool]:
    admin, template = _postgres_template
    pool = ClonePool(admin, template)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def postgres_database_url(
    _postgres_template: tuple[PostgresAdmin, str], _postgres_clones: ClonePool
) -> Iterator[str]:
    """URL (``postgresql://``) of a fresh, migrated PostgreSQL database for this test."""
    admin, _ = _postgres_template
    name = _postgres_clones.take()
    try:
        yield admin.url_for(name)
    finally:
        _postgres_clones.give_back(name)


@pytest.fixture
async def postgres_database(postgres_database_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on a fresh, migrated PostgreSQL database; disposed afterwards."""
    database = Database.from_url(postgres_database_url)
    yield database
    await database.dispose()


# --- SQLite -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    run_in_thread(lambda: migrate_url(f"sqlite:///{path}"))
    return path


@pytest.fixture
def sqlite_database_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """URL (``sqlite:///``) of a fresh, migrated SQLite file in this test's ``tmp_path``."""
    target = tmp_path / "campaignflow.db"
    for suffix in ("", "-wal"):
        source = _sqlite_template.with_name(_sqlite_template.name + suffix)
        if source.exists():
            shutil.copyfile(source, target.with_name(target.name + suffix))
    return f"sqlite:///{target}"


# --- both ---------------------------------------------------------------------------------


@pytest.fixture(params=list(DIALECTS))
def database_url(request: pytest.FixtureRequest) -> str:
    """URL of a fresh, migrated database; the test runs once per dialect."""
    url: str = request.getfixturevalue(DIALECTS[request.param])
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on a fresh, migrated database (each dialect); disposed afterwards."""
    database = Database.from_url(database_url)
    yield database
    await database.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the SQLite run of tests marked ``postgres_only``."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("database_url") == "sqlite"
        postgres_only = item.get_closest_marker("postgres_only") is not None
        (dropped if on_sqlite and postgres_only else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis server for this session (flush what you use; other tests share it)."""
    configured = os.environ.get(REDIS_URL_ENV)
    if configured:
        yield configured
        return
    try:
        with throwaway_redis(tmp_path_factory.mktemp("redis")) as url:
            yield url
    except ServerUnavailable as exc:
        pytest.fail(f"No Redis for the integration tests: {exc}", pytrace=False)
