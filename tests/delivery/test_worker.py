"""The delivery worker on a real database: order per key, retries, leases, takeovers, coalescing."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.delivery.worker import (
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    Attempt,
    DeliveryWorker,
    GiveUp,
    RetryLater,
    backoff,
)
from bot.domain.incidents import JournalKind
from storage import journal
from storage.db import create_db_engine, migrate, session_scope
from storage.models import IncidentRow, OutboxRow
from storage.outbox import enqueue
from tests.conftest import FakeClock
from tests.support.databases import database

pytestmark = pytest.mark.both_backends

KIND = "test.deliver"
LEASE = timedelta(seconds=30)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    engine = create_db_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated engine on PostgreSQL only (row locks with SKIP LOCKED)."""
    with database("postgres", tmp_path) as url:
        engine = create_db_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


@dataclass
class Recorder:
    """A handler that records each attempt and plays scripted outcomes per idempotency key."""

    script: dict[str, list[BaseException | Callable[[Attempt], None]]] = field(default_factory=dict)
    calls: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, attempt: Attempt) -> dict[str, Any] | None:
        with self.lock:
            self.calls.append(attempt)
            outcomes = self.script.get(attempt.idempotency_key)
            outcome = outcomes.pop(0) if outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is not None:
            outcome(attempt)
        return {"number": attempt.number}

    def keys(self) -> list[str]:
        with self.lock:
            return [a.idempotency_key for a in self.calls]


def make_worker(
    engine: Engine, clock: FakeClock, handler: Recorder, *, seed: int = 1
) -> DeliveryWorker:
    return DeliveryWorker(
        engine=engine, handlers={KIND: handler}, clock=clock, lease=LEASE, rng=random.Random(seed)
    )


def add(engine: Engine, key: str, ordering: str, clock: FakeClock, kind: str = KIND) -> int:
    """Commit one outbox row; return its id."""
    with session_scope(engine) as session:
        return enqueue(
            session,
            kind=kind,
            idempotency_key=key,
            ordering_key=ordering,
            payload={"key": key},
            now=clock(),
        )


def row(engine: Engine, row_id: int) -> OutboxRow:
    with Session(engine) as session:
        found = session.get(OutboxRow, row_id)
        assert found is not None
        return found


def rows(engine: Engine) -> list[OutboxRow]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxRow).order_by(sa.column("id"))).all())


# -- order --------------------------------------------------------------------------------------


def test_one_key_is_delivered_in_order_while_a_failed_head_is_retried(engine: Engine) -> None:
    clock = FakeClock()
    handler = Recorder(script={"a1": [RuntimeError("receiver hiccup")]})
    worker = make_worker(engine, clock, handler)
    a1, a2, a3 = (add(engine, f"a{i}", "incident:1", clock) for i in (1, 2, 3))
    add(engine, "b1", "incident:2", clock)

    assert worker.run_once() == 2
    # a1 failed; a2 and a3 wait behind it; key b is not held up
    assert handler.keys() == ["a1", "b1"]
    head = row(engine, a1)
    assert head.status == "pending" and head.attempts == 1
    assert head.last_error == "RuntimeError: receiver hiccup"
    assert {row(engine, a2).status, row(engine, a3).status} == {"pending"}
    assert row(engine, a2).attempts == 0

    # while a1 backs off, a new key is delivered at once and key a stays put
    add(engine, "c1", "incident:3", clock)
    clock.advance(seconds=0.25)
    assert worker.run_once() == 1
    assert handler.keys()[-1] == "c1"

    clock.advance(seconds=1)  # past the first backoff (at most 1 s)
    assert worker.run_once() == 3
    assert handler.keys()[-3:] == ["a1", "a2", "a3"]
    assert [r.status for r in rows(engine)] == ["done"] * 5
    assert row(engine, a1).result == {"number": 2}


