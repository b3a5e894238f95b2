"""The weekly review digest (§13), pure: weeks in the team's time zone and every figure.

The agenda is the runbook's weekly review — cost against baseline per workflow, error rates
across workflows, the P3 incidents since last week, whether every production workflow ran —
plus incidents by severity with MTTA and MTTR from the milestone timestamps, open and overdue
incidents, and the handoff figures: volume, tier mix, time to claim and to decide (p50/p90),
SLA breaches and approve-without-edit rates by confidence band. Where no alert or handoff
carried a figure, the digest says "no data" instead of guessing.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "BANDS",
    "AlertFact",
    "BandRate",
    "Digest",
    "HandoffFact",
    "IncidentFact",
    "SeverityFigures",
    "Week",
    "WorkflowFact",
    "WorkflowFigures",
    "build_digest",
    "percentile",
]

SEVERITIES = ("P1", "P2", "P3")
# a P3 open this long is overdue; P1/P2 are overdue once their root-cause deadline has passed
P3_OVERDUE_AFTER = timedelta(days=7)
# confidence bands for the approve-without-edit rate: [low, high)
BANDS: tuple[tuple[float, float], ...] = (
    (0.0, 0.5),
    (0.5, 0.8),
    (0.8, 0.9),
    (0.9, 0.95),
    (0.95, 1.0001),
)
MIN_SAMPLE = 10  # fewer decisions than this in a band make no recommendation
_WEEK = re.compile(r"^(?P<year>\d{4})-W(?P<week>\d{2})$")


@dataclass(frozen=True, order=True)
class Week:
    """An ISO week; its bounds are local midnights in the team's time zone."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Week:
        """Read `2026-W47`."""
        match = _WEEK.match(text.strip())
        if match is None:
            raise ValueError(f"not an ISO week: {text!r} (write e.g. 2026-W47)")
        week = cls(int(match["year"]), int(match["week"]))
        week.monday()  # rejects week 54 and the like
        return week

    @classmethod
    def containing(cls, at: datetime, zone: ZoneInfo) -> Week:
        """Return the week the local date of `at` falls in."""
        year, number, _ = at.astimezone(zone).date().isocalendar()
        return cls(year, number)

    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """Return [start, end) in UTC: Monday 00:00 to the next Monday 00:00, local time.

        Local midnights, so a DST week is 167 or 169 hours long, as the team lived it.
        """
        start = datetime.combine(self.monday(), time(0), tzinfo=zone)
        end = datetime.combine(self.monday() + timedelta(days=7), time(0), tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def days(self, zone: ZoneInfo) -> list[tuple[date, datetime, datetime]]:
        """Return each local day of the week with its [start, end) in UTC."""
        out = []
        for i in range(7):
            day = self.monday() + timedelta(days=i)
            start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
            out.append((day, start, end))
        return out

    def previous(self) -> Week:
        year, number, _ = (self.monday() - timedelta(days=7)).isocalendar()
        return Week(year, number)

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"


@dataclass(frozen=True)
class IncidentFact:
    id: int
    title: str
    workflow: str
    severity: str
    state: str
    triggered_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    root_cause_at: datetime | None = None
    root_cause_deadline_at: datetime | None = None


@dataclass(frozen=True)
class AlertFact:
    """What one alert carried: a signal and the §7 cost, seen at `at`."""

    workflow: str
    at: datetime
    signal_kind: str | None = None
    value: float | None = None
    baseline: float | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class HandoffFact:
    workflow: str
    tier: str  # auto, review, human
    confidence: float | None
    received_at: datetime
    claimed_at: datetime | None = None
    decided_at: datetime | None = None
    decision: str | None = None  # approved, edited, rejected
    sla_breached: bool = False
    cost_usd: float | None = None


@dataclass(frozen=True)
class WorkflowFact:
    name: str
    category: str
    production: bool = True
    cost_baseline_usd_per_day: float | None = None
    last_activity_at: datetime | None = None


@dataclass(frozen=True)
class SeverityFigures:
    severity: str
    opened: int
    resolved: int
    mtta: timedelta | None
    mttr: timedelta | None


@dataclass(frozen=True)
class WorkflowFigures:
    name: str
    category: str
    production: bool
    cost_usd: float | None
    cost_baseline_usd: float | None
    error_rate_max: float | None
    error_rate_last: float | None
    incidents: int
    handoffs: int
    last_activity_at: datetime | None
    ran_this_week: bool

    @property
    def cost_ratio(self) -> float | None:
        if self.cost_usd is None or not self.cost_baseline_usd:
            return None
        return self.cost_usd / self.cost_baseline_usd


@dataclass(frozen=True)
class BandRate:
    low: float
    high: float
    decided: int
    approved_unchanged: int
    edited: int
    rejected: int

    @property
    def rate(self) -> float | None:
        return self.approved_unchanged / self.decided if self.decided else None

    @property
    def label(self) -> str:
        return f"{self.low:.2f}-{min(self.high, 1.0):.2f}"


@dataclass(frozen=True)
class Digest:
    week: Week
    start: datetime
    end: datetime
    generated_at: datetime
    severities: list[SeverityFigures]
    p3_incidents: list[IncidentFact]
    open_incidents: list[IncidentFact]
    overdue_incidents: list[IncidentFact]
    workflows: list[WorkflowFigures]
    handoffs_total: int
    tier_mix: dict[str, int]
    time_to_claim: tuple[timedelta | None, timedelta | None]  # p50, p90
    time_to_decide: tuple[timedelta | None, timedelta | None]
    sla_breaches: int
    bands: list[BandRate]
    recommendations: list[str]
    per_day: dict[str, list[tuple[date, int, int]]] = field(default_factory=dict)
    late: bool = False


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the q-th percentile (0 to 100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _mean(deltas: list[timedelta]) -> timedelta | None:
    if not deltas:
        return None
    return sum(deltas, timedelta()) / len(deltas)


def _pcts(deltas: list[timedelta]) -> tuple[timedelta | None, timedelta | None]:
    seconds = [d.total_seconds() for d in deltas]
    p50, p90 = percentile(seconds, 50), percentile(seconds, 90)
    return (
        timedelta(seconds=p50) if p50 is not None else None,
        timedelta(seconds=p90) if p90 is not None else None,
    )


def _within(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= at < end


def _overdue(i: IncidentFact, now: datetime) -> bool:
    if i.state == "resolved":
        return False
    if i.severity in ("P1", "P2"):
        deadline = i.root_cause_deadline_at
        return i.root_cause_at is None and deadline is not None and deadline <= now
    return now - i.triggered_at > P3_OVERDUE_AFTER


def _band(confidence: float) -> int | None:
    for index, (low, high) in enumerate(BANDS):
        if low <= confidence < high:
            return index
    return None


def _recommend(bands: list[BandRate], auto: float, review: float) -> list[str]:
    """Say plainly when a tier threshold looks miscalibrated from how reviewers decided."""
    out: list[str] = []
    for band in bands:
        rate = band.rate
        if rate is None or band.decided < MIN_SAMPLE:
            continue
        if band.high <= auto and band.low >= review and rate >= 0.95:
            out.append(
                f"Reviewers approved {rate:.0%} of {band.decided} handoffs at confidence "
                f"{band.label} unchanged: the auto threshold ({auto:.2f}) could come down to "
                f"{band.low:.2f}."
            )
        if band.high <= review and rate >= 0.9:
            out.append(
                f"{rate:.0%} of {band.decided} human-tier handoffs at confidence {band.label} "
                f"were approved unchanged: the review threshold ({review:.2f}) could come down "
                f"to {band.low:.2f}, letting agents proceed there."
            )
        if band.low >= review and rate < 0.7:
            out.append(
                f"Only {rate:.0%} of {band.decided} handoffs at confidence {band.label} were "
                f"approved unchanged: the {'auto' if band.low >= auto else 'review'} tier is "
                f"too trusting there; raise the threshold above {min(band.high, 1.0):.2f}."
            )
    return out


def build_digest(
    *,
    week: Week,
    zone: ZoneInfo,
    now: datetime,
    incidents: Iterable[IncidentFact],
    alerts: Iterable[AlertFact],
    handoffs: Iterable[HandoffFact],
    workflows: Iterable[WorkflowFact],
    auto_threshold: float,
    review_threshold: float,
    late: bool = False,
) -> Digest:
    """Compute every figure of the week; `incidents` must include every still-open one."""
    start, end = week.bounds(zone)
    cutoff = min(end, now)
    incidents = list(incidents)
    alerts = [a for a in alerts if _within(a.at, start, end)]
    handoffs = [h for h in handoffs if _within(h.received_at, start, end)]

    severities = []
    for sev in SEVERITIES:
        of_sev = [i for i in incidents if i.severity == sev]
        opened = [i for i in of_sev if _within(i.triggered_at, start, end)]
        acked = [
            i.acknowledged_at - i.triggered_at
            for i in opened
            if i.acknowledged_at is not None and i.acknowledged_at < end
        ]
        resolved = [i for i in of_sev if _within(i.resolved_at, start, end)]
        repair = [i.resolved_at - i.triggered_at for i in resolved if i.resolved_at is not None]
        severities.append(
            SeverityFigures(sev, len(opened), len(resolved), _mean(acked), _mean(repair))
        )

    p3 = sorted(
        (i for i in incidents if i.severity == "P3" and _within(i.triggered_at, start, end)),
        key=lambda i: i.triggered_at,
    )
    open_now = sorted(
        (i for i in incidents if i.state != "resolved" and i.triggered_at < end),
        key=lambda i: (i.severity, i.triggered_at),
    )
    overdue = [i for i in open_now if _overdue(i, cutoff)]

    cost: dict[str, float] = defaultdict(float)
    has_cost: set[str] = set()
    errors: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for a in alerts:
        if a.cost_usd is not None:
            cost[a.workflow] += a.cost_usd
            has_cost.add(a.workflow)
        if a.signal_kind == "error_rate" and a.value is not None:
            errors[a.workflow].append((a.at, a.value))
    for h in handoffs:
        if h.cost_usd is not None:
            cost[h.workflow] += h.cost_usd
            has_cost.add(h.workflow)
    incidents_by_wf: dict[str, int] = defaultdict(int)
    for i in incidents:
        if _within(i.triggered_at, start, end):
            incidents_by_wf[i.workflow] += 1
    handoffs_by_wf: dict[str, int] = defaultdict(int)
    for h in handoffs:
        handoffs_by_wf[h.workflow] += 1
    days = (cutoff - start).total_seconds() / 86400 if cutoff > start else 0.0
    figures = []
    for wf in sorted(workflows, key=lambda w: w.name):
        errs = sorted(errors.get(wf.name, []))
        baseline = (
            wf.cost_baseline_usd_per_day * days
            if wf.cost_baseline_usd_per_day is not None and days
            else None
        )
        figures.append(
            WorkflowFigures(
                name=wf.name,
                category=wf.category,
                production=wf.production,
                cost_usd=round(cost[wf.name], 4) if wf.name in has_cost else None,
                cost_baseline_usd=round(baseline, 4) if baseline is not None else None,
                error_rate_max=max(v for _, v in errs) if errs else None,
                error_rate_last=errs[-1][1] if errs else None,
                incidents=incidents_by_wf.get(wf.name, 0),
                handoffs=handoffs_by_wf.get(wf.name, 0),
                last_activity_at=wf.last_activity_at,
                ran_this_week=_within(wf.last_activity_at, start, end),
            )
        )

    tiers = {"auto": 0, "review": 0, "human": 0}
    for h in handoffs:
        tiers[h.tier] = tiers.get(h.tier, 0) + 1
    to_claim = [h.claimed_at - h.received_at for h in handoffs if h.claimed_at is not None]
    to_decide = [h.decided_at - h.received_at for h in handoffs if h.decided_at is not None]
    counts = [[0, 0, 0] for _ in BANDS]
    for h in handoffs:
        if h.decision is None or h.confidence is None:
            continue
        index = _band(h.confidence)
        if index is None:
            continue
        slot = {"approved": 0, "edited": 1, "rejected": 2}.get(h.decision)
        if slot is not None:
            counts[index][slot] += 1
    bands = [
        BandRate(low, high, sum(c), c[0], c[1], c[2])
        for (low, high), c in zip(BANDS, counts, strict=True)
    ]

    per_day: dict[str, list[tuple[date, int, int]]] = {}
    for name in sorted({*incidents_by_wf, *handoffs_by_wf}):
        rows = []
        for day, day_start, day_end in week.days(zone):
            n_inc = sum(
                1
                for i in incidents
                if i.workflow == name and _within(i.triggered_at, day_start, day_end)
            )
            n_ho = sum(
                1
                for h in handoffs
                if h.workflow == name and _within(h.received_at, day_start, day_end)
            )
            rows.append((day, n_inc, n_ho))
        per_day[name] = rows

    return Digest(
        week=week,
        start=start,
        end=end,
        generated_at=now,
        severities=severities,
        p3_incidents=p3,
        open_incidents=open_now,
        overdue_incidents=overdue,
        workflows=figures,
        handoffs_total=len(handoffs),
        tier_mix=tiers,
        time_to_claim=_pcts(to_claim),
        time_to_decide=_pcts(to_decide),
        sla_breaches=sum(1 for h in handoffs if h.sla_breached),
        bands=bands,
        recommendations=_recommend(bands, auto_threshold, review_threshold),
        per_day=per_day,
        late=late,
    )
