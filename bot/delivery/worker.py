"""Deliver outbox rows: claim with leases, keep per-key order, retry with backoff and jitter.

A handler raises the errors defined with the ports (`bot.integrations.ports`): RetryLater is
retried after backoff or Retry-After, GiveUp marks the row failed, NotYet defers the row to the
time it names without counting an attempt; anything else is transient.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.integrations.ports import GiveUp, NotYet, PostedMessage, RetryLater
from storage.db import readonly, session_scope
from storage.models import OutboxRow

__all__ = ["Attempt", "DeliveryWorker", "Handler", "backoff"]

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(minutes=10)
# about ten hours of retrying at the capped backoff: long enough for any outage we expect,
# short enough that a broken row does not hold its incident's later rows for ever
MAX_ATTEMPTS = 70


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
    # what this attempt has posted so far (`post_once(..., sent=attempt.sent)`): an attempt
    # deferred after part of it went out counts, so the next one looks before posting again
    sent: list[PostedMessage] = field(default_factory=list, compare=False, repr=False)


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

    With `kinds`, the worker is one lane: it claims only rows of those kinds, so a receiver that
    answers slowly (Jira at its timeout, a pager retrying) never holds up another lane's rows.
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
        kinds: Collection[str] | None = None,
        name: str = "delivery",
    ) -> None:
        self._engine = engine
        self._handlers = handlers
        self._kinds = sorted(kinds) if kinds is not None else None
        self.name = name
        self._clock = clock
        self._lease = lease
        self._batch = batch
        self._rng = rng or random.Random()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, now: datetime) -> list[Attempt]:
        """Lease the due rows that head their ordering key."""
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
        query = sa.select(o.c.id).where(due, ~earlier_open)
        if self._kinds is not None:
            query = query.where(o.c.kind.in_(self._kinds))
        query = query.order_by(o.c.id).limit(self._batch).with_for_update(skip_locked=True, of=o)
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
        except NotYet as exc:
            log.debug(
                "delivery of %s (%s) deferred: %s", attempt.idempotency_key, attempt.kind, exc
            )
            self.release(attempt, at=exc.at, counted=bool(attempt.sent))
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

    def release(self, attempt: Attempt, *, at: datetime, counted: bool = False) -> None:
        """Put a claimed row back, due at `at`; uncounted, it is as if it had not been claimed."""
        values: dict[str, Any] = {
            "status": "pending",
            "next_attempt_at": max(at, self._clock()),
            "lease_until": None,
        }
        if not counted:
            values["attempts"] = attempt.number - 1
        self._finish(attempt, **values)

    def run_once(self) -> int:
        """Deliver everything due now, in order; return how many attempts ran.

        Returns soon after stop() when the background thread runs it: the rows it claimed and
        did not reach are put back at once, uncounted.
        """
        return self._drain(self._stop)

    def _drain(self, stop: threading.Event) -> int:
        total = 0
        while not stop.is_set():
            attempts = self.claim(self._clock())
            if not attempts:
                return total
            for n, attempt in enumerate(attempts):
                if stop.is_set():
                    for left in attempts[n:]:
                        self.release(left, at=self._clock())
                    return total
                self.deliver(attempt)
                total += 1
        return total

    def poke(self) -> None:
        """Wake the worker: new rows were committed."""
        self._wake.set()

    def start(self, interval: float = 0.5, min_gap: float = 0.05) -> None:
        """Run in a background thread until stop().

        Pokes wake the worker early, but at most every `min_gap` seconds: during a storm every
        ingest commit pokes, and looking for due rows hundreds of times a second would take the
        interpreter from ingest for nothing.
        """

        stop = self._stop

        def loop() -> None:
            while not stop.is_set():
                try:
                    self._drain(stop)
                except Exception:
                    log.exception("delivery loop failed; retrying")
                stop.wait(min_gap)
                self._wake.wait(max(interval - min_gap, 0.0))
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread after the current attempt.

        Afterwards run_once delivers in the caller's thread again (tests and tools drive it).
        """
        stop, self._stop = self._stop, threading.Event()
        stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def pending_count(self) -> int:
        """Return this lane's rows not yet delivered (for /metrics)."""
        query = (
            sa.select(sa.func.count())
            .where(sa.column("status").in_(("pending", "in_flight")))
            .select_from(OutboxRow)
        )
        if self._kinds is not None:
            query = query.where(sa.column("kind").in_(self._kinds))
        # read-only: /metrics never waits behind the ingest writer for SQLite's write lock
        with Session(readonly(self._engine)) as session:
            return int(session.execute(query).scalar_one())