def test_later_rows_of_a_key_wait_for_a_head_that_is_not_due_yet(engine: Engine) -> None:
    clock = FakeClock()
    handler = Recorder()
    worker = make_worker(engine, clock, handler)
    with session_scope(engine) as session:
        enqueue(
            session,
            kind=KIND,
            idempotency_key="debounced",
            ordering_key="k",
            payload={},
            now=clock(),
            delay=timedelta(seconds=2),
        )
    add(engine, "after", "k", clock)
    assert worker.run_once() == 0
    clock.advance(seconds=2)
    assert worker.run_once() == 2
    assert handler.keys() == ["debounced", "after"]


# -- retries and backoff ------------------------------------------------------------------------


def test_retry_after_reschedules_exactly_that_long_after_the_answer(engine: Engine) -> None:
    clock = FakeClock()

    def slow_then_429(attempt: Attempt) -> None:
        clock.advance(seconds=3)  # the answer takes 3 s to come back
        raise RetryLater("chat.update: rate limited", retry_after=7)

    handler = Recorder(script={"r": [slow_then_429]})
    worker = make_worker(engine, clock, handler)
    rid = add(engine, "r", "k", clock)
    worker.run_once()
    answered = clock()
    pending = row(engine, rid)
    assert pending.status == "pending"
    assert pending.next_attempt_at == answered + timedelta(seconds=7)
    assert pending.last_error == "RetryLater: chat.update: rate limited"

    clock.advance(seconds=6.999)
    assert worker.run_once() == 0
    clock.advance(seconds=0.001)
    assert worker.run_once() == 1
    second = handler.calls[-1]
    assert second.number == 2 and second.uncertain is True
    assert row(engine, rid).status == "done"


def test_other_failures_back_off_within_bounds_growing_with_attempts(engine: Engine) -> None:
    clock = FakeClock()
    failures = 6
    handler = Recorder(script={"x": [ConnectionError("reset")] * failures})
    worker = make_worker(engine, clock, handler, seed=7)
    rid = add(engine, "x", "k", clock)
    waits = []
    for attempt in range(1, failures + 1):
        assert worker.run_once() == 1
        pending = row(engine, rid)
        assert pending.attempts == attempt and pending.status == "pending"
        wait = (pending.next_attempt_at - clock()).total_seconds()
        ceiling = 0.5 * 2**attempt
        assert ceiling / 2 <= wait <= ceiling
        waits.append(wait)
        # not due a moment before its time
        clock.advance(seconds=wait - 0.001)
        assert worker.run_once() == 0
        clock.advance(seconds=0.001)
    assert waits == sorted(waits) and waits[-1] > 4 * waits[0]
    assert worker.run_once() == 1
    assert row(engine, rid).status == "done"


def test_backoff_is_jittered_inside_bounds_and_grows_up_to_the_cap() -> None:
    rng = random.Random(20261123)
    cap = MAX_BACKOFF.total_seconds()
    for attempt in range(1, 25):
        ceiling = min(cap, 0.5 * 2**attempt)
        samples = [backoff(attempt, rng).total_seconds() for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples), attempt
        assert len(set(samples)) > 150  # jittered, not a fixed step
    # below the cap each attempt's shortest wait is the previous one's longest: waits never shrink
    one_each = [backoff(n, rng).total_seconds() for n in range(1, 11)]
    assert one_each == sorted(one_each)
    assert backoff(10_000, rng) <= MAX_BACKOFF
    # the same seed gives the same waits
    assert [backoff(3, random.Random(5)) for _ in range(3)] == [
        backoff(3, random.Random(5)) for _ in range(3)
    ]
    # Retry-After wins over the jitter, and is never negative
    assert backoff(9, rng, retry_after=7) == timedelta(seconds=7)
    assert backoff(1, rng, retry_after=-3) == timedelta(0)


