"""Runs in: decide which can be kept, count the new ones durably; prune what is past retention."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.config import Policy
from bot.domain.watch.history import Run, admission_problem
from bot.services.ingest import IngestPipeline
from storage.watch import RecordedRuns, prune, record_batches

__all__ = ["HistoryPruner", "RunIntake"]


class RunIntake:
    """Keep the runs a workflow reports (the `/webhooks/runs` route's service)."""

    def __init__(
        self, *, pipeline: IngestPipeline, policy: Policy, clock: Callable[[], datetime]
    ) -> None:
        self._pipeline = pipeline
        self._policy = policy
        self._clock = clock

    def admit(self, runs: Sequence[Run]) -> list[str | None]:
        """Say, per run, why it cannot be kept (too old for the history, from the future)."""
        now = self._clock()
        retention = self._policy.watch.retention
        return [admission_problem(run.at, now, retention.ids, retention.minutes) for run in runs]

    async def record(self, runs: Sequence[Run]) -> RecordedRuns:
        """Count the runs not seen before, an alias under its workflow's name; return once
        they are committed."""
        names: dict[str, str] = {}
        named = []
        for run in runs:
            workflow = names.get(run.workflow)
            if workflow is None:
                workflow = names[run.workflow] = self._policy.watched_workflow(run.workflow)
            named.append(run if workflow == run.workflow else replace(run, workflow=workflow))
        # the runs of every request in the writer's batch share one claim and one upsert
        result: RecordedRuns = await self._pipeline.write_together(
            named, record_batches, label=f"{len(named)} runs", delivers=False
        )
        return result


class HistoryPruner:
    """The scheduler's job that deletes history older than the retention, every few minutes."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        every: timedelta = timedelta(minutes=10),
    ) -> None:
        self._retention = policy.watch.retention
        self._clock = clock
        self._every = every
        self._last: datetime | None = None

    def __call__(self, session: Session) -> int:
        """Prune when the last prune is `every` ago (or this process has not pruned yet)."""
        now = self._clock()
        if self._last is not None and now - self._last < self._every:
            return 0
        self._last = now
        prune(session, now=now, retention=self._retention)
        # nothing to deliver came of it: the scheduler need not wake the lanes
        return 0
