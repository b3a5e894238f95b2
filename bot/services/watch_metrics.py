"""OTLP metrics in: an export's points counted into the watched history, durably, once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot.config import Policy
from bot.domain.watch.history import ChangeSource, minute_of
from bot.domain.watch.otlp import Batch, Measure, MetricNames, Point, WatchMapping, count, read
from bot.services.ingest import IngestPipeline
from storage import watch, watch_streams

__all__ = ["MetricIntake", "MetricOutcome", "watch_mapping"]


@dataclass(frozen=True, slots=True)
class MetricOutcome:
    """What became of an export's points: kept, of metrics not watched, rejected (and why)."""

    kept: int
    unknown: int
    rejected: int
    message: str


def watch_mapping(policy: Policy) -> WatchMapping:
    """Return what the policy says about telemetry, as the plain values the domain reads."""
    workflows: dict[str, str] = {}
    for name, workflow in policy.workflows.items():
        for alias in workflow.watch.alias:
            workflows.setdefault(alias, name)
    workflows.update({name: name for name in policy.workflows})
    metrics = {
        name: MetricNames(
            cost=workflow.watch.metrics.cost,
            confidence=workflow.watch.metrics.confidence,
            refusals=workflow.watch.metrics.refusals,
            handoffs=workflow.watch.metrics.handoffs,
        )
        for name, workflow in policy.workflows.items()
    }
    return WatchMapping(
        workflow_attribute=policy.watch.workflow_attribute,
        workflows=workflows,
        metrics=metrics,
        # a delta point is remembered (so a retried export adds nothing) for run_ids
        keep=policy.watch.retention.ids,
        history=policy.watch.retention.minutes,
    )


def apply(session: Session, measures: Sequence[Measure], *, now: datetime) -> Batch:
    """Count measures into the history in one transaction: lock streams, claim, add, save."""
    states = watch_streams.lock(
        session, {m.stream for m in measures if m.cumulative}, minute=minute_of(now)
    )
    claims = {
        key: m.point.time_ns // 60_000_000_000 for m in measures if (key := m.claim) is not None
    }
    batch = count(measures, states, watch.claim(session, claims))
    watch.add_tallies(session, batch.tallies, source=ChangeSource.OTLP)
    watch_streams.save(session, batch.states)
    return batch


class MetricIntake:
    """Take the points of an OTLP export into the watched history; answer once committed."""

    def __init__(
        self, *, pipeline: IngestPipeline, policy: Policy, clock: Callable[[], datetime]
    ) -> None:
        self._pipeline = pipeline
        self._mapping = watch_mapping(policy)
        self._clock = clock

    async def record(self, points: Sequence[Point]) -> MetricOutcome:
        """Count the points; StorageUnavailable when the database cannot take them."""
        now = self._clock()
        reading = read(points, self._mapping, now)
        measures = reading.measures
        if measures:
            await self._pipeline.write(
                lambda session: apply(session, measures, now=now),
                label=f"{len(measures)} OTLP data points",
                delivers=False,
            )
        return MetricOutcome(
            kept=len(measures),
            unknown=reading.unknown,
            rejected=len(reading.refused),
            message=reading.message,
        )
