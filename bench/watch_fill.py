"""`bench/watch.py --mode watch`: 35 days of minute history for 20 workflows, its size, `watch`.

Fills a fresh, migrated database through `storage.watch.add_tallies` (minute rows, the hour rows
they add up to, the versions seen) and `storage.watch.claim` (the seen key one run per minute
leaves), one day per transaction, then measures the database's size and times the figures of
every workflow (`WatchService.figures`), the reads they are made of, and the CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ingest
import sqlalchemy as sa
from sqlmodel import Session
from watch import (
    ERRORS,
    MODELS,
    ROOT,
    TARGET_DISK_MB,
    TARGET_WATCH_MS,
    WORKFLOWS,
    _verdict,
)

from bot.config import load_policy
from bot.domain.watch.history import (
    CONFIDENCE_BOUNDS,
    LATENCY_BOUNDS_MS,
    Tally,
    VersionKind,
    hour_of,
    minute_of,
    run_key,
)
from bot.services.watch import WatchService
from storage import watch as store
from storage.db import create_db_engine, migrate

WATCH_TABLES = ("watch_minute", "watch_hour", "watch_seen", "watch_version", "watch_stream")
SHAPES = 512  # distinct count shapes per workflow, reused across minutes
RECENT_DAYS = 2  # the policy's default retention of the latest latencies (older ones pruned)


def _shape(rng: random.Random, rate: float, error_share: float) -> dict[str, Any]:
    """Return the counts of one busy-or-quiet minute of a workflow."""
    runs = max(1, int(rng.expovariate(1 / rate)) if rate > 1 else 1)
    latency = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    confidence = [0] * (len(CONFIDENCE_BOUNDS) + 1)
    total_ms = 0.0
    top = 0.0
    for _ in range(runs):
        value = rng.lognormvariate(7.2, 0.5)
        total_ms += value
        top = max(top, value)
        latency[sum(1 for b in LATENCY_BOUNDS_MS if b < value)] += 1
        c = min(0.999, max(0.0, rng.gauss(0.82, 0.1)))
        confidence[int(c * 10)] += 1
    errors = int(runs * error_share + rng.random())
    tokens_in = int(runs * rng.lognormvariate(6.5, 0.3))
    tokens_out = int(runs * rng.lognormvariate(5.3, 0.3))
    return {
        "runs": runs,
        "errors": min(errors, runs),
        "refusals": 1 if rng.random() < 0.01 else 0,
        "timeouts": 1 if rng.random() < 0.02 else 0,
        "handoffs": 1 if rng.random() < 0.03 else 0,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost_usd": round(tokens_in * 1.5e-7 + tokens_out * 6e-7, 6),
        "latency_count": runs,
        "latency_sum_ms": round(total_ms, 1),
        "latency_max_ms": round(top, 1),
        "latency_buckets": latency,
        "confidence_count": runs,
        "confidence_sum": round(sum((i + 0.5) / 10 * n for i, n in enumerate(confidence)), 3),
        "confidence_buckets": confidence,
    }


class Generator:
    """Realistic minute tallies: each workflow its own rate, error share, models and prompts."""

    def __init__(
        self, seed: int, end_minute: int, days: int, workflows: tuple[str, ...] = WORKFLOWS
    ) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.end = end_minute
        self.start = end_minute - days * 1440
        self.workflows = workflows
        self.shapes: dict[str, list[dict[str, Any]]] = {}
        self.models: dict[str, tuple[str, str]] = {}
        for i, workflow in enumerate(workflows):
            rate = (1, 2, 5, 10, 20)[i % 5] * rng.uniform(0.7, 1.3)
            share = rng.choice((0.005, 0.01, 0.02, 0.05))
            self.shapes[workflow] = [_shape(rng, rate, share) for _ in range(SHAPES)]
            self.models[workflow] = (MODELS[i % len(MODELS)], MODELS[(i + 1) % len(MODELS)])

    def tally(self, index: int, workflow: str, minute: int) -> Tally:
        rng = self.rng
        shape = self.shapes[workflow][rng.randrange(SHAPES)]
        base = minute * 60_000
        offsets = sorted(rng.randrange(60_000) for _ in range(min(shape["runs"], 5)))
        last = base + offsets[-1]
        tally = Tally(**shape, last_at_ms=last)
        if minute >= self.end - RECENT_DAYS * 1440:
            tally.recent = [(base + o, float(rng.randrange(400, 4000))) for o in offsets]
        # a model switch a third of the way in, a new prompt version every week
        old, new = self.models[workflow]
        day = (minute - self.start) // 1440
        model = new if (index % 3 == 0 and day >= 12) else old
        tally.versions[(VersionKind.MODEL, model)] = (base + offsets[0], last)
        tally.versions[(VersionKind.PROMPT, f"v{1 + day // 7}")] = (base + offsets[0], last)
        if shape["errors"] or shape["timeouts"]:
            text = ERRORS[rng.randrange(len(ERRORS))]
            tally.versions[(VersionKind.ERROR, text)] = (last, last)
        return tally

    def day(self, day: int) -> dict[tuple[str, int], Tally]:
        first = self.start + day * 1440
        return {
            (workflow, minute): self.tally(i, workflow, minute)
            for minute in range(first, first + 1440)
            for i, workflow in enumerate(self.workflows)
        }


def disk_usage(engine: sa.Engine, url: str) -> dict[str, Any]:
    """Return the database's size on disk, in bytes, whole and per watch table where known."""
    if engine.dialect.name == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            tables: dict[str, int] = {}
            try:
                rows = conn.execute(
                    "SELECT name, tbl_name FROM sqlite_master WHERE tbl_name LIKE 'watch_%'"
                ).fetchall()
                for name, table in rows:
                    (size,) = conn.execute(
                        "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?", (name,)
                    ).fetchone()
                    tables[table] = tables.get(table, 0) + int(size)
            except sqlite3.OperationalError:
                tables = {}  # no dbstat in this SQLite build
        finally:
            conn.close()
        wal = path.with_name(path.name + "-wal")
        total = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        return {"total_bytes": total, "tables": tables}
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE")
        tables = {
            t: int(
                conn.execute(sa.text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar_one()
            )
            for t in WATCH_TABLES
        }
        database = int(
            conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        )
    return {"total_bytes": sum(tables.values()), "database_bytes": database, "tables": tables}


def _timed(repeats: int, fn: Any) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, out


def _p95(times: list[float]) -> float:
    return sorted(times)[max(0, round(0.95 * len(times)) - 1)]


def _cli(url: str, policy: Path) -> dict[str, Any] | None:
    """Time `python -m bot.cli watch --format json` against the filled database, if it exists."""
    env = {**os.environ, "DATABASE_URL": url, "AI_INCIDENT_CONFIG": str(policy)}
    probe = subprocess.run(
        [sys.executable, "-m", "bot.cli", "watch", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return None
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "watch", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import bot.cli"], cwd=ROOT, env=env, check=False)
    startup = (time.perf_counter() - t0) * 1000
    return {
        "exit": done.returncode,
        "wall_ms": wall,
        "import_ms": startup,
        "output_bytes": len(done.stdout),
        "stderr_tail": done.stderr[-500:],
    }


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ai-incident-watch-bench-"))
    policy_path = workdir / "ai-incident.yml"
    shutil.copyfile(ingest.EXAMPLE_POLICY, policy_path)
    policy = load_policy(policy_path, {})
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    end = minute_of(now)
    generator = Generator(seed=7, end_minute=end, days=args.days)
    print(
        f"watch benchmark: {len(WORKFLOWS)} workflows x {args.days} days of minute history "
        f"({len(WORKFLOWS) * args.days * 1440:,} minute rows) into a fresh {args.database} database"
    )
    record: dict[str, Any] = {}
    with ingest.database(args.database, workdir) as url:
        engine = create_db_engine(url)
        try:
            migrate(engine)
            t0 = time.perf_counter()
            runs = 0
            for day in range(args.days):
                tallies = generator.day(day)
                runs += sum(t.runs for t in tallies.values())
                keys = {run_key(w, f"run-{m}"): m for (w, m) in tallies}
                with Session(engine) as session:
                    store.add_tallies(session, tallies)
                    store.claim(session, keys)
                    session.commit()
                if day % 7 == 6 or day == args.days - 1:
                    rate = len(WORKFLOWS) * 1440 * (day + 1) / (time.perf_counter() - t0)
                    print(f"  day {day + 1}/{args.days}: {rate:,.0f} minute rows/s", flush=True)
            fill_s = time.perf_counter() - t0
            with Session(engine) as session:
                counts = {
                    t: session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in WATCH_TABLES
                }
            print(
                f"filled in {fill_s:.0f} s: {runs:,} runs; rows "
                + ", ".join(f"{t} {n:,}" for t, n in counts.items())
            )
            disk = disk_usage(engine, url)
            mb = disk["total_bytes"] / 1e6
            per_table = ", ".join(f"{t} {b / 1e6:.1f}" for t, b in disk["tables"].items())
            print(f"on disk: {mb:.1f} MB" + (f" ({per_table} MB)" if per_table else ""))
            if "database_bytes" in disk:
                print(f"  whole PostgreSQL database: {disk['database_bytes'] / 1e6:.1f} MB")

            service = WatchService(policy=policy, clock=lambda: now)

            def figures() -> Any:
                with Session(engine) as session:
                    return service.figures(session)

            first_t, _ = _timed(1, figures)
            times, found = _timed(args.repeats, figures)
            print(
                f"\nWatchService.figures for {len(found)} workflows: first {first_t[0]:.0f} ms; "
                f"median {statistics.median(times):.0f} ms, p95 {_p95(times):.0f} ms, "
                f"max {max(times):.0f} ms over {args.repeats}"
            )

            def reads() -> tuple[int, int, int]:
                with Session(engine) as session:
                    minutes = store.slots(session, since=end - 120, until=end + 1)
                    hours = store.slots(
                        session, since=hour_of(end) - 8 * 1440, until=end + 1, hourly=True
                    )
                    versions = store.versions(session)
                return len(minutes), len(hours), len(versions)

            read_t, sizes = _timed(args.repeats, reads)
            print(
                f"  its reads alone (slots of 2 h of minutes: {sizes[0]:,}, 8 days of hours: "
                f"{sizes[1]:,}, versions: {sizes[2]:,}): median {statistics.median(read_t):.0f} ms,"
                f" p95 {_p95(read_t):.0f} ms"
            )
            cli = _cli(url, policy_path)
            if cli is None:
                print("  CLI: `python -m bot.cli watch` does not exist on this commit; not timed")
            else:
                print(
                    f"  CLI `python -m bot.cli watch --format json`: exit {cli['exit']}, "
                    f"{cli['wall_ms']:.0f} ms wall ({cli['import_ms']:.0f} ms of it is starting "
                    f"Python and importing bot.cli), {cli['output_bytes']:,} bytes out"
                )
            record = {
                "fill_seconds": fill_s,
                "runs": runs,
                "rows": counts,
                "disk": disk,
                "figures_ms": {"first": first_t[0], "all": times},
                "reads_ms": read_t,
                "read_sizes": sizes,
                "cli": cli,
            }
        finally:
            engine.dispose()
    checks = {
        f"watch figures p95 < {TARGET_WATCH_MS:g} ms": _p95(times) < TARGET_WATCH_MS,
        f"history on disk < {TARGET_DISK_MB:g} MB": mb < TARGET_DISK_MB,
    }
    if cli is not None:
        checks["CLI watch exits 0"] = cli["exit"] == 0
    print(json.dumps({"figures_median_ms": statistics.median(times), "disk_mb": mb}))
    return _verdict(args, checks, record, workdir)
