"""Alembic migrations from an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from storage.db import create_db_engine, migrate, migration_status
from storage.models import metadata

pytestmark = pytest.mark.both_backends


def test_migrate_from_empty_matches_the_models_and_is_idempotent(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
    try:
        current, head = migration_status(engine)
        assert current is None and head is not None
        migrate(engine)
        migrate(engine)
        assert migration_status(engine) == (head, head)
        tables = set(sa.inspect(engine).get_table_names())
        assert {
            "incident",
            "alert",
            "alert_group",
            "journal_entry",
            "outbox",
        } <= tables
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/wal.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        engine.dispose()


def test_readyz_is_503_until_migrated(db_url: str) -> None:
    from tests.conftest import make_bot

    bot = make_bot(db_url)
    with bot.client:
        assert bot.client.get("/readyz").status_code == 200
        with bot.container.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'old'")
        r = bot.client.get("/readyz")
        assert r.status_code == 503 and "migration" in r.json()["detail"]
    bot.container.engine.dispose()
