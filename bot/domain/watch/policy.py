"""The policy's `watch:` settings: how telemetry maps to workflows, and how long it is kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from bot.domain.fields import Duration, FrozenModel
from bot.domain.severity import parse_duration

__all__ = ["Retention", "WatchMetrics", "WatchPolicy", "WorkflowWatch"]


def _listed(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _expect_every(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30m', or 'off'")
    if isinstance(value, str):
        if value.strip().lower() == "off":
            return "off"
        try:
            value = parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{exc}, or 'off'") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        value = timedelta(seconds=value)
    if isinstance(value, timedelta) and value <= timedelta(0):
        raise ValueError("must be longer than 0; write 'off' for no silence rule")
    return value


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
    # the longest business time without a run before it is silence (P2); "off": no silence
    # rule at all; unset: only "zero runs over a business day"
    expect_every: Annotated[timedelta | Literal["off"] | None, BeforeValidator(_expect_every)] = (
        None
    )

    @property
    def silence_off(self) -> bool:
        """Whether the workflow has no silence rule (`expect_every: off`)."""
        return self.expect_every == "off"

    @property
    def expect_interval(self) -> timedelta | None:
        """The longest business time without a run (None: unset, or off)."""
        return self.expect_every if isinstance(self.expect_every, timedelta) else None


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
