"""Throwaway databases: a SQLite file or a fresh PostgreSQL database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

PG_DSN = os.environ.get("AI_INCIDENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


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


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, drop it afterwards."""
    require_postgres()
    name = f"aiinc_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield a URL for an empty database of `kind` ('sqlite' or 'postgres')."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'bot.db'}"
    else:
        with postgres_database() as url:
            yield url
