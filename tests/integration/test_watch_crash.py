"""Crash safety of the watched history: SIGKILL while batches of runs stream in.

The real `ai-incident serve` takes batches of runs from four senders and is killed with SIGKILL
in the middle of the stream, then restarted on the same database. Every run of a batch that was
answered 2xx is in the history; a batch that got no answer may or may not be; sending every
batch again afterwards adds nothing that was already counted (the run_id decides), so in the end
each run is counted exactly once.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bot.domain.watch.history import run_key
from tests.support.databases import database
from tests.support.process import ROOT, WEBHOOK_TOKEN, BotProcess

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
SENDERS = 4
BATCHES = 30  # per sender
PER_BATCH = 200
KILL_AFTER = 30  # batches answered before the kill
WORKFLOWS = ["email-summarizer", "support-chatbot", "weekly-report", "not-in-the-policy"]


def batch(sender: int, n: int) -> dict[str, Any]:
    return {
        "runs": [
            {
                "workflow": WORKFLOWS[(sender + i) % len(WORKFLOWS)],
                "run_id": f"s{sender}-b{n}-r{i}",
                "status": "error" if i % 10 == 0 else "ok",
                "latency_ms": 100 + i,
                "tokens_in": 10,
                "tokens_out": 5,
                "cost_usd": 0.001,
            }
            for i in range(PER_BATCH)
        ]
    }


class Sender(threading.Thread):
    def __init__(self, url: str, index: int) -> None:
        super().__init__(daemon=True)
        self.url, self.index = url, index
        self.answered: list[int] = []  # batches answered 2xx
        self.unanswered: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=AUTH, timeout=10) as client:
            for n in range(BATCHES):
                if self.halt.is_set():
                    return
                try:
                    r = client.post("/webhooks/runs", json=batch(self.index, n))
                except httpx.HTTPError:
                    self.unanswered.append(n)
                    return
                assert r.status_code in (200, 202), r.text
                self.answered.append(n)


class Database:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))

    def seen(self) -> set[int]:
        with self.engine.connect() as conn:
            return {int(k) for (k,) in conn.execute(sa.text("SELECT key FROM watch_seen"))}

    def runs(self) -> tuple[int, int, int]:
        with self.engine.connect() as conn:
            minute = conn.execute(
                sa.text("SELECT sum(runs), sum(errors), sum(tokens_in) FROM watch_minute")
            ).one()
            hour = conn.execute(sa.text("SELECT sum(runs) FROM watch_hour")).scalar()
        assert minute[0] == hour, "the hour rows hold what their minutes hold"
        return int(minute[0] or 0), int(minute[1] or 0), int(minute[2] or 0)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    shutil.copy(ROOT / "examples" / "ai-incident.example.yml", tmp_path / "ai-incident.yml")
    yield tmp_path


def keys(sender: int, n: int) -> set[int]:
    return {run_key(r["workflow"], r["run_id"]) for r in batch(sender, n)["runs"]}


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sigkill_while_runs_stream_in_keeps_every_answered_batch(
    backend: str, workdir: Path
) -> None:
    with database(backend, workdir) as url, closing(Database(url)) as db:
        first = BotProcess(database_url=url, workdir=workdir).start()
        senders = [Sender(first.url, i) for i in range(SENDERS)]
        try:
            for sender in senders:
                sender.start()
            deadline = threading.Event()
            while sum(len(s.answered) for s in senders) < KILL_AFTER:
                assert any(s.is_alive() for s in senders), "the senders stopped before the kill"
                deadline.wait(0.01)
            first.kill()
        finally:
            first.kill()
            for sender in senders:
                sender.halt.set()
                sender.join(timeout=30)
        answered = {(s.index, n) for s in senders for n in s.answered}
        assert len(answered) >= KILL_AFTER
        assert any(s.unanswered for s in senders) or len(answered) < SENDERS * BATCHES

        # every run of every answered batch survived the kill
        seen = db.seen()
        for sender, n in answered:
            assert keys(sender, n) <= seen, f"batch {n} of sender {sender} was answered but lost"
        counted, _, _ = db.runs()
        assert counted == len(seen), "a run was counted that was never claimed, or twice"

        # restart and send everything again: only what was not yet counted is added
        second = BotProcess(database_url=url, workdir=workdir).start()
        try:
            with httpx.Client(base_url=second.url, headers=AUTH, timeout=30) as client:
                for sender in range(SENDERS):
                    for n in range(BATCHES):
                        r = client.post("/webhooks/runs", json=batch(sender, n))
                        assert r.status_code in (200, 202), r.text
                        if (sender, n) in answered:
                            assert r.json()["accepted"] == 0, (sender, n)
        finally:
            second.stop()
        total = SENDERS * BATCHES * PER_BATCH
        assert db.runs() == (total, total // 10, total * 10)
        assert len(db.seen()) == total
