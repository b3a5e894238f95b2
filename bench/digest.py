"""Digest build time over a year of data (SPEC §15: 50,000 incidents, 200,000 handoffs < 2 s).

Generates a year of incidents (with their alerts) and handoffs into a fresh database through
the real schema (Alembic migrations), then times `DigestService.build` — the query of the
week's facts and every figure — for the last complete week and for the week in progress, as
the scheduled digest and `/ai-incident digest` build them.

    .venv/bin/python bench/digest.py                      # SQLite
    .venv/bin/python bench/digest.py --database postgres  # PostgreSQL on 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import load_policy  # noqa: E402
from bot.services.digest import DigestService, StoredHandoffs  # noqa: E402
from storage.db import create_db_engine, migrate  # noqa: E402
from storage.models import AlertRow, HandoffRow, IncidentRow  # noqa: E402

PG = os.environ.get("AI_INCIDENT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
BUDGET_S = 2.0
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday: the week in progress has data


def _incidents(n: int, rng: random.Random, workflows: list[str]) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        triggered = NOW - timedelta(seconds=rng.uniform(0, 365 * 86400))
        severity = rng.choices(("P1", "P2", "P3"), (1, 4, 10))[0]
        resolved = rng.random() < 0.97
        acked = triggered + timedelta(minutes=rng.expovariate(1 / 12))
        end = triggered + timedelta(hours=rng.expovariate(1 / 6))
        rows.append(
            {
                "title": f"bench incident {i}",
                "workflow": rng.choice(workflows),
                "category": "internal",
                "severity": severity,
                "severity_reasons": [{"rule": "bench", "severity": severity, "text": "bench"}],
                "state": "resolved" if resolved and end < NOW else "acknowledged",
                "source": "bench",
                "ai_context": {},
                "impact_external": False,
                "detected_at": triggered,
                "triggered_at": triggered,
                "acknowledged_at": acked if acked < NOW else None,
                "resolved_at": end if resolved and end < NOW else None,
                "severity_changed_at": triggered,
                "root_cause_deadline_at": triggered + timedelta(hours=4)
                if severity != "P3"
                else None,
                "created_at": triggered,
                "updated_at": triggered,
            }
        )
    return rows


def _alerts(incident_ids: list[tuple[int, datetime]], rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for incident_id, triggered in incident_ids:
        for k in range(2):
            seen = triggered + timedelta(minutes=5 * k)
            rows.append(
                {
                    "incident_id": incident_id,
                    "fingerprint": f"{incident_id:08x}{k:08x}",
                    "status": "resolved",
                    "digest": "",
                    "title": "bench alert",
                    "labels": {},
                    "annotations": {},
                    "links": [],
                    "values": {},
                    "signal": {"kind": "error_rate", "value": round(rng.uniform(0, 0.3), 3)},
                    "evidence": {},
                    "ai_context": {"cost_usd": round(rng.uniform(0.01, 2.0), 4)},
                    "first_seen_at": seen,
                    "last_seen_at": seen,
                }
            )
    return rows


def _handoffs(n: int, rng: random.Random, workflows: list[str]) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        received = NOW - timedelta(seconds=rng.uniform(0, 365 * 86400))
        confidence = round(rng.betavariate(5, 2), 3)
        tier = "auto" if confidence >= 0.95 else "review" if confidence >= 0.8 else "human"
        decided = tier != "auto" and rng.random() < 0.95
        claimed_at = received + timedelta(minutes=rng.expovariate(1 / 20)) if decided else None
        decided_at = claimed_at + timedelta(minutes=rng.expovariate(1 / 15)) if claimed_at else None
        decision = rng.choices(("approved", "edited", "rejected"), (7, 2, 1))[0]
        rows.append(
            {
                "idempotency_key": f"bench-{i}",
                "source": "bench",
                "workflow": rng.choice(workflows),
                "reason": "low_confidence",
                "confidence": confidence,
                "confidence_band": f"{int(confidence * 20) / 20:.2f}",
                "tier": tier,
                "tier_reason": "bench",
                "status": decision if decided else ("recorded" if tier == "auto" else "queued"),
                "request": {"summary": "bench"},
                "suggested_actions": [],
                "context": {},
                "ai_context": {"cost_usd": round(rng.uniform(0.001, 0.05), 4)},
                "claimed_at": claimed_at,
                "decision": decision if decided else None,
                "decided_at": decided_at,
                "received_at": received,
                "updated_at": decided_at or received,
                "sla_claim_breached": rng.random() < 0.05,
            }
        )
    return rows


def _insert(engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(sa.insert(table), rows[start : start + 5000])


def run(url: str, incidents: int, handoffs: int, repeats: int) -> int:
    engine = create_db_engine(url)
    migrate(engine)
    policy = load_policy(ROOT / "examples" / "ai-incident.example.yml", {})
    workflows = sorted(policy.workflows)
    rng = random.Random(7)
    started = time.perf_counter()
    _insert(engine, IncidentRow.__table__, _incidents(incidents, rng, workflows))  # type: ignore[attr-defined]
    table: sa.Table = IncidentRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        ids = [(r[0], r[1]) for r in conn.execute(sa.select(table.c.id, table.c.triggered_at))]
    _insert(engine, AlertRow.__table__, _alerts(ids, rng))  # type: ignore[attr-defined]
    _insert(engine, HandoffRow.__table__, _handoffs(handoffs, rng, workflows))  # type: ignore[attr-defined]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    print(
        f"generated {incidents:,} incidents, {2 * incidents:,} alerts, {handoffs:,} handoffs "
        f"over a year in {time.perf_counter() - started:.1f} s ({engine.dialect.name})"
    )
    service = DigestService(policy=policy, clock=lambda: NOW, handoffs=StoredHandoffs())
    current = service.current_week()
    last = service.week_of_slot(service.last_slot(NOW))
    worst = 0.0
    for label, week in (("last complete week", last), ("week in progress", current)):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with Session(engine) as session:
                digest = service.build(session, week)
            times.append(time.perf_counter() - t0)
        worst = max(worst, max(times))
        opened = sum(s.opened for s in digest.severities)
        print(
            f"{label} {week}: {opened} incidents opened, {digest.handoffs_total} handoffs; "
            f"build median {statistics.median(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms over {repeats} runs"
        )
    engine.dispose()
    verdict = "PASS" if worst < BUDGET_S else "FAIL"
    print(f"{verdict}: slowest build {worst * 1000:.0f} ms (budget {BUDGET_S * 1000:.0f} ms)")
    return 0 if verdict == "PASS" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--incidents", type=int, default=50_000)
    parser.add_argument("--handoffs", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.database == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return run(f"sqlite:///{tmp}/digest.db", args.incidents, args.handoffs, args.repeats)
    name = f"aiinc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return run(f"{url}/{name}", args.incidents, args.handoffs, args.repeats)
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
