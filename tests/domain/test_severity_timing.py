"""Sustained durations on the bot's own clock: a sender's start time and window count only when
its source has `trusted_timing`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Policy, Workflow
from bot.domain.alerts import AlertIn, AlertStatus, KnownAlert, Notification, plan_group
from bot.domain.calendar import BusinessHours
from bot.domain.incidents import AlertsChanged, alerts_changed, open_from_alerts, with_firing_since
from bot.domain.incidents.model import Incident
from bot.domain.severity import (
    Decision,
    Evidence,
    Severity,
    SeverityRules,
    Signal,
    classify,
    next_review,
    reevaluate,
)

P2, P3 = Severity.P2, Severity.P3
H, M, US = timedelta(hours=1), timedelta(minutes=1), timedelta(microseconds=1)
RULES = SeverityRules()
HOURS = BusinessHours()  # UTC, Monday-Friday 09:00-17:00
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday, inside business hours
SATURDAY_3AM = datetime(2026, 3, 7, 3, 0, tzinfo=UTC)
MONDAY_9AM = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


def error_rate(
    *, seen: datetime | None, trusted: bool = False, window: timedelta | None = 10 * M
) -> Evidence:
    """A 7 % error rate the sender stamped three hours before NOW."""
    return Evidence(
        Signal("error_rate", 0.07, window=window),
        firing_since=NOW - 3 * H,
        seen_since=seen,
        trusted_timing=trusted,
        reported_by="prometheus",
    )


def deviation(*, seen: datetime | None, trusted: bool = False) -> Evidence:
    """A quality score far outside its band, computed by the sender over a 4h window."""
    return Evidence(
        Signal("quality", 0.5, baseline=0.9, stddev=0.1, window=4 * H),
        firing_since=None if seen is None else seen - 4 * H,
        seen_since=seen,
        trusted_timing=trusted,
        reported_by="llm-obs",
    )


def decide(evidence: Evidence, now: datetime = NOW) -> Decision:
    return classify(evidence, RULES, HOURS, now)


# -- error rate: 2h of wall time -------------------------------------------------------------


def test_a_backdated_error_rate_is_not_sustained_as_seen_by_the_bot() -> None:
    decision = decide(error_rate(seen=NOW - 12 * M, window=2 * H))
    assert decision.severity is P3
    assert decision.reasons[0].text == (
        "error_rate 0.07 > 0.05 not yet sustained 2h (firing for 12m as seen by the bot; "
        "sustained needs 2h; window 2h as reported by prometheus is the span of its value, "
        "not how long it held); P3 until then"
    )
    # the rise is due two hours after the bot first saw it, not after the sender's stamp
    assert decision.review_at == NOW - 12 * M + 2 * H


@pytest.mark.parametrize(
    ("held", "severity"),
    [(2 * H - US, P3), (2 * H, P2), (3 * H, P2)],
)
def test_the_error_rate_is_sustained_after_two_hours_seen_by_the_bot(
    held: timedelta, severity: Severity
) -> None:
    seen = NOW - 12 * M
    decision = decide(error_rate(seen=seen), now=seen + held)
    assert decision.severity is severity
    if severity is P2:
        assert decision.reasons[0].text == (
            "error_rate 0.07 > 0.05 sustained 2h (P2 threshold; firing for "
            f"{'2h' if held == 2 * H else '3h'} as seen by the bot; window 10m as reported by "
            "prometheus is the span of its value, not how long it held)"
        )
        assert decision.review_at is None


def test_reevaluation_raises_on_the_bots_clock() -> None:
    seen = NOW - 12 * M
    firing = [error_rate(seen=seen)]
    assert next_review(P3, firing, RULES, HOURS, NOW) == seen + 2 * H
    assert reevaluate(P3, firing, RULES, HOURS, seen + 2 * H - US) is None
    raised = reevaluate(P3, firing, RULES, HOURS, seen + 2 * H)
    assert raised is not None and raised.severity is P2


def test_a_trusted_source_keeps_its_start_time_and_window() -> None:
    by_start = decide(error_rate(seen=NOW - 12 * M, trusted=True))
    assert by_start.severity is P2
    assert by_start.reasons[0].text == (
        "error_rate 0.07 > 0.05 sustained 2h (P2 threshold; firing for 3h as reported by "
        "prometheus; trusted timing)"
    )
    by_window = decide(
        Evidence(
            Signal("error_rate", 0.07, window=2 * H),
            seen_since=NOW,
            trusted_timing=True,
            reported_by="prometheus",
        )
    )
    assert by_window.severity is P2
    assert "window 2h as reported by prometheus; trusted timing" in by_window.reasons[0].text


def test_a_trusted_start_that_is_short_counts_from_the_sender() -> None:
    evidence = Evidence(
        Signal("error_rate", 0.07),
        firing_since=NOW - H,
        seen_since=NOW - 5 * H,
        trusted_timing=True,
        reported_by="prometheus",
    )
    decision = decide(evidence)
    assert decision.severity is P3
    assert decision.review_at == NOW + H
    assert "(firing for 1h as reported by prometheus; trusted timing)" in decision.reasons[0].text


def test_untrusted_evidence_the_bot_has_not_seen_firing_waits_on_nothing() -> None:
    decision = decide(error_rate(seen=None))
    assert decision.severity is P3
    assert "(not seen firing by the bot yet; sustained needs 2h;" in decision.reasons[0].text
    assert decision.review_at is None


# -- deviation and throughput: business time -------------------------------------------------


def test_a_four_hour_window_at_three_on_a_saturday_is_not_p2() -> None:
    decision = decide(deviation(seen=SATURDAY_3AM), now=SATURDAY_3AM)
    assert decision.severity is P3
    assert decision.reasons[0].text == (
        "quality 0.50 vs baseline 0.90: off by 0.40 > 2 stddev = 0.20, not yet 4h of business "
        "hours (firing for 0s of business hours as seen by the bot; sustained needs 4h of "
        "business hours; window 4h as reported by llm-obs is the span of its value, not how "
        "long it held); P3 until then"
    )
    # only business time counts: Monday 09:00 plus four hours
    assert decision.review_at == MONDAY_9AM + 4 * H


def test_the_same_window_from_a_trusted_source_is_p2() -> None:
    decision = decide(deviation(seen=SATURDAY_3AM, trusted=True), now=SATURDAY_3AM)
    assert decision.severity is P2
    assert "(P2 threshold; window 4h as reported by llm-obs; trusted timing)" in (
        decision.reasons[0].text
    )


@pytest.mark.parametrize(
    ("now", "severity"),
    [
        (SATURDAY_3AM + 24 * H, P3),  # Sunday: still 0s of business hours
        (MONDAY_9AM + 4 * H - US, P3),
        (MONDAY_9AM + 4 * H, P2),
    ],
)
def test_deviation_counts_only_business_time_since_the_bot_saw_it(
    now: datetime, severity: Severity
) -> None:
    decision = decide(deviation(seen=SATURDAY_3AM), now=now)
    assert decision.severity is severity
    if severity is P2:
        assert "firing for 4h of business hours as seen by the bot" in decision.reasons[0].text


def test_friday_afternoon_carries_over_to_monday() -> None:
    friday_3pm = datetime(2026, 3, 6, 15, tzinfo=UTC)  # two business hours left that day
    assert decide(deviation(seen=friday_3pm), now=friday_3pm).review_at == MONDAY_9AM + 2 * H
    assert decide(deviation(seen=friday_3pm), now=MONDAY_9AM + 2 * H).severity is P2


def test_a_zero_throughput_window_is_not_a_business_day_seen() -> None:
    seen = datetime(2026, 3, 4, 9, tzinfo=UTC)
    evidence = Evidence(Signal("throughput", 0, window=8 * H), seen_since=seen)
    early = decide(evidence, now=seen + H)
    assert early.severity is P3
    assert early.review_at == seen + 8 * H
    assert decide(evidence, now=seen + 8 * H).severity is P2


def test_daily_spend_needs_a_day_seen_by_the_bot() -> None:
    seen = NOW - H
    evidence = Evidence(Signal("daily_spend", 30, baseline=10, window=24 * H), seen_since=seen)
    decision = decide(evidence)
    assert decision.severity is P3
    assert decision.review_at == seen + 24 * H
    assert decide(evidence, now=seen + 24 * H).severity is P2


def test_a_naive_seen_since_is_rejected() -> None:
    naive = Evidence(Signal("error_rate", 0.07), seen_since=datetime(2026, 3, 4, 11))
    with pytest.raises(ValueError, match="seen_since must be timezone-aware"):
        decide(naive)


# -- the bot's clock at ingest -----------------------------------------------------------------


def test_an_alert_arriving_now_is_seen_now_whatever_its_stamp() -> None:
    alert = AlertIn(
        "fp",
        AlertStatus.FIRING,
        "errors",
        starts_at=NOW - 3 * H,
        evidence=Evidence(Signal("error_rate", 0.07)),
    )
    evidence = with_firing_since(alert, NOW)
    assert (evidence.firing_since, evidence.seen_since) == (NOW - 3 * H, NOW)


def test_an_alert_the_bot_saw_before_keeps_its_first_sight() -> None:
    earlier = NOW - 30 * M
    alert = AlertIn(
        "fp",
        AlertStatus.FIRING,
        "errors",
        evidence=Evidence(Signal("error_rate", 0.07), seen_since=earlier),
    )
    evidence = with_firing_since(alert, NOW)
    assert (evidence.firing_since, evidence.seen_since) == (NOW, earlier)


POLICY = Policy(workflows={"w": Workflow()}, default_workflow="w")


def rate_alert(value: float) -> AlertIn:
    return AlertIn(
        "fp",
        AlertStatus.FIRING,
        "errors",
        starts_at=NOW - 3 * H,
        evidence=Evidence(Signal("error_rate", value), reported_by="prometheus"),
    )


def opened(at: datetime) -> Incident:
    n = Notification("prometheus", "g", "errors", (rate_alert(0.03),))
    return open_from_alerts(n, group_key="g", policy=POLICY, now=at).incident


def updated(seen_firing: dict[str, datetime]) -> AlertsChanged:
    n = Notification("prometheus", "g", "errors", (rate_alert(0.07),))
    plan = plan_group([KnownAlert("fp", AlertStatus.FIRING, None, "an older digest")], n.alerts)
    assert plan.updated == n.alerts
    return AlertsChanged(n, plan, seen_firing=seen_firing)


def test_an_alert_updated_above_the_threshold_counts_from_the_bots_first_sight() -> None:
    first = NOW - 3 * H
    inc = opened(first)
    assert (inc.severity, inc.severity_review_at) == (P3, None)
    out = alerts_changed(inc, updated({"fp": first}), policy=POLICY, now=NOW)
    assert out.incident.severity is P2
    assert "firing for 3h as seen by the bot" in out.incident.severity_reasons[0].text


def test_an_updated_alert_the_bot_holds_no_sight_of_is_seen_now() -> None:
    inc = opened(NOW - 3 * H)
    out = alerts_changed(inc, updated({}), policy=POLICY, now=NOW)
    assert out.incident.severity is P3
    assert out.incident.severity_review_at == NOW + 2 * H
