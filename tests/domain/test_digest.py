"""Digest figures from a hand-checked week, with `now` and the week passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain.digest import (
    AlertFact,
    HandoffFact,
    IncidentFact,
    Week,
    WorkflowFact,
    build_digest,
    percentile,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
W47 = Week(2026, 47)  # Mon 16 Nov - Sun 22 Nov 2026, Berlin on CET (UTC+1)
MON = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)  # 10:00 Berlin
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # Monday 09:00 Berlin, digest time


def inc(i: int, sev: str, **kw: object) -> IncidentFact:
    base: dict[str, object] = dict(
        id=i,
        title=f"incident {i}",
        workflow="summarizer",
        severity=sev,
        state="resolved",
        triggered_at=MON,
    )
    base.update(kw)
    return IncidentFact(**base)  # type: ignore[arg-type]


def ho(confidence: float, decision: str | None, **kw: object) -> HandoffFact:
    base: dict[str, object] = dict(
        workflow="chatbot",
        tier="review",
        confidence=confidence,
        received_at=MON,
        decision=decision,
    )
    base.update(kw)
    return HandoffFact(**base)  # type: ignore[arg-type]


WORKFLOWS = [
    WorkflowFact("summarizer", "internal", True, 10.0, MON + timedelta(days=3)),
    WorkflowFact("chatbot", "customer-facing", True, None, MON - timedelta(days=9)),
    WorkflowFact("reports", "analytics", False, None, None),
]


def digest(incidents=(), alerts=(), handoffs=(), week=W47, zone=BERLIN, now=NOW):  # type: ignore[no-untyped-def]
    return build_digest(
        week=week,
        zone=zone,
        now=now,
        incidents=incidents,
        alerts=alerts,
        handoffs=handoffs,
        workflows=WORKFLOWS,
        auto_threshold=0.95,
        review_threshold=0.80,
    )


def test_week_bounds_are_local_midnights_and_dst_weeks_are_short_or_long() -> None:
    start, end = W47.bounds(BERLIN)
    assert start == datetime(2026, 11, 15, 23, 0, tzinfo=UTC)
    assert end - start == timedelta(days=7)
    spring = Week.containing(datetime(2026, 3, 29, 12, tzinfo=UTC), BERLIN)
    s, e = spring.bounds(BERLIN)
    assert str(spring) == "2026-W13" and e - s == timedelta(hours=167)
    fall = Week.containing(datetime(2026, 10, 25, 12, tzinfo=UTC), BERLIN)
    s, e = fall.bounds(BERLIN)
    assert str(fall) == "2026-W43" and e - s == timedelta(hours=169)
    ny = Week.containing(datetime(2026, 3, 8, 12, tzinfo=UTC), NEW_YORK)
    s, e = ny.bounds(NEW_YORK)
    assert e - s == timedelta(hours=167) and s == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    assert Week.parse("2026-W47") == W47 and W47.previous() == Week(2026, 46)
    assert Week(2027, 1).previous() == Week(2026, 53)
    with pytest.raises(ValueError):
        Week.parse("2026-47")
    with pytest.raises(ValueError):
        Week.parse("2025-W53")  # 2025 has 52 ISO weeks


def test_percentiles_interpolate() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 90) == pytest.approx(91.0)


def test_mtta_mttr_by_severity_from_milestones() -> None:
    incidents = [
        # P1: acked after 4 and 10 min (MTTA 7 min); resolved after 1 h and 3 h (MTTR 2 h)
        inc(
            1,
            "P1",
            acknowledged_at=MON + timedelta(minutes=4),
            resolved_at=MON + timedelta(hours=1),
        ),
        inc(
            2,
            "P1",
            acknowledged_at=MON + timedelta(minutes=10),
            resolved_at=MON + timedelta(hours=3),
        ),
        # P2 opened, acked after 30 min, still open: counts for MTTA, not MTTR
        inc(3, "P2", state="acknowledged", acknowledged_at=MON + timedelta(minutes=30)),
        # P3 from the week before, resolved this week: counts for MTTR only (8 days)
        inc(4, "P3", triggered_at=MON - timedelta(days=7), resolved_at=MON + timedelta(days=1)),
        # P3 opened this week, open: listed and (at 7 days) not yet overdue
        inc(5, "P3", state="triggered", triggered_at=MON + timedelta(days=2)),
    ]
    d = digest(incidents)
    p1, p2, p3 = d.severities
    assert (p1.opened, p1.resolved, p1.mtta, p1.mttr) == (
        2,
        2,
        timedelta(minutes=7),
        timedelta(hours=2),
    )
    assert (p2.opened, p2.resolved, p2.mtta, p2.mttr) == (1, 0, timedelta(minutes=30), None)
    assert (p3.opened, p3.resolved, p3.mtta, p3.mttr) == (1, 1, None, timedelta(days=8))
    assert [i.id for i in d.p3_incidents] == [5]
    assert [i.id for i in d.open_incidents] == [3, 5]


def test_overdue_means_past_the_root_cause_deadline_or_a_p3_open_a_week() -> None:
    d = digest(
        [
            inc(1, "P2", state="acknowledged", root_cause_deadline_at=MON + timedelta(hours=4)),
            inc(2, "P2", state="acknowledged", root_cause_deadline_at=NOW + timedelta(hours=1)),
            inc(3, "P3", state="triggered", triggered_at=MON - timedelta(days=8)),
            inc(4, "P1", state="triggered", root_cause_deadline_at=MON, root_cause_at=MON),
        ]
    )
    assert [i.id for i in d.overdue_incidents] == [1, 3]


def test_cost_error_rates_and_activity_say_no_data_honestly() -> None:
    alerts = [
        AlertFact("summarizer", MON, "error_rate", 0.07, cost_usd=30.0),
        AlertFact("summarizer", MON + timedelta(days=1), "error_rate", 0.03, cost_usd=12.5),
        AlertFact("summarizer", MON - timedelta(days=8), "error_rate", 0.9, cost_usd=999.0),
    ]
    d = digest(alerts=alerts)
    by = {w.name: w for w in d.workflows}
    summarizer, chatbot, reports = by["summarizer"], by["chatbot"], by["reports"]
    assert summarizer.cost_usd == 42.5 and summarizer.cost_baseline_usd == 70.0
    assert summarizer.cost_ratio == pytest.approx(42.5 / 70)
    assert summarizer.error_rate_max == 0.07 and summarizer.error_rate_last == 0.03
    assert summarizer.ran_this_week
    assert chatbot.cost_usd is None and chatbot.error_rate_max is None  # no data, not zero
    assert not chatbot.ran_this_week
    assert reports.last_activity_at is None


def test_handoff_figures_and_bands() -> None:
    handoffs = [
        ho(0.97, None, tier="auto"),
        *[
            ho(
                0.92,
                "approved",
                claimed_at=MON + timedelta(minutes=m),
                decided_at=MON + timedelta(minutes=2 * m),
            )
            for m in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
        ],
        ho(
            0.85,
            "edited",
            claimed_at=MON + timedelta(minutes=20),
            decided_at=MON + timedelta(hours=1),
        ),
        ho(0.85, "rejected", sla_breached=True),
        ho(0.40, "approved", tier="human"),
    ]
    d = digest(handoffs=handoffs)
    assert d.handoffs_total == 14
    assert d.tier_mix == {"auto": 1, "review": 12, "human": 1}
    # claim times 1..10 min and 20 min: p50 = 6 min, p90 = 10 min
    assert d.time_to_claim == (timedelta(minutes=6), timedelta(minutes=10))
    assert d.sla_breaches == 1
    bands = {b.label: b for b in d.bands}
    assert bands["0.90-0.95"].decided == 10 and bands["0.90-0.95"].rate == 1.0
    assert bands["0.80-0.90"].rate == 0.0 and bands["0.80-0.90"].edited == 1
    assert bands["0.00-0.50"].approved_unchanged == 1
    # ten unchanged approvals just under the auto threshold: say it could come down
    assert any("auto threshold (0.95) could come down to 0.90" in r for r in d.recommendations)
    assert d.per_day["chatbot"][0][2] == 14 and sum(r[2] for r in d.per_day["chatbot"]) == 14


def test_an_empty_week() -> None:
    d = digest()
    assert all(s.opened == 0 and s.mtta is None for s in d.severities)
    assert d.handoffs_total == 0 and d.recommendations == [] and d.per_day == {}
    assert d.time_to_claim == (None, None)
