"""JSON columns hold standard JSON on both databases, also for rows written before they did."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from bot.services.incidents import evidence_from_row
from storage.db import create_db_engine, migrate
from storage.models import AlertRow, IncidentRow

pytestmark = pytest.mark.both_backends

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)


def store_alert(db_url: str, signal: dict[str, object]) -> int:
    engine = create_db_engine(db_url)
    migrate(engine)
    try:
        with Session(engine) as s:
            inc = IncidentRow(
                title="t",
                workflow="w",
                category="internal",
                severity="P3",
                state="triggered",
                source="default",
                detected_at=NOW,
                triggered_at=NOW,
                severity_changed_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
            s.add(inc)
            s.flush()
            row = AlertRow(
                incident_id=inc.id or 0,
                fingerprint="f",
                status="firing",
                digest="d",
                title="t",
                signal=signal,
                values={"B": math.nan},
                first_seen_at=NOW,
                last_seen_at=NOW,
            )
            s.add(row)
            s.commit()
            return row.id or 0
    finally:
        engine.dispose()


def test_non_finite_numbers_are_stored_by_name_and_read_back(db_url: str) -> None:
    alert_id = store_alert(db_url, {"kind": "error_rate", "value": math.inf, "stddev": -math.inf})
    engine = create_db_engine(db_url)
    try:
        with Session(engine) as s:
            raw = s.execute(sa.text('SELECT signal, "values" FROM alert')).one()
            assert "NaN" in str(raw[1]) and "Infinity" in str(raw[0])
            row = s.get(AlertRow, alert_id)
            assert row is not None
            assert row.values == {"B": "NaN"}
            signal = evidence_from_row(row).signal
            assert signal is not None and signal.value == math.inf and signal.stddev == -math.inf
    finally:
        engine.dispose()


def test_sqlite_rows_holding_bare_nan_tokens_read_as_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    alert_id = store_alert(url, {"kind": "error_rate", "value": 0.1})
    engine = create_db_engine(url)
    try:
        with Session(engine) as s:
            # what earlier releases wrote: Python's json.dumps default for NaN
            s.execute(
                sa.text("""UPDATE alert SET signal = '{"kind": "error_rate", "value": NaN}'""")
            )
            s.commit()
        with Session(engine) as s:
            row = s.get(AlertRow, alert_id)
            assert row is not None and row.signal == {"kind": "error_rate", "value": "NaN"}
            signal = evidence_from_row(row).signal
            assert signal is not None and signal.value is not None and math.isnan(signal.value)
    finally:
        engine.dispose()