def test_give_up_fails_the_row_and_frees_its_key(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    handler = Recorder(script={"g1": [GiveUp("chat.update: channel_not_found")]})
    worker = make_worker(engine, clock, handler)
    g1 = add(engine, "g1", "k", clock)
    g2 = add(engine, "g2", "k", clock)
    orphan = add(engine, "orphan", "k", clock, kind="nobody.handles.this")
    g3 = add(engine, "g3", "k", clock)
    with caplog.at_level(logging.ERROR, logger="bot.delivery.worker"):
        assert worker.run_once() == 4
    assert handler.keys() == ["g1", "g2", "g3"]
    failed = row(engine, g1)
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.last_error == "chat.update: channel_not_found"
    assert failed.lease_until is None and failed.delivered_at is None
    assert row(engine, orphan).status == "failed"
    assert "no handler" in (row(engine, orphan).last_error or "")
    assert row(engine, g2).status == row(engine, g3).status == "done"
    assert any("channel_not_found" in r.getMessage() for r in caplog.records)
    # a failed row is never tried again
    clock.advance(hours=1)
    assert worker.run_once() == 0


def test_a_row_that_never_succeeds_fails_after_max_attempts_and_frees_its_key(
    engine: Engine,
) -> None:
    clock = FakeClock()
    handler = Recorder(script={"stuck": [RuntimeError("boom")] * MAX_ATTEMPTS})
    worker = make_worker(engine, clock, handler)
    stuck = add(engine, "stuck", "k", clock)
    after = add(engine, "after", "k", clock)
    for _ in range(MAX_ATTEMPTS):
        worker.run_once()
        clock.advance(seconds=MAX_BACKOFF.total_seconds() + 1)
    assert row(engine, stuck).status == "failed"
    assert row(engine, stuck).attempts == MAX_ATTEMPTS
    assert "boom" in (row(engine, stuck).last_error or "")
    assert row(engine, after).status == "done"


# -- leases and uncertainty ---------------------------------------------------------------------


def test_a_crashed_attempt_is_claimed_again_as_uncertain_after_its_lease(engine: Engine) -> None:
    clock = FakeClock()
    handler = Recorder()
    worker = make_worker(engine, clock, handler)
    rid = add(engine, "c", "k", clock)
    [first] = worker.claim(clock())
    assert first.uncertain is False and first.number == 1
    # the worker "crashes": it never finishes; the row stays leased until the lease runs out
    assert row(engine, rid).status == "in_flight"
    assert worker.claim(clock()) == []
    clock.advance(seconds=LEASE.total_seconds())
    assert worker.claim(clock()) == []
    clock.advance(seconds=0.001)
    [again] = worker.claim(clock())
    assert again.id == rid and again.uncertain is True and again.number == 2
    worker.deliver(again)
    assert row(engine, rid).status == "done"
    assert [a.uncertain for a in handler.calls] == [True]


def test_a_retry_after_a_failure_is_uncertain_and_a_fresh_row_is_not(engine: Engine) -> None:
    clock = FakeClock()
    handler = Recorder(script={"u": [TimeoutError("read timed out")]})
    worker = make_worker(engine, clock, handler)
    add(engine, "u", "k", clock)
    add(engine, "fresh", "other", clock)
    worker.run_once()
    clock.advance(seconds=2)
    worker.run_once()
    seen = [(a.idempotency_key, a.number, a.uncertain) for a in handler.calls]
    assert seen == [("u", 1, False), ("fresh", 1, False), ("u", 2, True)]


def test_a_stale_attempt_never_runs_or_overwrites_the_newer_outcome(engine: Engine) -> None:
    clock = FakeClock()
    handler = Recorder()
    one, two = make_worker(engine, clock, handler), make_worker(engine, clock, handler)
    rid = add(engine, "s", "k", clock)
    [stale] = one.claim(clock())
    clock.advance(seconds=LEASE.total_seconds() + 1)
    [newer] = two.claim(clock())
    two.deliver(newer)
    one.deliver(stale)  # its lease was taken over: it must not touch the receiver or the row
    assert [a.number for a in handler.calls] == [2]
    done = row(engine, rid)
    assert done.status == "done" and done.attempts == 2 and done.result == {"number": 2}


@pytest.mark.parametrize("stale_outcome", ["returns", "raises", "gives up"])
def test_a_slow_attempt_overtaken_mid_call_cannot_overwrite(
    engine: Engine, stale_outcome: str
) -> None:
    clock = FakeClock()
    handler = Recorder()
    one, two = make_worker(engine, clock, handler), make_worker(engine, clock, handler)

    def overtaken(attempt: Attempt) -> None:
        # the call hangs past the lease; another worker takes the row over and finishes it
        clock.advance(seconds=LEASE.total_seconds() + 1)
        [newer] = two.claim(clock())
        assert newer.number == 2 and newer.uncertain is True
        two.deliver(newer)
        if stale_outcome == "raises":
            raise RetryLater("late 429", retry_after=1)
        if stale_outcome == "gives up":
            raise GiveUp("late channel_not_found")

    handler.script["s"] = [overtaken]
    rid = add(engine, "s", "k", clock)
    [stale] = one.claim(clock())
    one.deliver(stale)
    done = row(engine, rid)
    assert done.status == "done" and done.result == {"number": 2}
    assert done.attempts == 2 and done.last_error is None and done.lease_until is None


# -- several workers on PostgreSQL --------------------------------------------------------------


@pytest.mark.postgres
def test_a_locked_row_is_skipped_not_waited_for(pg_engine: Engine) -> None:
    clock = FakeClock()
    worker = make_worker(pg_engine, clock, Recorder())
    held = add(pg_engine, "held", "a", clock)
    free = add(pg_engine, "free", "b", clock)
    with pg_engine.connect() as other:
        other.execute(sa.text("SET lock_timeout = '5s'"))
        other.execute(sa.text("SELECT id FROM outbox WHERE id = :id FOR UPDATE"), {"id": held})
        started = time.monotonic()
        claimed = worker.claim(clock())
        assert time.monotonic() - started < 2
        assert [a.id for a in claimed] == [free]
        other.rollback()
    assert [a.id for a in worker.claim(clock())] == [held]


@pytest.mark.postgres
def test_two_workers_never_claim_the_same_row_and_deliver_each_once(pg_engine: Engine) -> None:
    clock = FakeClock()
    keys, per_key = 12, 15
    ids: dict[str, list[int]] = defaultdict(list)
    for n in range(per_key):
        for k in range(keys):
            ids[f"key{k}"].append(add(pg_engine, f"key{k}/{n}", f"key{k}", clock))
    delivered: list[tuple[str, int]] = []
    lock = threading.Lock()

    def handler(attempt: Attempt) -> dict[str, Any]:
        time.sleep(0.001)  # let the other worker in between claim and finish
        with lock:
            delivered.append((str(attempt.payload["key"]).split("/")[0], attempt.id))
        return {}

    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    engines = [create_db_engine(pg_engine.url.render_as_string(hide_password=False)) for _ in "12"]

    def work(name: str, engine: Engine) -> None:
        worker = DeliveryWorker(
            engine=engine, handlers={KIND: handler}, clock=clock, lease=LEASE, batch=5
        )
        try:
            start.wait(timeout=10)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                attempts = worker.claim(clock())
                claimed[name].extend(a.id for a in attempts)
                for attempt in attempts:
                    worker.deliver(attempt)
                if not attempts:
                    if worker.pending_count() == 0:
                        return
                    time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(name, eng))
        for name, eng in zip(claimed, engines, strict=True)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
    finally:
        for eng in engines:
            eng.dispose()
    assert not errors and not any(t.is_alive() for t in threads)
    everything = sorted(i for key_ids in ids.values() for i in key_ids)
    assert not set(claimed["w1"]) & set(claimed["w2"])
    assert sorted(claimed["w1"] + claimed["w2"]) == everything
    assert claimed["w1"] and claimed["w2"], "both workers should have taken a share"
    assert sorted(i for _, i in delivered) == everything  # each exactly once
    for key, key_ids in ids.items():
        assert [i for k, i in delivered if k == key] == key_ids  # in order per key
    assert {r.status for r in rows(pg_engine)} == {"done"}
    assert {r.attempts for r in rows(pg_engine)} == {1}


