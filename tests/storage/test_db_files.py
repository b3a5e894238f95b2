"""The SQLite database holds raw alert text: its files are readable by their owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import sqlalchemy as sa

from storage.db import create_db_engine, migrate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_and_its_wal_and_shm_files_are_0600(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    old_umask = os.umask(0o022)  # the usual umask, which gives SQLite's own files 0644
    try:
        engine = create_db_engine(f"sqlite:///{db}")
        migrate(engine)
        with engine.connect() as conn:  # an open connection keeps -wal and -shm on disk
            conn.execute(sa.text("SELECT 1"))
            files = [db, tmp_path / "bot.db-wal", tmp_path / "bot.db-shm"]
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        engine.dispose()
    finally:
        os.umask(old_umask)


def test_an_existing_database_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    db.touch(mode=0o640)
    db.chmod(0o640)
    engine = create_db_engine(f"sqlite:///{db}")
    migrate(engine)
    engine.dispose()
    assert mode(db) == 0o640
