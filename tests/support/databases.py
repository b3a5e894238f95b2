"""Throwaway databases: a SQLite file or a PostgreSQL database per test, empty or migrated.

Migrating costs more than copying, so a migrated database is a copy of a template migrated once
per session (and per xdist worker): a file copy on SQLite, `CREATE DATABASE ... TEMPLATE` on
PostgreSQL. The templates are dropped when the session ends.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from storage.db import create_db_engine, migrate

PG_DSN = os.environ.get("AI_INCIDENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgres")


def postgres_available() -> bool:
    """Return True when the test PostgreSQL answers."""
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def require_postgres() -> None:
    """Skip locally without PostgreSQL; fail in CI, where it must be there."""
    if postgres_available():
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is not reachable at {PG_DSN} (CI must provide it)")
    pytest.skip(f"PostgreSQL is not reachable at {PG_DSN}")


def worker_id() -> str:
    """The xdist worker running this process ('gw0', ...), or 'main' without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def database_name(prefix: str = "aiinc") -> str:
    """A name no other test, worker or concurrent run uses."""
    return f"{prefix}_{worker_id()}_{uuid.uuid4().hex[:12]}"


def postgres_url(name: str) -> str:
    """The SQLAlchemy URL of database `name` on the test server."""
    base = PG_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)


def _admin(sql: str) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql)


class Templates:
    """Migrated databases to copy from, built on first use, one of each backend per process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sqlite: Path | None = None
        self._postgres: str | None = None

    def sqlite(self) -> Path:
        if self._sqlite is None:
            path = self.root / f"template-{worker_id()}.db"
            engine = create_db_engine(f"sqlite:///{path}")
            try:
                migrate(engine)
            finally:
                engine.dispose()  # the last connection checkpoints the WAL into the file
            self._sqlite = path
        return self._sqlite

    def postgres(self) -> str:
        if self._postgres is None:
            require_postgres()
            name = database_name("aiinc_template")
            _admin(f'CREATE DATABASE "{name}"')
            engine = create_db_engine(postgres_url(name))
            try:
                migrate(engine)
            finally:
                engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template idle
            self._postgres = name
        return self._postgres

    def close(self) -> None:
        if self._postgres is not None:
            _admin(f'DROP DATABASE IF EXISTS "{self._postgres}" WITH (FORCE)')
            self._postgres = None


_templates: Templates | None = None


def use_templates(templates: Templates | None) -> None:
    """Set (or with None, clear) the templates `database(..., migrated=True)` copies from."""
    global _templates
    _templates = templates


def templates() -> Templates:
    if _templates is None:
        raise RuntimeError("no templates: tests/conftest.py sets them up for the session")
    return _templates


@contextmanager
def postgres_database(*, migrated: bool = False) -> Iterator[str]:
    """Create a database (empty, or a copy of the migrated template), yield its SQLAlchemy URL,
    drop it afterwards."""
    require_postgres()
    name = database_name()
    template = f' TEMPLATE "{templates().postgres()}"' if migrated else ""
    _admin(f'CREATE DATABASE "{name}"{template}')
    try:
        yield postgres_url(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database(kind: str, tmp_path: Path, *, migrated: bool = False) -> Iterator[str]:
    """Yield a URL for a database of `kind` ('sqlite' or 'postgres'), empty or migrated."""
    if kind == "sqlite":
        path = tmp_path / "bot.db"
        if migrated:
            shutil.copy(templates().sqlite(), path)  # the mode bits (0600) come along
        yield f"sqlite:///{path}"
    else:
        with postgres_database(migrated=migrated) as url:
            yield url