# -- coalescing ---------------------------------------------------------------------------------


def make_incident(engine: Engine, clock: FakeClock) -> IncidentRow:
    now = clock()
    incident = IncidentRow(
        title="Summarizer error rate",
        workflow="email-summarizer",
        category="internal",
        severity="P2",
        state="triggered",
        source="alertmanager",
        detected_at=now,
        triggered_at=now,
        severity_changed_at=now,
        created_at=now,
        updated_at=now,
    )
    with session_scope(engine) as session:
        session.add(incident)
    return incident


def pending(engine: Engine, kind: str) -> list[OutboxRow]:
    return [r for r in rows(engine) if r.kind == kind and r.status == "pending"]


def test_card_changes_coalesce_into_one_pending_row(engine: Engine) -> None:
    clock = FakeClock()
    incident = make_incident(engine, clock)
    for _ in range(25):
        with session_scope(engine) as session:
            journal.card_changed(session, incident, clock())
        clock.advance(seconds=0.05)
    [card] = pending(engine, journal.CARD)
    # debounced from the first change, not pushed back by every later one
    assert card.next_attempt_at == FakeClock().now + journal.CARD_DEBOUNCE


def test_batched_journal_entries_merge_their_ids_into_one_pending_row(engine: Engine) -> None:
    clock = FakeClock()
    incident = make_incident(engine, clock)
    entry_ids = []
    for n in range(10):
        with session_scope(engine) as session:
            entry = journal.record(
                session,
                incident,
                kind=JournalKind.OBSERVATION,
                text=f"Alert joined: worker-{n}",
                author="alertmanager",
                now=clock(),
                batch=True,
            )
            entry_ids.append(entry)
    with session_scope(engine) as session:
        alone = journal.record(
            session, incident, kind=JournalKind.CHANGE, text="not batched", author="x", now=clock()
        )
    [batch, single] = pending(engine, journal.JOURNAL)
    assert batch.payload == {"entry_ids": entry_ids}
    assert batch.next_attempt_at == clock() + journal.JOURNAL_BATCH
    assert single.payload == {"entry_ids": [alone]} and single.coalesce_key is None


