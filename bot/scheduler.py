"""Periodic jobs; their state lives in the database, so a restart loses no deadline."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.db import session_scope

__all__ = ["Job", "build_scheduler", "run_due_jobs"]

log = logging.getLogger(__name__)

# a job does what is due in the session it is given and returns how many things it moved
Job = Callable[[Session], int]


def run_due_jobs(engine: Engine, jobs: Sequence[Job], after: Callable[[], None]) -> int:
    """Run every due job now, each in its own transaction; return how many things moved."""
    done = 0
    for job in jobs:
        with session_scope(engine) as session:
            done += job(session)
    if done:
        after()
    return done


def build_scheduler(
    engine: Engine, jobs: Sequence[Job], after: Callable[[], None], interval_s: float = 15.0
) -> BackgroundScheduler:
    """Return a scheduler that checks persisted deadlines every `interval_s` seconds."""
    scheduler = BackgroundScheduler(timezone="UTC")

    def tick() -> None:
        try:
            run_due_jobs(engine, jobs, after)
        except Exception:
            log.exception("due-deadline check failed; it runs again at the next tick")

    scheduler.add_job(
        tick, "interval", seconds=interval_s, id="deadlines", max_instances=1, coalesce=True
    )
    return scheduler
