"""What alerts and time do to an incident: opening from a notification, alerts joining,
changing and resolving, and the review and root-cause deadlines of §6."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.domain.alerts import AlertIn, AlertStatus, GroupPlan, Notification, merge_ai_context
from bot.domain.incidents.lifecycle import move, raise_to
from bot.domain.incidents.model import (
    SYSTEM,
    CardChanged,
    CardPosted,
    Entry,
    Incident,
    IncidentOpened,
    Outcome,
)
from bot.domain.incidents.policy import IncidentPolicy
from bot.domain.incidents.vocabulary import IncidentState, JournalKind
from bot.domain.severity import (
    Evidence,
    classify_all,
    escalate_for_missing_root_cause,
    next_review,
    reevaluate,
    root_cause_deadline,
)

__all__ = [
    "AlertsChanged",
    "alerts_changed",
    "escalate",
    "open_from_alerts",
    "opens_incident",
    "review",
    "with_firing_since",
    "workflow_for",
]


def with_firing_since(alert: AlertIn, now: datetime) -> Evidence:
    """Return the alert's evidence with both of its clocks set.

    The sender's start defaults to the alert's start (or now); when the bot first saw it firing
    defaults to now, the moment the bot receives it, whatever the sender stamped on it.
    """
    ev = alert.evidence
    return replace(
        ev,
        firing_since=ev.firing_since or alert.starts_at or now,
        seen_since=ev.seen_since or now,
    )


def workflow_for(n: Notification, policy: IncidentPolicy) -> tuple[str, str | None]:
    """Pick the workflow; return it and a note when the named one is unknown."""
    named = n.workflow or next((a.workflow for a in n.alerts if a.workflow), None)
    source = policy.sources.get(n.source)
    fallback = (source.default_workflow if source else None) or policy.default_workflow
    if named is None:
        return fallback, None
    if policy.workflows and named not in policy.workflows:
        return fallback, (
            f"The alert names workflow {named!r}, which the policy file does not define; "
            f"filed under {fallback!r}."
        )
    return named, None


def opens_incident(n: Notification) -> bool:
    """Return True if the notification of a group with no open incident opens one.

    Only resolved alerts mean the group was closed already or never seen: nothing to open.
    """
    return any(a.status is AlertStatus.FIRING for a in n.alerts)


def open_from_alerts(
    n: Notification, *, group_key: str, policy: IncidentPolicy, now: datetime
) -> Outcome:
    """Open an incident from the first notification of a group, classified from its alerts."""
    workflow, note = workflow_for(n, policy)
    wf = policy.workflow(workflow)
    firing = [a for a in n.alerts if a.status is AlertStatus.FIRING]
    decision = classify_all(
        [with_firing_since(a, now) for a in firing], policy.severity, policy.hours, now
    )
    detected = min((a.starts_at for a in n.alerts if a.starts_at is not None), default=now)
    incident = Incident(
        id=None,
        title=n.title,
        workflow=workflow,
        category=wf.category.value,
        severity=decision.severity,
        severity_reasons=decision.reasons,
        state=IncidentState.TRIGGERED,
        source=n.source,
        group_key=group_key,
        ai_context=merge_ai_context({"workflow": workflow}, n.alerts),
        impact_external=any(
            a.evidence.delivered_externally or a.evidence.customer_facing for a in firing
        )
        or wf.category.value == "customer-facing",
        slack_channel=wf.channel,
        detected_at=min(detected, now),
        triggered_at=now,
        severity_changed_at=now,
        severity_review_at=decision.review_at,
        root_cause_deadline_at=root_cause_deadline(decision.severity, now, policy.severity),
        created_at=now,
        updated_at=now,
    )
    reasons = "; ".join(r.text for r in decision.reasons)
    opened = (
        f"Incident opened from {n.source} with {len(n.alerts)} alert(s). "
        f"Severity {decision.severity.value}: {reasons}"
    )
    entries = [Entry(JournalKind.CHANGE, opened, SYSTEM)]
    if note:
        entries.append(Entry(JournalKind.OBSERVATION, note, SYSTEM))
    if n.truncated_alerts:
        text = f"The sender left out {n.truncated_alerts} alert(s) of this group (truncated)."
        entries.append(Entry(JournalKind.OBSERVATION, text, SYSTEM))
    event = IncidentOpened(incident, n.source, declared=False)
    return Outcome(incident, (CardPosted(), *entries, event))


@dataclass(frozen=True)
class AlertsChanged:
    """A later notification of the incident's group, planned against the alerts we hold.

    `others_firing` says whether an alert the notification does not name still fires; it is
    only looked up (and only matters) when every alert the notification names is resolved.
    An alert still firing with new content keeps the bot's first sight of it (`seen_firing`);
    a new or refired one is seen now.
    """

    notification: Notification
    plan: GroupPlan
    others_firing: bool = False
    # when the bot first saw each stored alert of the notification firing, by fingerprint
    seen_firing: Mapping[str, datetime] = field(default_factory=dict)


def _updated_text(alert: AlertIn) -> str:
    sig = alert.evidence.signal
    what = f" ({sig.kind} = {sig.value})" if sig is not None and sig.value is not None else ""
    return f"Alert updated{what}"


def _say_joined(alert: AlertIn) -> str:
    return f"Alert joined ({alert.status.value})"


def _say_refired(alert: AlertIn) -> str:
    return "Alert firing again"


def _say_resolved(alert: AlertIn) -> str:
    return "Alert resolved at source"


def alerts_changed(
    incident: Incident, change: AlertsChanged, *, policy: IncidentPolicy, now: datetime
) -> Outcome:
    """Journal what changed, raise the severity for fresh evidence, resolve when all resolved."""
    n, plan = change.notification, change.plan
    current = incident.but(
        ai_context=merge_ai_context(dict(incident.ai_context), [*plan.new, *plan.changed]),
        updated_at=now,
    )
    outcome = Outcome(current)
    kinds: tuple[tuple[Sequence[AlertIn], JournalKind, Callable[[AlertIn], str]], ...] = (
        (plan.new, JournalKind.OBSERVATION, _say_joined),
        (plan.refired, JournalKind.OBSERVATION, _say_refired),
        (plan.updated, JournalKind.OBSERVATION, _updated_text),
        (plan.newly_resolved, JournalKind.RESULT, _say_resolved),
    )
    for alerts, kind, say in kinds:
        if alerts:
            # one entry per kind of change and notification, one line per alert
            text = "\n".join(f"{say(a)}: {a.title} [{a.fingerprint}]" for a in alerts)
            outcome = Outcome(
                outcome.incident, (*outcome.effects, Entry(kind, text, n.source, True))
            )
    fresh = [
        with_firing_since(a, now)
        for a in (*plan.new, *plan.refired, *(_seen(a, change.seen_firing) for a in plan.updated))
        if a.status is AlertStatus.FIRING
    ]
    if fresh:
        outcome = outcome.then(_raise_for(outcome.incident, fresh, policy, now))
    if plan.all_resolved and not change.others_firing:
        outcome = outcome.then(_all_resolved(outcome.incident, n, policy, now))
    return Outcome(outcome.incident, (*outcome.effects, CardChanged()))


def _seen(alert: AlertIn, seen_firing: Mapping[str, datetime]) -> AlertIn:
    seen = seen_firing.get(alert.fingerprint)
    if seen is None or alert.evidence.seen_since is not None:
        return alert
    return replace(alert, evidence=replace(alert.evidence, seen_since=seen))


def _raise_for(
    incident: Incident, evidences: list[Evidence], policy: IncidentPolicy, now: datetime
) -> Outcome:
    """Raise severity for alerts that just fired or changed; never lower it.

    The other firing alerts were judged when they arrived and time-driven rises are the
    scheduler's, so only these alerts need a look, and the review time only moves earlier.
    """
    rules, hours = policy.severity, policy.hours
    decision = reevaluate(incident.severity, evidences, rules, hours, now)
    outcome = Outcome(incident)
    if decision is not None:
        outcome = raise_to(incident, decision, rules, now)
    raised = outcome.incident
    review_at = next_review(raised.severity, evidences, rules, hours, now)
    current = raised.severity_review_at
    if review_at is not None and (current is None or review_at < current):
        raised = raised.but(severity_review_at=review_at)
    return Outcome(raised, outcome.effects)


def _all_resolved(
    incident: Incident, n: Notification, policy: IncidentPolicy, now: datetime
) -> Outcome:
    if not incident.state.is_open:
        return Outcome(incident)
    if not policy.workflow(incident.workflow).resolve_on_source_resolve:
        text = (
            "Every alert of the group is resolved at the source. The incident stays open: "
            f"workflow {incident.workflow!r} leaves resolving to a responder."
        )
        return Outcome(incident, (Entry(JournalKind.OBSERVATION, text, n.source),))
    reason = f" ({n.reason})" if n.reason else ""
    done = incident.but(resolved_at=now, resolved_by=f"source:{n.source}")
    return move(
        done,
        IncidentState.RESOLVED,
        actor=n.source,
        now=now,
        why=f": every alert resolved at the source{reason}.",
    )


def review(
    incident: Incident, firing: Sequence[Evidence], *, policy: IncidentPolicy, now: datetime
) -> Outcome:
    """Judge every firing alert of the incident again as time has passed."""
    rules, hours = policy.severity, policy.hours
    decision = reevaluate(incident.severity, firing, rules, hours, now)
    outcome = Outcome(incident)
    if decision is not None:
        outcome = raise_to(incident, decision, rules, now)
    raised = outcome.incident
    review_at = next_review(raised.severity, firing, rules, hours, now)
    return Outcome(raised.but(severity_review_at=review_at), outcome.effects)


def escalate(incident: Incident, *, policy: IncidentPolicy, now: datetime) -> Outcome:
    """Raise a P2 past its root-cause deadline to P1; the deadline is spent either way."""
    decision = escalate_for_missing_root_cause(
        incident.severity,
        incident.root_cause_deadline_at,
        incident.root_cause_at,
        now,
        policy.severity,
    )
    outcome = Outcome(incident)
    if decision is not None:
        outcome = raise_to(incident, decision, policy.severity, now)
    return Outcome(outcome.incident.but(root_cause_deadline_at=None), outcome.effects)