def test_a_change_after_the_row_is_in_flight_gets_a_new_row(engine: Engine) -> None:
    clock = FakeClock()
    incident = make_incident(engine, clock)
    seen: list[Attempt] = []

    def change(text: str) -> None:
        with session_scope(engine) as session:
            journal.card_changed(session, incident, clock())
            journal.record(
                session,
                incident,
                kind=JournalKind.OBSERVATION,
                text=text,
                author="alertmanager",
                now=clock(),
                batch=True,
            )

    def changes_while_in_flight(attempt: Attempt) -> dict[str, Any]:
        if attempt.kind not in {a.kind for a in seen}:
            # the incident changes again while this row is being delivered
            change(f"while {attempt.kind} was in flight")
        seen.append(attempt)
        return {}

    change("first alert")
    worker = DeliveryWorker(
        engine=engine,
        handlers={journal.CARD: changes_while_in_flight, journal.JOURNAL: changes_while_in_flight},
        clock=clock,
        lease=LEASE,
    )
    clock.advance(seconds=2)
    assert worker.run_once() == 2
    _card, batch = seen
    # the batch was still pending while the card was in flight: the entry joined it
    assert len(batch.payload["entry_ids"]) == 2
    # rows in flight took nothing more: the later changes wait in new rows
    assert len(pending(engine, journal.CARD)) == 1
    [late_batch] = pending(engine, journal.JOURNAL)
    assert len(late_batch.payload["entry_ids"]) == 1
    clock.advance(seconds=2)
    assert worker.run_once() == 2
    assert [a.kind for a in seen] == [journal.CARD, journal.JOURNAL] * 2
    assert len(rows(engine)) == 4 and {r.status for r in rows(engine)} == {"done"}


