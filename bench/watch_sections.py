"""`bench/watch.py --mode sections`: where one batch of 500 runs spends the bot's CPU.

Runs the steps the `/webhooks/runs` and `/v1/metrics` routes take for a batch, in-process and
one after the other, against a fresh migrated database, and prints the CPU time
(`time.process_time`, so other processes on the machine do not count) of each step per batch
and per run. HTTP, FastAPI and the hand-over to the writer thread are not in it: the difference
between its total and the server's CPU per request in `--mode runs|otlp` is their cost.
"""

# ruff: noqa: B023  (every lambda here is called at once, inside its loop iteration)

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import ingest
from sqlmodel import Session
from watch import RUNS_PER_REQUEST, OtlpTemplate, RunsTemplate, draw_runs, uid_base

from bot.config import load_policy
from bot.domain.watch.history import admission_problem, fold, minute_of, run_key
from bot.domain.watch.otlp import count, read
from bot.services.watch_metrics import watch_mapping
from handlers.otlp import PROTOBUF, _decoded, points_of
from handlers.runs import _parse
from storage import watch as store
from storage import watch_streams
from storage.db import create_db_engine, migrate

T = TypeVar("T")


class Clock:
    """CPU seconds per named step, summed over batches."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[[], T]) -> T:
        t0 = time.process_time()
        out = fn()
        self.spent[name] = self.spent.get(name, 0.0) + time.process_time() - t0
        return out

    def report(self, title: str, batches: int) -> dict[str, float]:
        print(f"\n{title}: CPU per batch of {RUNS_PER_REQUEST} runs ({batches} batches)")
        total = sum(self.spent.values())
        for name, s in [*self.spent.items(), ("total", total)]:
            print(
                f"  {name:<44}{s / batches * 1000:>8.2f} ms{s / batches / RUNS_PER_REQUEST * 1e6:>8.1f} µs/run"
            )
        print(f"  -> {batches * RUNS_PER_REQUEST / total:,.0f} runs/s on one core for these steps")
        return {name: s / batches * 1000 for name, s in self.spent.items()}


def runs_path(engine: Any, batches: int, keep: Any) -> dict[str, float]:
    tpl = RunsTemplate.build(draw_runs(RUNS_PER_REQUEST, seed=13))
    t = Clock()
    for k in range(batches):
        body = tpl.render(uid_base(1, k), time.time())
        good, _bad, _prefix = t("parse and check the JSON body (RunsIn)", lambda: _parse(body))
        now = datetime.now(UTC)
        runs = t("RunIn -> Run", lambda: [parsed.run(now) for _, parsed in good])
        t(
            "admission (too old / future)",
            lambda: [admission_problem(r.at, now, keep) for r in runs],
        )
        with Session(engine) as session:
            keys = t("run keys (blake2b)", lambda: [run_key(r.workflow, r.run_id) for r in runs])
            minute = minute_of(now)
            claimed = t(
                "claim: insert the seen keys",
                lambda: store.claim(session, dict.fromkeys(keys, minute)),
            )
            tallies = t("fold runs into tallies", lambda: fold(runs))
            t(
                "add_tallies (minute, hour, version upserts)",
                lambda: store.add_tallies(session, tallies),
            )
            t("commit", session.commit)
        assert len(claimed) == RUNS_PER_REQUEST
    return t.report("POST /webhooks/runs", batches)


def otlp_path(engine: Any, batches: int, policy: Any) -> dict[str, float]:
    tpl = OtlpTemplate.build(draw_runs(RUNS_PER_REQUEST, seed=13))
    mapping = watch_mapping(policy)
    t = Clock()
    last = 0
    for _ in range(batches):
        last = max(time.time_ns(), last + (RUNS_PER_REQUEST + 1) * 1000)
        body = tpl.render(last)
        export = t("decode protobuf", lambda: _decoded(body, PROTOBUF))
        points = t("protobuf -> Points", lambda: list(points_of(export)))
        now = datetime.now(UTC)
        reading = t("read: points -> measures (stream keys)", lambda: read(points, mapping, now))
        measures = reading.measures
        with Session(engine) as session:
            states = t(
                "lock cumulative streams",
                lambda: watch_streams.lock(
                    session, {m.stream for m in measures if m.cumulative}, minute=minute_of(now)
                ),
            )
            claims = {
                key: m.point.time_ns // 60_000_000_000
                for m in measures
                if (key := m.claim) is not None
            }
            claimed = t("claim: insert the seen keys", lambda: store.claim(session, claims))
            batch = t("count measures into tallies", lambda: count(measures, states, claimed))
            t(
                "add_tallies (minute, hour, version upserts)",
                lambda: store.add_tallies(session, batch.tallies),
            )
            t("save stream states", lambda: watch_streams.save(session, batch.states))
            t("commit", session.commit)
        assert sum(tally.runs for tally in batch.tallies.values()) == RUNS_PER_REQUEST
    return t.report("POST /v1/metrics", batches)


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="ai-incident-watch-bench-"))
    policy = load_policy(ingest.EXAMPLE_POLICY, {})
    out: dict[str, Any] = {}
    try:
        with ingest.database(args.database, workdir) as url:
            engine = create_db_engine(url)
            try:
                migrate(engine)
                batches = max(10, int(args.seconds * 2))
                out["runs_ms_per_batch"] = runs_path(
                    engine, batches, policy.watch.retention.minutes
                )
                out["otlp_ms_per_batch"] = otlp_path(engine, batches, policy)
            finally:
                engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out
