"""Engine, sessions and migrations for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

__all__ = [
    "StorageUnavailable",
    "create_db_engine",
    "migrate",
    "migration_status",
    "readonly",
    "session_scope",
]

MIGRATIONS = Path(__file__).parent / "migrations"


class StorageUnavailable(Exception):
    """The database cannot be reached or refused the write."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before we answer 2xx (ingest batches commits to keep this cheap)
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # 64 MB of page cache per connection (the default is 2 MB): the index of seen run ids
    # outgrows 2 MB within minutes of a busy day, and every insert then reads pages back
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


class FairLock:
    """A FIFO lock: SQLite writers in this process take turns.

    SQLite's own busy handler polls with sleeps, so a thread that writes in a tight loop (the
    ingest writer during a storm) wins every race and starves the delivery worker. Handing the
    lock over in arrival order keeps both moving. A waiter gives up after `timeout` and falls
    back on SQLite's locking, so a lost release can slow writers down but never wedge them.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._waiters: deque[tuple[int, threading.Event]] = deque()

    def acquire(self, timeout: float) -> bool:
        """Wait for this thread's turn; return False if it did not come within `timeout`."""
        me = threading.get_ident()
        with self._mutex:
            if self._owner is None and not self._waiters:
                self._owner = me
                return True
            turn = threading.Event()
            self._waiters.append((me, turn))
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():
                return True
            self._waiters.remove((me, turn))
            return False

    def release(self) -> None:
        """Hand the lock to the longest waiter; a no-op for a thread that does not hold it."""
        me = threading.get_ident()
        with self._mutex:
            if self._owner != me:
                return
            if self._waiters:
                self._owner, turn = self._waiters.popleft()
                turn.set()
            else:
                self._owner = None


FAIR_LOCK_TIMEOUT_S = 10.0


def _sqlite_transactions(engine: Engine) -> None:
    """Begin SQLite write transactions IMMEDIATE, one writer thread at a time in FIFO order."""
    lock = FairLock()

    @event.listens_for(engine, "begin")
    def begin(conn: Any) -> None:
        # writers take the lock up front so a read-then-write never fails on a stale snapshot;
        # read-only work uses `readonly(engine)` and a deferred BEGIN that never blocks the writer
        if conn.get_execution_options().get("readonly"):
            conn.exec_driver_sql("BEGIN")
            return
        if lock.acquire(FAIR_LOCK_TIMEOUT_S):
            conn.info["holds_fair_lock"] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            end(conn)
            raise

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def end(conn: Any) -> None:
        if conn.info.pop("holds_fair_lock", False):
            lock.release()


def _sqlite_file(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for an in-memory or URI-style database."""
    parsed = make_url(url)
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query.get("uri"):
        return None
    return Path(database)


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite creates it 0644.

    It holds raw alert text. SQLite gives the -wal and -shm files the main file's permissions.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # e.g. a missing directory: SQLite's own error says it better
    os.close(fd)


# Bounds on every wait on PostgreSQL. A connection attempt gives up after 5 s; sent data
# unacknowledged for 9 s (network or host gone) and an idle peer silent to keepalive probes close
# the socket; a statement the server has not finished in 9 s is cancelled there. Together they
# free a thread stuck on a dead or stalled database, so the pool recovers by itself once the
# database answers again. Callers that answer HTTP bound their own wait as well.
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 4,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 9000,  # ms
}
PG_STATEMENT_TIMEOUT_MS = 9000
PG_POOL_TIMEOUT_S = 5.0


def _pg_engine(url: str) -> Engine:
    """A PostgreSQL engine whose waits are bounded; settings in the URL's query win."""
    query = sa.engine.make_url(url).query
    engine = sa.create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=PG_POOL_TIMEOUT_S,
        connect_args={k: v for k, v in PG_CONNECT_ARGS.items() if k not in query},
    )
    if "statement_timeout" in str(query.get("options", "")):
        return engine

    @event.listens_for(engine, "connect")
    def _statement_timeout(dbapi_conn: Any, _record: Any) -> None:
        # a SET, not a startup `options`, so that poolers such as PgBouncer accept the connection
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS}")
        dbapi_conn.commit()

    return engine


def create_db_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, full sync, immediate transactions and a 0600 file."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_size=8,
            max_overflow=8,
        )
        file = _sqlite_file(url)
        if file is not None:

            @event.listens_for(engine, "do_connect")
            def _private_file(*_args: Any) -> None:
                _create_private(file)

        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        _sqlite_transactions(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return _pg_engine(url)


def readonly(engine: Engine) -> Engine:
    """Return a view of `engine` for reads that must not take SQLite's write lock."""
    return engine.execution_options(readonly=True)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Open a session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision."""
    command.upgrade(_alembic_config(engine), "head")


def migration_status(engine: Engine) -> tuple[str | None, str | None]:
    """Return (current, head) revisions."""
    head = ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head
