"""Deliver outbox rows: claim with leases, keep per-key order, retry with backoff and jitter.

Errors a handler may raise:
    RetryLater(reason, retry_after=None)  -- transient; retried after backoff or Retry-After
    GiveUp(reason)                        -- permanent; the row is marked failed and logged
Anything else is treated as transient.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage.db import session_scope
from storage.models import OutboxRow

__all__ = ["Attempt", "DeliveryWorker", "GiveUp", "Handler", "RetryLater", "backoff"]

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(minutes=10)
# about ten hours of retrying at the capped backoff: long enough for any outage we expect,
# short enough that a broken row does not hold its incident's later rows for ever
MAX_ATTEMPTS = 70


class RetryLater(Exception):
    """A transient failure; `retry_after` (seconds) comes from the receiver when it says."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class GiveUp(Exception):
    """A failure retrying cannot help."""


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt of a row, as a handler sees it."""

    id: int
    kind: str
    idempotency_key: str
    incident_id: int | None
    payload: Mapping[str, Any]
    number: int
    uncertain: bool  # an earlier attempt may have reached the receiver before a crash
    claimed_at: datetime | None = None


class Handler(Protocol):
    def __call__(self, attempt: Attempt) -> dict[str, Any] | None: ...


def backoff(attempt: int, rng: random.Random, retry_after: float | None = None) -> timedelta:
    """Return the wait before the next attempt: Retry-After when given, else equal jitter."""
    if retry_after is not None:
        return timedelta(seconds=max(retry_after, 0.0))
    ceiling = min(MAX_BACKOFF.total_seconds(), 0.5 * 2 ** min(attempt, 20))
    return timedelta(seconds=rng.uniform(ceiling / 2, ceiling))


class DeliveryWorker:
    """Claims due rows and hands them to the handler registered for their kind.

    `lanes` name sets of kinds that get a thread of their own, so a slow receiver (Jira timing
    out) holds back only its own rows; every other kind shares the first thread.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        handlers: Mapping[str, Handler],
        clock: Callable[[], datetime],
        lease: timedelta = timedelta(seconds=30),
        batch: int = 10,
        rng: random.Random | None = None,
        lanes: Sequence[Collection[str]] = (),
    ) -> None:
        self._engine = engine
        self._handlers = handlers
        self._clock = clock
        self._lease = lease
        self._batch = batch
        self._rng = rng or random.Random()
        laned = frozenset(kind for lane in lanes for kind in lane)
        # None: the shared lane, every kind not given a lane of its own
        self._lanes: list[tuple[frozenset[str] | None, frozenset[str]]] = [
            (None, laned),
            *((frozenset(lane), frozenset()) for lane in lanes),
        ]
        self._wakes = [threading.Event() for _ in self._lanes]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def claim(
        self,
        now: datetime,
        kinds: frozenset[str] | None = None,
        excluded: frozenset[str] = frozenset(),
    ) -> list[Attempt]:
        """Lease the due rows that head their ordering key (of `kinds`, or not `excluded`)."""
        table: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
        o = table.alias("o")
        p = table.alias("p")
        earlier_open = (
            sa.select(sa.literal(1))
            .where(
                p.c.ordering_key == o.c.ordering_key,
                p.c.id < o.c.id,
                p.c.status.in_(("pending", "in_flight")),
            )
            .exists()
        )
        due = sa.or_(
            sa.and_(o.c.status == "pending", o.c.next_attempt_at <= now),
            sa.and_(o.c.status == "in_flight", o.c.lease_until < now),
        )
        lane = o.c.kind.in_(kinds) if kinds is not None else ~o.c.kind.in_(excluded)
        query = (
            sa.select(o.c.id)
            .where(due, lane, ~earlier_open)
            .order_by(o.c.id)
            .limit(self._batch)
            .with_for_update(skip_locked=True, of=o)
        )
        attempts: list[Attempt] = []
        with session_scope(self._engine) as session:
            ids = [r[0] for r in session.execute(query)]
            if not ids:
                return []
            rows = session.exec(select(OutboxRow).where(sa.column("id").in_(ids))).all()
            for row in sorted(rows, key=lambda r: r.id or 0):
                # after a crash, a timeout or a 5xx the receiver may already have acted:
                # the handler looks before it acts again
                uncertain = row.status == "in_flight" or row.attempts > 0
                row.status = "in_flight"
                row.attempts += 1
                row.lease_until = now + self._lease
                session.add(row)
                attempts.append(
                    Attempt(
                        id=row.id or 0,
                        kind=row.kind,
                        idempotency_key=row.idempotency_key,
                        incident_id=row.incident_id,
                        payload=dict(row.payload),
                        number=row.attempts,
                        uncertain=uncertain,
                        claimed_at=now,
                    )
                )
        return attempts

    def _mine(self, attempt: Attempt) -> Any:
        # an attempt only touches its row while its lease is the current one
        return sa.and_(
            sa.column("id") == attempt.id,
            sa.column("status") == "in_flight",
            sa.column("attempts") == attempt.number,
        )

    def _finish(self, attempt: Attempt, **values: Any) -> None:
        with session_scope(self._engine) as session:
            session.execute(sa.update(OutboxRow).where(self._mine(attempt)).values(**values))

    def _renew(self, attempt: Attempt) -> bool:
        """Extend the lease just before delivering; False if another worker took the row over."""
        with session_scope(self._engine) as session:
            result = session.execute(
                sa.update(OutboxRow)
                .where(self._mine(attempt))
                .values(lease_until=self._clock() + self._lease)
            )
            return bool(getattr(result, "rowcount", 0))

    def deliver(self, attempt: Attempt) -> None:
        """Run one attempt and record its outcome."""
        handler = self._handlers.get(attempt.kind)
        # a fresh lease needs no renewal; one a slow batch has eaten into is renewed (and a row
        # another worker took over after expiry is left alone)
        fresh = (
            attempt.claimed_at is not None and self._clock() - attempt.claimed_at < self._lease / 3
        )
        if not fresh and not self._renew(attempt):
            return
        try:
            if handler is None:
                raise GiveUp(f"no handler for outbox kind {attempt.kind!r}")
            result = handler(attempt)
        except GiveUp as exc:
            log.error(
                "delivery of %s (%s) failed for good: %s",
                attempt.idempotency_key,
                attempt.kind,
                exc,
            )
            self._finish(attempt, status="failed", last_error=str(exc)[:2000], lease_until=None)
        except Exception as exc:
            if attempt.number >= MAX_ATTEMPTS:
                log.error(
                    "delivery of %s (%s) failed %d times; giving up: %s",
                    attempt.idempotency_key,
                    attempt.kind,
                    attempt.number,
                    exc,
                )
                self._finish(
                    attempt,
                    status="failed",
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    lease_until=None,
                )
                return
            retry_after = exc.retry_after if isinstance(exc, RetryLater) else None
            wait = backoff(attempt.number, self._rng, retry_after)
            log.warning(
                "delivery of %s (%s) attempt %d failed, retrying in %.1fs: %s",
                attempt.idempotency_key,
                attempt.kind,
                attempt.number,
                wait.total_seconds(),
                exc,
            )
            self._finish(
                attempt,
                status="pending",
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
                # Retry-After counts from the answer, not from when the call began
                next_attempt_at=self._clock() + wait,
                lease_until=None,
            )
        else:
            self._finish(
                attempt, status="done", delivered_at=self._clock(), result=result, lease_until=None
            )

    def _run_lane(self, index: int) -> int:
        kinds, excluded = self._lanes[index]
        total = 0
        while True:
            attempts = self.claim(self._clock(), kinds, excluded)
            if not attempts:
                return total
            for attempt in attempts:
                self.deliver(attempt)
            total += len(attempts)

    def run_once(self) -> int:
        """Deliver everything due now, lane after lane, in order; return how many attempts ran."""
        return sum(self._run_lane(i) for i in range(len(self._lanes)))

    def poke(self) -> None:
        """Wake the worker: new rows were committed."""
        for wake in self._wakes:
            wake.set()

    def start(self, interval: float = 0.5, min_gap: float = 0.05) -> None:
        """Run in background threads, one per lane, until stop().

        Pokes wake the worker early, but at most every `min_gap` seconds: during a storm every
        ingest commit pokes, and looking for due rows hundreds of times a second would take the
        interpreter from ingest for nothing.
        """

        def loop(index: int) -> None:
            wake = self._wakes[index]
            while not self._stop.is_set():
                try:
                    self._run_lane(index)
                except Exception:
                    log.exception("delivery loop failed; retrying")
                self._stop.wait(min_gap)
                wake.wait(max(interval - min_gap, 0.0))
                wake.clear()

        self._threads = [
            threading.Thread(
                target=loop, args=(i,), name=f"delivery-{i}" if i else "delivery", daemon=True
            )
            for i in range(len(self._lanes))
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the background threads after their current attempts."""
        self._stop.set()
        self.poke()
        for thread in self._threads:
            thread.join(timeout=10)

    def pending_count(self) -> int:
        """Return rows not yet delivered (for /metrics)."""
        with Session(self._engine) as session:
            return int(
                session.execute(
                    sa.select(sa.func.count())
                    .where(sa.column("status").in_(("pending", "in_flight")))
                    .select_from(OutboxRow)
                ).scalar_one()
            )
