"""The incident lifecycle on plain values: snapshots in, snapshots and effects out, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Policy, Workflow
from bot.domain import incidents as lc
from bot.domain.alerts import AlertIn, AlertStatus, KnownAlert, Notification, plan_group
from bot.domain.incidents import (
    CardChanged,
    CardPosted,
    Entry,
    GroupClosed,
    IllegalTransition,
    Incident,
    IncidentState,
    JournalKind,
    MissingReason,
    StateMoved,
)
from bot.domain.severity import Evidence, Reason, Severity

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ALICE = "U0ALICE001"
POLICY = Policy(
    workflows={"loud": Workflow(), "quiet": Workflow(resolve_on_source_resolve=False)},
    default_workflow="loud",
)


def incident(**changes: object) -> Incident:
    base = Incident(
        id=7,
        title="Bot leaks PII",
        workflow="loud",
        category="internal",
        severity=Severity.P3,
        severity_reasons=(Reason("declared", Severity.P3, "declared P3 by hand"),),
        state=IncidentState.TRIGGERED,
        source="alertmanager",
        detected_at=T0,
        triggered_at=T0,
        severity_changed_at=T0,
        created_at=T0,
        updated_at=T0,
    )
    return base.but(**changes)


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


# -- people's commands ------------------------------------------------------------------------


def test_acknowledging_makes_the_actor_commander_and_tells_what_moved() -> None:
    out = lc.acknowledge(incident(), lc.Acknowledge(ALICE), later(3))
    assert out.incident.state is IncidentState.ACKNOWLEDGED
    assert (out.incident.commander, out.incident.acknowledged_at) == (ALICE, later(3))
    entry, card, moved = out.effects
    assert entry == Entry(JournalKind.CHANGE, "State triggered → acknowledged", ALICE)
    assert card == CardChanged()
    assert isinstance(moved, StateMoved)
    assert (moved.previous, moved.current, moved.actor) == (
        IncidentState.TRIGGERED,
        IncidentState.ACKNOWLEDGED,
        ALICE,
    )
    assert moved.incident == out.incident


def test_acknowledging_twice_changes_nothing_and_a_mitigated_incident_refuses() -> None:
    acked = incident(state=IncidentState.ACKNOWLEDGED, commander="U0OTHER")
    out = lc.acknowledge(acked, lc.Acknowledge(ALICE), later(1))
    assert out.incident == acked and not out.changed
    with pytest.raises(IllegalTransition) as refused:
        lc.acknowledge(incident(state=IncidentState.MITIGATED), lc.Acknowledge(ALICE), later(1))
    assert (refused.value.state, refused.value.action) == (IncidentState.MITIGATED, "acknowledged")


def test_mitigating_implies_an_acknowledgement_and_keeps_an_earlier_one() -> None:
    out = lc.mitigate(incident(), lc.Mitigate(ALICE), later(5))
    assert out.incident.state is IncidentState.MITIGATED
    assert out.incident.acknowledged_at == later(5) and out.incident.commander == ALICE
    acked = incident(state=IncidentState.ACKNOWLEDGED, acknowledged_at=later(1), commander="U0B")
    out = lc.mitigate(acked, lc.Mitigate(ALICE), later(5))
    assert (out.incident.acknowledged_at, out.incident.commander) == (later(1), "U0B")
    for state in (IncidentState.MITIGATED, IncidentState.RESOLVED):
        with pytest.raises(IllegalTransition):
            lc.mitigate(incident(state=state), lc.Mitigate(ALICE), later(5))


def test_resolving_ends_the_deadlines_and_closes_the_group_first() -> None:
    running = incident(
        severity=Severity.P2, root_cause_deadline_at=later(240), severity_review_at=later(30)
    )
    out = lc.resolve(running, lc.Resolve(ALICE, "rolled back prompt v7"), later(9))
    done = out.incident
    assert done.state is IncidentState.RESOLVED
    assert (done.resolved_at, done.resolved_by, done.resolution_summary) == (
        later(9),
        ALICE,
        "rolled back prompt v7",
    )
    assert done.root_cause_deadline_at is None and done.severity_review_at is None
    assert out.effects[0] == GroupClosed()
    assert out.effects[1] == Entry(
        JournalKind.CHANGE, "State triggered → resolved: rolled back prompt v7", ALICE
    )
    moved = out.effects[-1]
    assert isinstance(moved, StateMoved) and moved.why == "rolled back prompt v7"
    with pytest.raises(IllegalTransition):
        lc.resolve(done, lc.Resolve(ALICE), later(10))


def test_a_closed_ticket_resolves_once_and_its_echo_changes_nothing() -> None:
    out = lc.resolve_from_ticket(incident(), lc.ResolveFromTicket("jira:bob", "Done in Jira"), T0)
    assert out.incident.state is IncidentState.RESOLVED and out.changed
    assert out.incident.resolution_summary == "Done in Jira"
    echo = lc.resolve_from_ticket(out.incident, lc.ResolveFromTicket("jira:bob", "again"), T0)
    assert not echo.changed and echo.incident == out.incident


def test_reopening_needs_a_reason_and_a_resolved_incident() -> None:
    with pytest.raises(MissingReason):
        lc.Reopen(ALICE, "  ")
    with pytest.raises(IllegalTransition):
        lc.reopen(incident(), lc.Reopen(ALICE, "back again"), T0)
    resolved = incident(state=IncidentState.RESOLVED, resolved_at=T0, resolved_by=ALICE)
    out = lc.reopen(resolved, lc.Reopen(ALICE, "back again"), later(60))
    assert out.incident.state is IncidentState.TRIGGERED
    assert out.incident.resolved_at is None and out.incident.resolved_by is None
    assert out.effects[0] == Entry(
        JournalKind.CHANGE, "State resolved → triggered: back again", ALICE
    )


def test_the_first_root_cause_stops_the_p2_clock() -> None:
    with pytest.raises(MissingReason):
        lc.RecordRootCause(ALICE, "")
    p2 = incident(severity=Severity.P2, root_cause_deadline_at=later(240))
    first = lc.record_root_cause(p2, lc.RecordRootCause(ALICE, "prompt v7"), later(10))
    again = lc.record_root_cause(first.incident, lc.RecordRootCause(ALICE, "v7 + v8"), later(20))
    assert again.incident.root_cause == "v7 + v8"
    assert again.incident.root_cause_at == later(10)
    assert again.incident.root_cause_deadline_at is None
    assert again.effects[0] == Entry(JournalKind.ROOT_CAUSE, "v7 + v8", ALICE)


def test_a_severity_set_by_hand_restarts_the_p2_clock_unless_the_cause_is_known() -> None:
    with pytest.raises(MissingReason):
        lc.SetSeverity(ALICE, Severity.P2, " ")
    command = lc.SetSeverity(ALICE, Severity.P2, "customers see it")
    out = lc.set_severity(incident(), command, POLICY.severity, later(5))
    assert out.incident.severity is Severity.P2
    assert out.incident.root_cause_deadline_at == later(5) + POLICY.severity.root_cause_deadline
    assert out.incident.severity_reasons == (
        Reason("human", Severity.P2, f"set by {ALICE}: customers see it"),
    )
    assert out.effects[0] == Entry(
        JournalKind.DECISION, f"Severity P3 → P2 by {ALICE}: customers see it", ALICE
    )
    known = incident(root_cause_at=T0)
    assert (
        lc.set_severity(known, command, POLICY.severity, later(5)).incident.root_cause_deadline_at
        is None
    )
    same = lc.set_severity(out.incident, command, POLICY.severity, later(6))
    assert not same.changed
    lower = lc.SetSeverity(ALICE, Severity.P3, "contained")
    assert lc.lowers_severity(out.incident, lower) and not lc.lowers_severity(incident(), command)


def test_declaring_files_under_the_default_workflow_when_the_named_one_is_unknown() -> None:
    out = lc.declare(lc.Declare("x" * 600, ALICE, workflow="nope"), POLICY, T0)
    inc = out.incident
    assert inc.id is None and inc.workflow == "loud" and len(inc.title) == 500
    assert inc.severity is POLICY.severity.default and inc.source == f"declared:{ALICE}"
    assert out.effects[0] == CardPosted()
    assert out.effects[1] == Entry(
        JournalKind.CHANGE,
        f"Incident declared by {ALICE} as P3 (workflow 'nope' is not defined; filed under 'loud').",
        ALICE,
    )


def test_a_postmortem_request_is_journalled_and_a_timeline_is_not() -> None:
    timeline = lc.report(incident(), lc.Report(ALICE, "timeline"))
    assert timeline.effects == (lc.ReportRequested("timeline"),)
    postmortem = lc.report(incident(), lc.Report(ALICE, "postmortem"))
    assert [type(e) for e in postmortem.effects] == [
        lc.ReportRequested,
        Entry,
        lc.PostmortemRequested,
    ]


# -- alerts and time --------------------------------------------------------------------------


def alert(fp: str, status: AlertStatus = AlertStatus.FIRING, **evidence: object) -> AlertIn:
    return AlertIn(
        fingerprint=fp,
        status=status,
        title=f"alert {fp}",
        starts_at=T0,
        evidence=Evidence(**evidence),  # type: ignore[arg-type]
    )


def test_opening_from_alerts_classifies_and_notes_what_was_left_out() -> None:
    n = Notification(
        "alertmanager", "g1", "Refusals up", (alert("a", customer_facing=True),), truncated_alerts=3
    )
    out = lc.open_from_alerts(n, group_key="k1", policy=POLICY, now=T0)
    inc = out.incident
    assert (inc.state, inc.group_key, inc.workflow) == (IncidentState.TRIGGERED, "k1", "loud")
    assert inc.impact_external and inc.severity_reasons
    assert out.effects[0] == CardPosted()
    texts = [e.text for e in out.effects if isinstance(e, Entry)]
    assert texts[0].startswith("Incident opened from alertmanager with 1 alert(s). Severity ")
    assert texts[1] == "The sender left out 3 alert(s) of this group (truncated)."
    assert isinstance(out.effects[-1], lc.IncidentOpened)


def resolved_notification(reason: str | None = None) -> lc.AlertsChanged:
    n = Notification("alertmanager", "g1", "t", (alert("a", AlertStatus.RESOLVED),), reason=reason)
    plan = plan_group([KnownAlert("a", AlertStatus.FIRING, None)], n.alerts)
    return lc.AlertsChanged(n, plan)


def test_every_alert_resolved_at_the_source_resolves_the_incident() -> None:
    out = lc.alerts_changed(incident(), resolved_notification("fixed"), policy=POLICY, now=later(4))
    assert out.incident.state is IncidentState.RESOLVED
    assert out.incident.resolved_by == "source:alertmanager"
    entries = [e for e in out.effects if isinstance(e, Entry)]
    assert entries[0] == Entry(
        JournalKind.RESULT, "Alert resolved at source: alert a [a]", "alertmanager", batch=True
    )
    assert (
        entries[1].text == "State triggered → resolved: every alert resolved at the source (fixed)."
    )
    assert out.effects[-1] == CardChanged()


def test_the_incident_stays_open_when_the_workflow_or_other_alerts_say_so() -> None:
    change = resolved_notification()
    quiet = lc.alerts_changed(incident(workflow="quiet"), change, policy=POLICY, now=later(4))
    assert quiet.incident.state is IncidentState.TRIGGERED
    assert any(
        isinstance(e, Entry) and "leaves resolving to a responder" in e.text for e in quiet.effects
    )
    others = lc.AlertsChanged(change.notification, change.plan, others_firing=True)
    out = lc.alerts_changed(incident(), others, policy=POLICY, now=later(4))
    assert out.incident.state is IncidentState.TRIGGERED
    resolved = incident(state=IncidentState.RESOLVED)
    assert lc.alerts_changed(resolved, change, policy=POLICY, now=later(4)).incident.state is (
        IncidentState.RESOLVED
    )


def test_fresh_harmful_evidence_raises_the_severity_and_never_lowers_it() -> None:
    n = Notification(
        "alertmanager", "g1", "t", (alert("b", harmful_output=True, delivered_externally=True),)
    )
    change = lc.AlertsChanged(n, plan_group([], n.alerts))
    out = lc.alerts_changed(incident(), change, policy=POLICY, now=later(2))
    assert out.incident.severity is Severity.P1
    assert any(isinstance(e, lc.SeverityMoved) and not e.by_human for e in out.effects)
    p1 = incident(severity=Severity.P1)
    assert (
        lc.alerts_changed(p1, change, policy=POLICY, now=later(2)).incident.severity is Severity.P1
    )


def test_a_p2_without_root_cause_past_its_deadline_becomes_p1() -> None:
    p2 = incident(severity=Severity.P2, root_cause_deadline_at=later(240))
    early = lc.escalate(p2, policy=POLICY, now=later(239))
    assert early.incident.severity is Severity.P2 and early.incident.root_cause_deadline_at is None
    out = lc.escalate(p2, policy=POLICY, now=later(241))
    assert out.incident.severity is Severity.P1
    assert out.incident.root_cause_deadline_at is None
    assert out.effects[0] == Entry(
        JournalKind.CHANGE,
        "Severity P2 → P1: no root cause recorded within 4h of becoming P2 "
        f"(deadline {later(240).isoformat()})",
        lc.SYSTEM,
    )


def test_a_review_with_nothing_firing_clears_the_review_time() -> None:
    out = lc.review(incident(severity_review_at=later(1)), [], policy=POLICY, now=later(2))
    assert out.incident.severity_review_at is None and not out.effects


# -- the state machine's invariants -----------------------------------------------------------

ACTORS = st.sampled_from([ALICE, "U0BOB0002", "jira:carol"])
COMMANDS = st.one_of(
    st.builds(lc.Acknowledge, ACTORS),
    st.builds(lc.Mitigate, ACTORS),
    st.builds(lc.Resolve, ACTORS, st.one_of(st.none(), st.just("rolled back"))),
    st.builds(lc.ResolveFromTicket, ACTORS, st.just("Done in Jira")),
    st.builds(lc.Reopen, ACTORS, st.just("it is back")),
    st.builds(lc.RecordRootCause, ACTORS, st.just("prompt v7")),
    st.builds(lc.SetSeverity, ACTORS, st.sampled_from(list(Severity)), st.just("because")),
)


def apply(inc: Incident, command: object, now: datetime) -> lc.Outcome:
    match command:
        case lc.Acknowledge():
            return lc.acknowledge(inc, command, now)
        case lc.Mitigate():
            return lc.mitigate(inc, command, now)
        case lc.Resolve():
            return lc.resolve(inc, command, now)
        case lc.ResolveFromTicket():
            return lc.resolve_from_ticket(inc, command, now)
        case lc.Reopen():
            return lc.reopen(inc, command, now)
        case lc.RecordRootCause():
            return lc.record_root_cause(inc, command, now)
        case lc.SetSeverity():
            return lc.set_severity(inc, command, POLICY.severity, now)
    raise AssertionError(command)


@settings(max_examples=300, deadline=None)
@given(st.lists(COMMANDS, max_size=25))
def test_any_sequence_of_commands_keeps_the_lifecycle_consistent(commands: list[object]) -> None:
    inc = incident(severity=Severity.P2, root_cause_deadline_at=later(240))
    for step, command in enumerate(commands, start=1):
        now = later(step)
        try:
            out = apply(inc, command, now)
        except IllegalTransition as refused:
            assert refused.state is inc.state
            continue
        moves = [e for e in out.effects if isinstance(e, StateMoved)]
        if out.incident.state is inc.state:
            assert not moves
        else:
            # one move per change of state, told with its journal entry and the card
            (move,) = moves
            assert (move.previous, move.current) == (inc.state, out.incident.state)
            assert move.incident == out.incident
            assert Entry in {type(e) for e in out.effects}
            assert CardChanged() in out.effects
        inc = out.incident
        assert (inc.state is IncidentState.RESOLVED) == (inc.resolved_at is not None)
        if inc.state is IncidentState.RESOLVED and moves:
            assert inc.root_cause_deadline_at is None and inc.severity_review_at is None
        if inc.state in (IncidentState.ACKNOWLEDGED, IncidentState.MITIGATED):
            assert inc.acknowledged_at is not None and inc.commander is not None
        if inc.root_cause_deadline_at is not None:
            assert inc.severity is Severity.P2 and inc.root_cause_at is None
        assert inc.updated_at <= now
