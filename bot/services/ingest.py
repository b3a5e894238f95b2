"""Durable ingest: one writer commits many notifications per transaction (group commit)."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session

from bot.domain.alerts import Notification
from bot.metrics import Metrics
from bot.services.incidents import IncidentService, IngestOutcome
from storage.db import StorageUnavailable

__all__ = ["ANSWER_WITHIN_S", "IngestPipeline"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# a sender hears 503 after this long whatever the database does (a stall is not an error)
ANSWER_WITHIN_S = 8.0
# the database cannot be reached, stalled, or has no free connection: 503, the sender retries
_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


@dataclass
class _Job:
    # what to do in the writer's transaction, and what it is, for the log
    apply: Callable[[Session], Any]
    label: str
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    # whether what it writes can leave something for the delivery lanes to do
    delivers: bool = True
    # the caller stopped waiting (answered 503, or went away); set on the loop, read by the writer
    abandoned: bool = False
    # writes of one kind a batch applies in one call (see IngestPipeline.write_together)
    together: Callable[[Session, list[Any]], list[Any]] | None = None
    item: Any = None


def _settle(job: _Job, outcome: Any, error: BaseException | None) -> None:
    def apply() -> None:
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(outcome)

    job.loop.call_soon_threadsafe(apply)


def _apply_all(session: Session, batch: list[_Job]) -> list[Any]:
    """Apply a batch's jobs in order, each group of `together` jobs in one call at its first."""
    outcomes: list[Any] = [None] * len(batch)
    groups: dict[Any, list[int]] = {}
    for index, job in enumerate(batch):
        if job.together is not None:
            groups.setdefault(job.together, []).append(index)
    done: set[Any] = set()
    for index, job in enumerate(batch):
        together = job.together
        if together is None:
            outcomes[index] = job.apply(session)
        elif together not in done:
            done.add(together)
            members = groups[together]
            results = together(session, [batch[i].item for i in members])
            for member, result in zip(members, results, strict=True):
                outcomes[member] = result
    return outcomes


class IngestPipeline:
    """Queue writes from the event loop; a writer thread applies and commits them in batches.

    A write is a notification (alerts) or any function of the writer's session (`write`: runs
    and metrics of the watched history). A caller's future resolves only after the commit that
    holds its write, so a 2xx answer always means the data is on disk; one fsync covers every
    request in the batch, and SQLite has one writer whatever arrives. A
    caller waits at most `answer_within` seconds: a stalled database is StorageUnavailable
    (503) in bounded time, and the writer skips work whose caller has already been answered.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        service: IncidentService,
        metrics: Metrics,
        on_commit: Callable[[], None] = lambda: None,
        max_batch: int = 256,
        answer_within: float = ANSWER_WITHIN_S,
    ) -> None:
        self._engine = engine
        self._service = service
        self._metrics = metrics
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._answer_within = answer_within
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    async def submit(self, notification: Notification) -> IngestOutcome:
        """Apply a notification durably; raise StorageUnavailable when the database is down."""
        service = self._service
        result: IngestOutcome = await self.write(
            lambda session: service.ingest(session, notification),
            label=f"notification from {notification.source}",
        )
        return result

    async def write(self, apply: Callable[[Session], T], *, label: str, delivers: bool = True) -> T:
        """Run `apply` in the writer's transaction and return its result once it is committed.

        `apply` may run twice (alone, after its batch failed), each time in a new session, so it
        must only write through the session it is given. `delivers=False` says it queues nothing
        to deliver, so its commit need not wake the delivery lanes. StorageUnavailable when the
        database is down or does not answer in time.
        """
        if self._thread is None or not self._thread.is_alive():
            raise StorageUnavailable("ingest writer is not running")
        loop = asyncio.get_running_loop()
        job = _Job(apply, label, loop.create_future(), loop, delivers=delivers)
        result: T = await self._wait(job)
        return result

    async def write_together(
        self,
        item: T,
        apply: Callable[[Session, list[T]], list[Any]],
        *,
        label: str,
        delivers: bool = True,
    ) -> Any:
        """Like `write`, for writes that are cheaper applied together: the writer hands every
        `item` of its batch that came with this same `apply` to one call, which returns a result
        per item in order (one claim and one upsert for all the runs of a batch, not one each).
        Alone (after its batch failed) an item is applied as `apply(session, [item])`.
        """
        if self._thread is None or not self._thread.is_alive():
            raise StorageUnavailable("ingest writer is not running")
        loop = asyncio.get_running_loop()
        job = _Job(
            lambda session: apply(session, [item])[0],
            label,
            loop.create_future(),
            loop,
            delivers=delivers,
            together=apply,
            item=item,
        )
        return await self._wait(job)

    async def _wait(self, job: _Job) -> Any:
        self._queue.put(job)
        try:
            return await asyncio.wait_for(job.future, self._answer_within)
        except TimeoutError as exc:
            raise StorageUnavailable(
                f"the database did not answer within {self._answer_within:g} s"
            ) from exc
        finally:
            if job.future.cancelled():
                job.abandoned = True

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish queued work, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._thread = None

    def _take_batch(self) -> tuple[list[_Job], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        stop = False
        while len(batch) < self._max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            batch.append(job)
        return batch, stop

    def _run(self) -> None:
        while True:
            batch, stop = self._take_batch()
            # a caller answered 503 will send again; applying its stale copy now only adds delay
            batch = [job for job in batch if not job.abandoned]
            if batch:
                self._apply(batch)
            if stop:
                return

    def _apply(self, batch: list[_Job]) -> None:
        """Apply a batch in one transaction; if one notification fails, redo them one by one."""
        try:
            # no autoflush: incident changes reach the database once, at the batch commit
            with Session(self._engine, expire_on_commit=False, autoflush=False) as session:
                outcomes = _apply_all(session, batch)
                session.commit()
        except _UNAVAILABLE as exc:
            self._unavailable(batch, exc)
            return
        except Exception:
            if len(batch) == 1:
                self._apply_alone(batch[0])
            else:
                # no savepoint per notification on the hot path: the rare failure pays instead
                for job in batch:
                    self._apply_alone(job)
            self._wake(batch)
            return
        self._metrics.ingest_batch.observe(len(batch))
        self._wake(batch)
        for job, outcome in zip(batch, outcomes, strict=True):
            _settle(job, outcome, None)

    def _wake(self, batch: list[_Job]) -> None:
        # runs and metrics queue nothing: their commits leave the delivery lanes asleep
        if any(job.delivers for job in batch):
            self._on_commit()

    def _apply_alone(self, job: _Job) -> None:
        try:
            # no autoflush: incident changes reach the database once, at the batch commit
            with Session(self._engine, expire_on_commit=False, autoflush=False) as session:
                outcome = job.apply(session)
                session.commit()
        except _UNAVAILABLE as exc:
            self._unavailable([job], exc)
        except Exception as exc:
            log.exception("%s could not be applied", job.label)
            _settle(job, None, exc)
        else:
            self._metrics.ingest_batch.observe(1)
            _settle(job, outcome, None)

    def _unavailable(self, jobs: list[_Job], exc: Exception) -> None:
        log.error("ingest transaction failed; answering 503: %s", exc)
        orig = getattr(exc, "orig", None)
        for job in jobs:
            _settle(job, None, StorageUnavailable(str(orig) if orig else str(exc)))
