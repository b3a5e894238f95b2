"""Periodic jobs; their state lives in the database, so a restart loses no deadline."""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.services.incidents import IncidentService
from storage.db import session_scope

__all__ = ["build_scheduler", "run_due_jobs"]

log = logging.getLogger(__name__)


def run_due_jobs(engine: Engine, service: IncidentService, after: Callable[[], None]) -> int:
    """Run every due severity review and root-cause deadline now; return how many incidents moved."""
    done = 0
    jobs: list[Callable[[Session], int]] = [service.review_due, service.escalate_due]
    for job in jobs:
        with session_scope(engine) as session:
            done += job(session)
    if done:
        after()
    return done


def build_scheduler(
    engine: Engine, service: IncidentService, after: Callable[[], None], interval_s: float = 15.0
) -> BackgroundScheduler:
    """Return a scheduler that checks persisted deadlines every `interval_s` seconds."""
    scheduler = BackgroundScheduler(timezone="UTC")

    def tick() -> None:
        try:
            run_due_jobs(engine, service, after)
        except Exception:
            log.exception("due-deadline check failed; it runs again at the next tick")

    scheduler.add_job(
        tick, "interval", seconds=interval_s, id="deadlines", max_instances=1, coalesce=True
    )
    return scheduler