def test_a_slow_lane_never_holds_up_another_lane(engine: Engine) -> None:
    """A receiver stuck at its timeout delays only its own lane's rows."""
    clock = FakeClock()
    release = threading.Event()
    slow_started = threading.Event()

    def slow(attempt: Attempt) -> dict[str, Any]:
        slow_started.set()
        release.wait(10)
        return {}

    fast = Recorder()
    slow_lane = DeliveryWorker(
        engine=engine, handlers={"slow.kind": slow}, clock=clock, kinds=["slow.kind"], name="slow"
    )
    fast_lane = DeliveryWorker(
        engine=engine, handlers={KIND: fast}, clock=clock, kinds=[KIND], name="fast"
    )
    add(engine, "slow-1", "incident:1", clock, kind="slow.kind")
    add(engine, "fast-1", "chat:1", clock)
    slow_lane.start(interval=0.05)
    fast_lane.start(interval=0.05)
    try:
        assert slow_started.wait(5)
        deadline = time.monotonic() + 5
        # delivered (and marked done: the handler returns before the row is) while the slow
        # lane is still waiting
        while (fast.keys() != ["fast-1"] or fast_lane.pending_count()) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.02)
        assert fast.keys() == ["fast-1"]
        assert slow_lane.pending_count() == 1 and fast_lane.pending_count() == 0
    finally:
        release.set()
        slow_lane.stop()
        fast_lane.stop()
    assert [r.status for r in rows(engine)] == ["done", "done"]


def test_stop_returns_soon_and_puts_back_the_rows_not_reached(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    migrate(engine)
    clock = FakeClock()
    entered, release = threading.Event(), threading.Event()
    delivered: list[str] = []

    def slow(attempt: Attempt) -> None:
        entered.set()
        release.wait(10)  # a receiver still answering when stop() comes
        delivered.append(attempt.idempotency_key)

    with session_scope(engine) as session:
        for n in range(5):
            enqueue(
                session,
                kind="slow",
                idempotency_key=f"r{n}",
                ordering_key=f"k{n}",
                payload={},
                now=clock(),
            )
    worker = DeliveryWorker(engine=engine, handlers={"slow": slow}, clock=clock)
    worker.start(interval=0.05)
    assert entered.wait(10)
    stopper = threading.Thread(target=worker.stop)
    started = time.monotonic()
    stopper.start()
    release.set()
    stopper.join(10)
    took = time.monotonic() - started
    assert not stopper.is_alive() and took < 1.0, f"stop took {took:.2f} s"
    assert delivered == ["r0"]  # the attempt under way finished; the batch's rest was left
    with Session(engine) as session:
        rest = [r for r in session.exec(select(OutboxRow)).all() if r.idempotency_key != "r0"]
    assert {(r.status, r.attempts, r.lease_until) for r in rest} == {("pending", 0, None)}
    # stopped, the worker is driven in the caller's thread again
    assert worker.run_once() == 4
    engine.dispose()


def test_pending_count_reads_without_the_write_lock(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    migrate(engine)
    clock = FakeClock()
    worker = DeliveryWorker(engine=engine, handlers={}, clock=clock)
    counted: list[int] = []
    with session_scope(engine) as session:
        enqueue(session, kind="x", idempotency_key="a", ordering_key="k", payload={}, now=clock())
    with session_scope(engine) as writer:
        # the ingest writer holds SQLite's write lock (and this process's writer turn)
        writer.execute(sa.update(OutboxRow).values(last_error="busy"))
        reader = threading.Thread(target=lambda: counted.append(worker.pending_count()))
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "pending_count waited for the writer"
    assert counted == [1]
    engine.dispose()
