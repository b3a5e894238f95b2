"""Grouping decisions: duplicates change nothing, joins, updates, resolution."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.alerts import (
    AlertIn,
    AlertStatus,
    KnownAlert,
    content_digest,
    group_id,
    plan_group,
)
from bot.domain.severity import Evidence, Signal

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def alert(fp: str, status: str = "firing", value: float | None = None) -> AlertIn:
    sig = Signal(kind="error_rate", value=value) if value is not None else None
    return AlertIn(
        fingerprint=fp,
        status=AlertStatus(status),
        title=f"alert {fp}",
        ends_at=T0 if status == "resolved" else None,
        evidence=Evidence(signal=sig),
    )


def known(a: AlertIn) -> KnownAlert:
    return KnownAlert(a.fingerprint, a.status, a.ends_at, content_digest(a))


alerts_st = st.lists(
    st.builds(
        alert,
        st.text("abcdef", min_size=1, max_size=3),
        st.sampled_from(["firing", "resolved"]),
        st.none() | st.floats(0, 1),
    ),
    max_size=8,
)


@given(alerts_st)
def test_a_repeated_notification_is_a_noop(incoming: list[AlertIn]) -> None:
    latest = {a.fingerprint: a for a in incoming}
    plan = plan_group([known(a) for a in latest.values()], incoming)
    assert plan.is_noop


def test_new_alert_joins_and_resolution_is_tracked() -> None:
    plan = plan_group([known(alert("a"))], [alert("a"), alert("b")])
    assert [a.fingerprint for a in plan.new] == ["b"] and not plan.changed
    plan = plan_group([known(alert("a")), known(alert("b"))], [alert("a", "resolved")])
    assert [a.fingerprint for a in plan.newly_resolved] == ["a"] and not plan.all_resolved
    plan = plan_group([known(alert("a", "resolved")), known(alert("b"))], [alert("b", "resolved")])
    assert plan.all_resolved


def test_refire_and_value_update_are_changes() -> None:
    plan = plan_group([known(alert("a", "resolved"))], [alert("a")])
    assert [a.fingerprint for a in plan.refired] == ["a"]
    plan = plan_group([known(alert("a", value=0.07))], [alert("a", value=0.25)])
    assert [a.fingerprint for a in plan.updated] == ["a"] and plan.changed


def test_group_id_is_stable_and_separates_sources() -> None:
    assert group_id("am", "k") == group_id("am", "k")
    assert group_id("am", "k") != group_id("grafana", "k")
    assert len(group_id("am", "x" * 10_000)) == 64
