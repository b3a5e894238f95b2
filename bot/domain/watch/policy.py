"""The policy's `watch:` settings: how telemetry maps to workflows, and how long it is kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from bot.domain.fields import Duration, FrozenModel

__all__ = ["Retention", "WatchMetrics", "WatchPolicy", "WorkflowWatch"]


def _listed(value: object) -> object:
    return [value] if isinstance(value, str) else value


class WatchMetrics(FrozenModel):
    """A workflow's own OpenTelemetry metrics, by name, for what GenAI conventions do not cover.

    `cost` (a sum or histogram in US dollars), `confidence` (a histogram or gauge of 0..1),
    `refusals` and `handoffs` (sums: how many calls were refused or handed to a person).
    """

    cost: str | None = None
    confidence: str | None = None
    refusals: str | None = None
    handoffs: str | None = None


class WorkflowWatch(FrozenModel):
    """How the bot recognises one workflow's telemetry."""

    # values of the workflow attribute (default `service.name`) that mean this workflow
    alias: Annotated[list[str], BeforeValidator(_listed)] = []
    metrics: WatchMetrics = WatchMetrics()
    # a pinned cost-per-run baseline in US dollars, instead of the 7-day median
    cost_per_run_usd: float | None = Field(default=None, ge=0)


class Retention(FrozenModel):
    """How long the watched history is kept."""

    minutes: Duration = timedelta(days=35)
    hours: Duration = timedelta(days=400)
    # the latest few latencies of each minute (for "N slow runs in a row"); minute totals stay
    recent_latencies: Duration = timedelta(days=2)
    # how long a run_id (and an OTLP delta point) is remembered, by the minute it ran in: a
    # repeat inside it changes nothing, and anything older is refused rather than counted
    # twice. Unset: as long as the minutes. It costs about 40 (SQLite) to 90 (PostgreSQL)
    # bytes per run on disk.
    run_ids: Duration | None = None

    @model_validator(mode="after")
    def _ids_within_minutes(self) -> Retention:
        if self.run_ids is not None and self.run_ids > self.minutes:
            raise ValueError("run_ids cannot be longer than minutes (the minute history)")
        return self

    @property
    def ids(self) -> timedelta:
        """How long a run_id is remembered."""
        return self.minutes if self.run_ids is None else self.run_ids


class WatchPolicy(FrozenModel):
    """The top-level `watch:` section."""

    # the resource (or data point) attribute that names the workflow of OTLP data
    workflow_attribute: str = "service.name"
    retention: Retention = Retention()
