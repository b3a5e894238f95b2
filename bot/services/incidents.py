"""Incident use cases: open and update from alerts, severity over time, resolve by source."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.config import Policy
from bot.domain.alerts import (
    AlertIn,
    AlertStatus,
    KnownAlert,
    Notification,
    content_digest,
    group_id,
    merge_ai_context,
    plan_group,
)
from bot.domain.incidents import IncidentState, JournalKind, format_incident_id
from bot.domain.numbers import number
from bot.domain.permissions import has_role
from bot.domain.severity import (
    Decision,
    Evidence,
    Severity,
    Signal,
    classify_all,
    escalate_for_missing_root_cause,
    is_higher,
    next_review,
    reevaluate,
    root_cause_deadline,
)
from bot.services.errors import IncidentNotFound, InvalidTransition, NotAResponder, ReasonRequired
from bot.services.events import (
    IncidentOpened,
    Listener,
    PostmortemDrafted,
    RootCauseRecorded,
    SeverityChanged,
    StateChanged,
    publish,
)
from storage import journal
from storage.models import AlertGroupRow, AlertRow, IncidentRow, JournalRow

__all__ = ["IncidentService", "IngestOutcome", "evidence_from_row", "journal_kind_of"]

_ALERTS: sa.Table = AlertRow.__table__  # type: ignore[attr-defined]
_GROUPS: sa.Table = AlertGroupRow.__table__  # type: ignore[attr-defined]

log = logging.getLogger(__name__)

SYSTEM = "ai-incident"

GroupMembers = Mapping[str, Collection[str]] | None


@dataclass(frozen=True)
class IngestOutcome:
    """What one notification did."""

    incident_id: int | None
    opened: bool
    duplicate: bool
    alerts_new: int
    alerts_changed: int
    resolved: bool

    @property
    def public_id(self) -> str | None:
        """Return `INC-<n>` or None when nothing was filed."""
        return format_incident_id(self.incident_id) if self.incident_id is not None else None


def _signal_dict(signal: Signal | None) -> dict[str, Any] | None:
    if signal is None:
        return None
    return {
        "kind": signal.kind,
        "value": signal.value,
        "threshold": signal.threshold,
        "baseline": signal.baseline,
        "stddev": signal.stddev,
        "window_s": signal.window.total_seconds() if signal.window else None,
    }


def _evidence_dict(e: Evidence) -> dict[str, Any]:
    return {
        "harmful_output": e.harmful_output,
        "delivered_externally": e.delivered_externally,
        "acted_upon": e.acted_upon,
        "customer_facing": e.customer_facing,
        "hint": e.hint,
        "hint_trusted": e.hint_trusted,
        "label_severity": e.label_severity,
    }


def evidence_from_row(row: AlertRow) -> Evidence:
    """Rebuild an alert's severity evidence from storage."""
    sig = None
    if row.signal:
        s = row.signal
        window = s.get("window_s")
        sig = Signal(
            kind=str(s["kind"]),
            value=number(s.get("value")),
            threshold=number(s.get("threshold")),
            baseline=number(s.get("baseline")),
            stddev=number(s.get("stddev")),
            window=timedelta(seconds=window) if window is not None else None,
        )
    ev = row.evidence
    return Evidence(
        signal=sig,
        harmful_output=bool(ev.get("harmful_output")),
        delivered_externally=bool(ev.get("delivered_externally")),
        acted_upon=bool(ev.get("acted_upon")),
        customer_facing=bool(ev.get("customer_facing")),
        hint=ev.get("hint"),
        hint_trusted=bool(ev.get("hint_trusted")),
        label_severity=ev.get("label_severity"),
        firing_since=row.starts_at or row.first_seen_at,
    )


_KIND_PREFIXES = {
    "change": JournalKind.CHANGE,
    "observation": JournalKind.OBSERVATION,
    "noticed": JournalKind.OBSERVATION,
    "action": JournalKind.ACTION,
    "tried": JournalKind.ACTION,
    "result": JournalKind.RESULT,
    "worked": JournalKind.RESULT,
    "root cause": JournalKind.ROOT_CAUSE,
    "rootcause": JournalKind.ROOT_CAUSE,
    "decision": JournalKind.DECISION,
}


def journal_kind_of(text: str) -> tuple[JournalKind, str]:
    """Read an optional `kind:` prefix of a thread reply ("action: restarted worker-1")."""
    head, sep, rest = text.partition(":")
    kind = _KIND_PREFIXES.get(head.strip().lower()) if sep else None
    if kind is None or not rest.strip():
        return JournalKind.OBSERVATION, text
    return kind, rest.strip()


def _updated_text(alert: AlertIn) -> str:
    sig = alert.evidence.signal
    what = f" ({sig.kind} = {sig.value})" if sig is not None and sig.value is not None else ""
    return f"Alert updated{what}"


def _reasons(decision: Decision) -> list[dict[str, Any]]:
    return [
        {"rule": r.rule, "severity": r.severity.value, "text": r.text} for r in decision.reasons
    ]


def _with_firing_since(alert: AlertIn, now: datetime) -> Evidence:
    ev = alert.evidence
    if ev.firing_since is None:
        return replace(ev, firing_since=alert.starts_at or now)
    return ev


class IncidentService:
    """Use cases on incidents; every method works inside the caller's transaction."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        listeners: Sequence[Listener] = (),
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._listeners = list(listeners)

    @property
    def clock(self) -> Callable[[], datetime]:
        """The clock the service reads `now` from."""
        return self._clock

    def subscribe(self, listener: Listener) -> None:
        """Tell `listener` about every incident event, inside the transaction that caused it."""
        self._listeners.append(listener)

    # -- ingest -----------------------------------------------------------------------------

    def _workflow_for(self, n: Notification) -> tuple[str, str | None]:
        """Pick the workflow; return it and a note when the named one is unknown."""
        named = n.workflow or next((a.workflow for a in n.alerts if a.workflow), None)
        source = self._policy.sources.get(n.source)
        fallback = (source.default_workflow if source else None) or self._policy.default_workflow
        if named is None:
            return fallback, None
        if self._policy.workflows and named not in self._policy.workflows:
            return fallback, (
                f"The alert names workflow {named!r}, which the policy file does not define; "
                f"filed under {fallback!r}."
            )
        return named, None

    def ingest(self, session: Session, n: Notification) -> IngestOutcome:
        """Apply one notification: open, join, update or resolve; duplicates change nothing."""
        now = self._clock()
        key = group_id(n.source, n.group_key)
        group = session.exec(
            select(AlertGroupRow).where(AlertGroupRow.key == key).with_for_update()
        ).first()
        if group is None:
            if not any(a.status is AlertStatus.FIRING for a in n.alerts):
                # resolved alerts of a group we hold no open incident for: already closed or never seen
                return IngestOutcome(None, False, True, 0, 0, False)
            try:
                with session.begin_nested():
                    return self._open(session, n, key, now)
            except IntegrityError:
                # another replica opened this group between our read and our insert: join it
                group = session.exec(
                    select(AlertGroupRow).where(AlertGroupRow.key == key).with_for_update()
                ).one()
        incident = session.get(IncidentRow, group.incident_id, with_for_update=True)
        assert incident is not None
        return self._update(session, incident, n, now)

    def _open(self, session: Session, n: Notification, key: str, now: datetime) -> IngestOutcome:
        workflow, note = self._workflow_for(n)
        wf = self._policy.workflow(workflow)
        firing = [a for a in n.alerts if a.status is AlertStatus.FIRING]
        evidences = [_with_firing_since(a, now) for a in firing]
        decision = classify_all(evidences, self._policy.severity, self._policy.hours, now)
        detected = min((a.starts_at for a in n.alerts if a.starts_at is not None), default=now)
        incident = IncidentRow(
            title=n.title,
            workflow=workflow,
            category=wf.category.value,
            severity=decision.severity.value,
            severity_reasons=_reasons(decision),
            state=IncidentState.TRIGGERED.value,
            source=n.source,
            group_key=key,
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
            root_cause_deadline_at=root_cause_deadline(
                decision.severity, now, self._policy.severity
            ),
            created_at=now,
            updated_at=now,
        )
        session.add(incident)
        session.flush()
        assert incident.id is not None
        session.add(
            AlertGroupRow(
                key=key,
                incident_id=incident.id,
                source=n.source,
                group_key=n.group_key,
                opened_at=now,
            )
        )
        session.flush()
        self._add_alerts(session, incident.id, n.alerts, now)
        journal.card_posted(session, incident, now)
        reasons = "; ".join(r.text for r in decision.reasons)
        journal.record(
            session,
            incident,
            kind=JournalKind.CHANGE,
            text=(
                f"Incident opened from {n.source} with {len(n.alerts)} alert(s). "
                f"Severity {decision.severity.value}: {reasons}"
            ),
            author=SYSTEM,
            now=now,
        )
        if note:
            journal.record(
                session, incident, kind=JournalKind.OBSERVATION, text=note, author=SYSTEM, now=now
            )
        if n.truncated_alerts:
            journal.record(
                session,
                incident,
                kind=JournalKind.OBSERVATION,
                text=f"The sender left out {n.truncated_alerts} alert(s) of this group (truncated).",
                author=SYSTEM,
                now=now,
            )
        publish(
            session,
            self._listeners,
            IncidentOpened(incident=incident, actor=n.source, now=now, declared=False),
        )
        return IngestOutcome(incident.id, True, False, len(n.alerts), 0, False)

    def _add_alerts(
        self, session: Session, incident_id: int, alerts: Sequence[AlertIn], now: datetime
    ) -> None:
        if not alerts:
            return
        # one Core executemany: no ORM object per alert on the ingest hot path
        session.execute(
            sa.insert(_ALERTS),
            [
                {
                    "incident_id": incident_id,
                    "fingerprint": a.fingerprint,
                    "status": a.status.value,
                    "digest": content_digest(a),
                    "title": a.title,
                    "description": a.description,
                    "labels": dict(a.labels),
                    "annotations": dict(a.annotations),
                    "links": [{"title": link.title, "url": link.url} for link in a.links],
                    "values": dict(a.values),
                    "signal": _signal_dict(a.evidence.signal),
                    "evidence": _evidence_dict(a.evidence),
                    "ai_context": dict(a.ai_context),
                    "generator_url": a.generator_url,
                    "starts_at": a.starts_at,
                    "ends_at": a.ends_at,
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "resolved_at": now if a.status is AlertStatus.RESOLVED else None,
                }
                for a in alerts
            ],
        )

    def _update(
        self,
        session: Session,
        incident: IncidentRow,
        n: Notification,
        now: datetime,
    ) -> IngestOutcome:
        assert incident.id is not None
        fingerprints = sorted({a.fingerprint for a in n.alerts})
        # only the alerts this notification names, only the columns the plan needs, no ORM
        # objects: the cost must not grow with the incident
        rows = {
            r.fingerprint: r
            for r in session.execute(
                sa.select(_ALERTS.c.id, _ALERTS.c.fingerprint, _ALERTS.c.status)
                .add_columns(_ALERTS.c.ends_at, _ALERTS.c.digest, _ALERTS.c.starts_at)
                .where(
                    _ALERTS.c.incident_id == incident.id,
                    _ALERTS.c.fingerprint.in_(fingerprints),
                )
            )
        }
        known = [
            KnownAlert(fp, AlertStatus(r.status), r.ends_at, r.digest) for fp, r in rows.items()
        ]
        plan = plan_group(known, n.alerts)
        if plan.is_noop:
            return IngestOutcome(incident.id, False, True, 0, 0, False)
        self._add_alerts(session, incident.id, plan.new, now)
        for a in plan.changed:
            row = rows[a.fingerprint]
            starts_at = (a.starts_at or now) if a in plan.refired else row.starts_at
            session.execute(
                sa.update(_ALERTS)
                .where(_ALERTS.c.id == row.id)
                .values(
                    status=a.status.value,
                    digest=content_digest(a),
                    ends_at=a.ends_at,
                    labels=dict(a.labels),
                    annotations=dict(a.annotations),
                    values=dict(a.values),
                    description=a.description,
                    signal=_signal_dict(a.evidence.signal),
                    evidence=_evidence_dict(a.evidence),
                    ai_context=dict(a.ai_context),
                    last_seen_at=now,
                    resolved_at=now if a.status is AlertStatus.RESOLVED else None,
                    starts_at=starts_at,
                )
            )
        incident.ai_context = merge_ai_context(incident.ai_context, [*plan.new, *plan.changed])
        incident.updated_at = now
        for alerts, kind, say in (
            (plan.new, JournalKind.OBSERVATION, lambda a: f"Alert joined ({a.status.value})"),
            (plan.refired, JournalKind.OBSERVATION, lambda a: "Alert firing again"),
            (plan.updated, JournalKind.OBSERVATION, _updated_text),
            (plan.newly_resolved, JournalKind.RESULT, lambda a: "Alert resolved at source"),
        ):
            if alerts:
                # one entry per kind of change and notification, one line per alert
                journal.record(
                    session,
                    incident,
                    kind=kind,
                    text="\n".join(f"{say(a)}: {a.title} [{a.fingerprint}]" for a in alerts),
                    author=n.source,
                    now=now,
                    batch=True,
                )
        fresh = [
            _with_firing_since(a, now)
            for a in (*plan.new, *plan.refired, *plan.updated)
            if a.status is AlertStatus.FIRING
        ]
        if fresh:
            self._raise_for(session, incident, fresh, now)
        resolved = False
        if plan.all_resolved and not self._others_firing(session, incident.id, fingerprints):
            resolved = self._all_resolved(session, incident, n, now)
        journal.card_changed(session, incident, now)
        session.add(incident)
        return IngestOutcome(incident.id, False, False, len(plan.new), len(plan.changed), resolved)

    def _all_resolved(
        self,
        session: Session,
        incident: IncidentRow,
        n: Notification,
        now: datetime,
    ) -> bool:
        wf = self._policy.workflow(incident.workflow)
        if not IncidentState(incident.state).is_open:
            return False
        if not wf.resolve_on_source_resolve:
            journal.record(
                session,
                incident,
                kind=JournalKind.OBSERVATION,
                text=(
                    "Every alert of the group is resolved at the source. The incident stays open: "
                    f"workflow {incident.workflow!r} leaves resolving to a responder."
                ),
                author=n.source,
                now=now,
            )
            return False
        incident.resolved_at = now
        incident.resolved_by = f"source:{n.source}"
        reason = f" ({n.reason})" if n.reason else ""
        self._move(
            session,
            incident,
            to=IncidentState.RESOLVED,
            actor=n.source,
            now=now,
            why=f": every alert resolved at the source{reason}.",
        )
        return True

    # -- severity over time -----------------------------------------------------------------

    def _firing_evidence(self, session: Session, incident_id: int) -> list[Evidence]:
        rows = session.exec(
            select(AlertRow).where(AlertRow.incident_id == incident_id, AlertRow.status == "firing")
        ).all()
        return [evidence_from_row(r) for r in rows]

    def _change_severity(
        self,
        session: Session,
        incident: IncidentRow,
        *,
        to: Severity,
        reasons: list[dict[str, Any]],
        kind: JournalKind,
        text: str,
        actor: str,
        now: datetime,
        reason: str,
        by_human: bool,
    ) -> None:
        """Set a new severity with its reasons; a P2 without root cause restarts its clock."""
        previous = Severity(incident.severity)
        incident.severity = to.value
        incident.severity_reasons = reasons
        incident.severity_changed_at = now
        incident.root_cause_deadline_at = (
            None
            if incident.root_cause_at is not None
            else root_cause_deadline(to, now, self._policy.severity)
        )
        incident.updated_at = now
        session.add(incident)
        journal.record(session, incident, kind=kind, text=text, author=actor, now=now)
        journal.card_changed(session, incident, now)
        publish(
            session,
            self._listeners,
            SeverityChanged(
                incident=incident,
                previous=previous,
                current=to,
                actor=actor,
                now=now,
                reason=reason,
                by_human=by_human,
            ),
        )

    def _raise_to(
        self, session: Session, incident: IncidentRow, decision: Decision, now: datetime
    ) -> None:
        reasons = "; ".join(r.text for r in decision.reasons)
        self._change_severity(
            session,
            incident,
            to=decision.severity,
            reasons=_reasons(decision),
            kind=JournalKind.CHANGE,
            text=f"Severity {incident.severity} → {decision.severity.value}: {reasons}",
            actor=SYSTEM,
            now=now,
            reason=reasons,
            by_human=False,
        )

    def _raise_for(
        self, session: Session, incident: IncidentRow, evidences: list[Evidence], now: datetime
    ) -> None:
        """Raise severity for alerts that just fired or changed; never lower it.

        The other firing alerts were judged when they arrived and time-driven rises are the
        scheduler's, so only these alerts need a look, and the review time only moves earlier.
        """
        rules, hours = self._policy.severity, self._policy.hours
        decision = reevaluate(Severity(incident.severity), evidences, rules, hours, now)
        if decision is not None:
            self._raise_to(session, incident, decision, now)
        review = next_review(Severity(incident.severity), evidences, rules, hours, now)
        current = incident.severity_review_at
        if review is not None and (current is None or review < current):
            incident.severity_review_at = review
        session.add(incident)

    def _reevaluate(self, session: Session, incident: IncidentRow, now: datetime) -> None:
        """Judge every firing alert of the incident again as time has passed."""
        assert incident.id is not None
        evidences = self._firing_evidence(session, incident.id)
        rules, hours = self._policy.severity, self._policy.hours
        decision = reevaluate(Severity(incident.severity), evidences, rules, hours, now)
        if decision is not None:
            self._raise_to(session, incident, decision, now)
        incident.severity_review_at = next_review(
            Severity(incident.severity), evidences, rules, hours, now
        )
        session.add(incident)

    def _others_firing(self, session: Session, incident_id: int, fingerprints: list[str]) -> bool:
        """Return True if an alert of the incident not in `fingerprints` is still firing."""
        query = (
            select(AlertRow.id)
            .where(
                AlertRow.incident_id == incident_id,
                AlertRow.status == AlertStatus.FIRING.value,
                AlertRow.fingerprint.not_in(fingerprints),  # type: ignore[attr-defined]
            )
            .limit(1)
        )
        return session.exec(query).first() is not None

    def review_due(self, session: Session, *, limit: int = 100) -> int:
        """Re-evaluate open incidents whose severity may have risen with time; return how many."""
        now = self._clock()
        due = session.exec(
            select(IncidentRow)
            .where(
                IncidentRow.severity_review_at.is_not(None),  # type: ignore[union-attr]
                IncidentRow.severity_review_at <= now,  # type: ignore[operator]
                IncidentRow.state != IncidentState.RESOLVED.value,
            )
            .order_by(IncidentRow.severity_review_at)  # type: ignore[arg-type]
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for incident in due:
            self._reevaluate(session, incident, now)
        return len(due)

    def escalate_due(self, session: Session, *, limit: int = 100) -> int:
        """Escalate P2 incidents with no root cause after the deadline; return how many."""
        now = self._clock()
        due = session.exec(
            select(IncidentRow)
            .where(
                IncidentRow.root_cause_deadline_at.is_not(None),  # type: ignore[union-attr]
                IncidentRow.root_cause_deadline_at <= now,  # type: ignore[operator]
                IncidentRow.state != IncidentState.RESOLVED.value,
            )
            .order_by(IncidentRow.root_cause_deadline_at)  # type: ignore[arg-type]
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for incident in due:
            decision = escalate_for_missing_root_cause(
                Severity(incident.severity),
                incident.root_cause_deadline_at,
                incident.root_cause_at,
                now,
                self._policy.severity,
            )
            if decision is not None:
                self._raise_to(session, incident, decision, now)
            incident.root_cause_deadline_at = None
            session.add(incident)
        return len(due)

    # -- people acting on incidents ---------------------------------------------------------

    def _load(self, session: Session, incident_id: int) -> IncidentRow:
        incident = session.get(IncidentRow, incident_id, with_for_update=True)
        if incident is None:
            raise IncidentNotFound(incident_id)
        return incident

    def _require(self, actor: str, role: str, action: str, groups: GroupMembers) -> None:
        if not has_role(self._policy, role, actor, groups):
            raise NotAResponder(user=actor, action=action)

    def _move(
        self,
        session: Session,
        incident: IncidentRow,
        *,
        to: IncidentState,
        actor: str,
        now: datetime,
        why: str = "",
    ) -> None:
        assert incident.id is not None
        previous = incident.state
        incident.state = to.value
        incident.updated_at = now
        if to is IncidentState.RESOLVED:
            # automatic deadlines end with the incident; the group closes so a new firing opens anew
            incident.severity_review_at = None
            incident.root_cause_deadline_at = None
            session.execute(sa.delete(_GROUPS).where(_GROUPS.c.incident_id == incident.id))
        session.add(incident)
        journal.record(
            session,
            incident,
            kind=JournalKind.CHANGE,
            text=f"State {previous} → {to.value}{why}",
            author=actor,
            now=now,
        )
        journal.card_changed(session, incident, now)
        publish(
            session,
            self._listeners,
            StateChanged(
                incident=incident,
                previous=IncidentState(previous),
                current=to,
                actor=actor,
                now=now,
                why=why.lstrip(": ").rstrip("."),
            ),
        )

    def declare(
        self,
        session: Session,
        *,
        title: str,
        actor: str,
        severity: Severity | None = None,
        workflow: str | None = None,
        reason: str | None = None,
    ) -> IncidentRow:
        """Open an incident by hand; severity defaults to P3 until someone says otherwise."""
        now = self._clock()
        name = workflow if workflow and workflow in self._policy.workflows else None
        name = name or self._policy.default_workflow
        wf = self._policy.workflow(name)
        sev = severity or self._policy.severity.default
        why = f"declared {sev.value} by hand" + (f": {reason}" if reason else "")
        incident = IncidentRow(
            title=title[:500],
            workflow=name,
            category=wf.category.value,
            severity=sev.value,
            severity_reasons=[{"rule": "declared", "severity": sev.value, "text": why}],
            state=IncidentState.TRIGGERED.value,
            source=f"declared:{actor}",
            ai_context={"workflow": name},
            impact_external=wf.category.value == "customer-facing",
            slack_channel=wf.channel,
            detected_at=now,
            triggered_at=now,
            severity_changed_at=now,
            root_cause_deadline_at=root_cause_deadline(sev, now, self._policy.severity),
            created_at=now,
            updated_at=now,
        )
        session.add(incident)
        session.flush()
        journal.card_posted(session, incident, now)
        note = (
            ""
            if name == workflow or workflow is None
            else f" (workflow {workflow!r} is not defined; filed under {name!r})"
        )
        journal.record(
            session,
            incident,
            kind=JournalKind.CHANGE,
            text=f"Incident declared by {actor} as {sev.value}{note}.",
            author=actor,
            now=now,
        )
        publish(
            session,
            self._listeners,
            IncidentOpened(incident=incident, actor=actor, now=now, declared=True),
        )
        return incident

    def acknowledge(self, session: Session, *, incident_id: int, actor: str) -> IncidentRow:
        """Acknowledge: the actor becomes commander; acknowledging twice changes nothing."""
        now = self._clock()
        incident = self._load(session, incident_id)
        state = IncidentState(incident.state)
        if state is IncidentState.ACKNOWLEDGED:
            return incident
        if state is not IncidentState.TRIGGERED:
            raise InvalidTransition(incident_id, state.value, "acknowledged")
        incident.commander = actor
        incident.acknowledged_at = now
        self._move(session, incident, to=IncidentState.ACKNOWLEDGED, actor=actor, now=now)
        return incident

    def mitigate(self, session: Session, *, incident_id: int, actor: str) -> IncidentRow:
        """Record that the impact is contained."""
        now = self._clock()
        incident = self._load(session, incident_id)
        state = IncidentState(incident.state)
        if state in (IncidentState.MITIGATED, IncidentState.RESOLVED):
            raise InvalidTransition(incident_id, state.value, "mitigated")
        incident.mitigated_at = now
        incident.acknowledged_at = incident.acknowledged_at or now
        incident.commander = incident.commander or actor
        self._move(session, incident, to=IncidentState.MITIGATED, actor=actor, now=now)
        return incident

    def resolve(
        self,
        session: Session,
        *,
        incident_id: int,
        actor: str,
        summary: str | None = None,
        groups: GroupMembers = None,
    ) -> IncidentRow:
        """Resolve by hand (responders only)."""
        self._require(actor, "responders", "resolve incidents", groups)
        now = self._clock()
        incident = self._load(session, incident_id)
        if incident.state == IncidentState.RESOLVED.value:
            raise InvalidTransition(incident_id, incident.state, "resolved again")
        incident.resolved_at = now
        incident.resolved_by = actor
        incident.resolution_summary = summary
        why = f": {summary}" if summary else ""
        self._move(session, incident, to=IncidentState.RESOLVED, actor=actor, now=now, why=why)
        return incident

    def resolve_from_ticket(
        self, session: Session, *, incident_id: int, actor: str, why: str
    ) -> bool:
        """Resolve because its ticket was closed; the tracker's permissions vouch for the actor.

        Return False when the incident is resolved already (our own transition echoed back).
        """
        now = self._clock()
        incident = self._load(session, incident_id)
        if incident.state == IncidentState.RESOLVED.value:
            return False
        incident.resolved_at = now
        incident.resolved_by = actor
        incident.resolution_summary = why
        self._move(
            session, incident, to=IncidentState.RESOLVED, actor=actor, now=now, why=f": {why}"
        )
        return True

    def reopen(self, session: Session, *, incident_id: int, actor: str, reason: str) -> IncidentRow:
        """Reopen a resolved incident; a reason is required."""
        if not reason.strip():
            raise ReasonRequired("reopen an incident")
        now = self._clock()
        incident = self._load(session, incident_id)
        if incident.state != IncidentState.RESOLVED.value:
            raise InvalidTransition(incident_id, incident.state, "reopened")
        incident.resolved_at = None
        incident.resolved_by = None
        self._move(
            session, incident, to=IncidentState.TRIGGERED, actor=actor, now=now, why=f": {reason}"
        )
        return incident

    def note(
        self,
        session: Session,
        *,
        incident_id: int,
        actor: str,
        text: str,
        kind: JournalKind = JournalKind.OBSERVATION,
    ) -> int:
        """Add a journal entry written by a person; return its id."""
        incident = self._load(session, incident_id)
        return journal.record(
            session, incident, kind=kind, text=text, author=actor, now=self._clock()
        )

    def record_root_cause(
        self, session: Session, *, incident_id: int, actor: str, text: str
    ) -> IncidentRow:
        """Record the root cause; it stops the P2 → P1 clock."""
        if not text.strip():
            raise ReasonRequired("record a root cause")
        now = self._clock()
        incident = self._load(session, incident_id)
        incident.root_cause = text
        incident.root_cause_at = incident.root_cause_at or now
        incident.root_cause_deadline_at = None
        incident.updated_at = now
        session.add(incident)
        journal.record(
            session, incident, kind=JournalKind.ROOT_CAUSE, text=text, author=actor, now=now
        )
        journal.card_changed(session, incident, now)
        publish(
            session,
            self._listeners,
            RootCauseRecorded(incident=incident, text=text, actor=actor, now=now),
        )
        return incident

    def set_severity(
        self,
        session: Session,
        *,
        incident_id: int,
        actor: str,
        severity: Severity,
        reason: str,
        groups: GroupMembers = None,
    ) -> IncidentRow:
        """Change severity by hand with a reason; lowering it needs a responder."""
        if not reason.strip():
            raise ReasonRequired("change the severity")
        now = self._clock()
        incident = self._load(session, incident_id)
        old = Severity(incident.severity)
        if old == severity:
            return incident
        if is_higher(old, severity):
            self._require(actor, "responders", "lower a severity", groups)
        self._change_severity(
            session,
            incident,
            to=severity,
            reasons=[
                {"rule": "human", "severity": severity.value, "text": f"set by {actor}: {reason}"}
            ],
            kind=JournalKind.DECISION,
            text=f"Severity {old.value} → {severity.value} by {actor}: {reason}",
            actor=actor,
            now=now,
            reason=reason,
            by_human=True,
        )
        return incident

    def report(self, session: Session, *, incident_id: int, actor: str, name: str) -> IncidentRow:
        """Post the timeline or the postmortem draft in the incident's thread."""
        now = self._clock()
        incident = self._load(session, incident_id)
        journal.report(session, incident, name=name, now=now)
        if name == "postmortem":
            journal.record(
                session,
                incident,
                kind=JournalKind.ACTION,
                text=f"Postmortem draft requested by {actor}; it follows in this thread.",
                author=actor,
                now=now,
            )
            publish(
                session,
                self._listeners,
                PostmortemDrafted(incident=incident, actor=actor, now=now),
            )
        return incident

    # -- the thread is the journal ----------------------------------------------------------

    def _by_thread(self, session: Session, channel: str, thread_ts: str) -> IncidentRow | None:
        return session.exec(
            select(IncidentRow).where(
                IncidentRow.slack_channel == channel, IncidentRow.slack_ts == thread_ts
            )
        ).first()

    def capture_reply(
        self, session: Session, *, channel: str, thread_ts: str, ts: str, user: str, text: str
    ) -> int | None:
        """Store a person's reply in an incident thread as a journal entry; once per message."""
        incident = self._by_thread(session, channel, thread_ts)
        if incident is None or incident.id is None:
            return None
        existing = session.exec(
            select(JournalRow.id).where(
                JournalRow.incident_id == incident.id, JournalRow.slack_ts == ts
            )
        ).first()
        if existing is not None:
            return existing
        kind, text = journal_kind_of(text)
        entry = JournalRow(
            incident_id=incident.id,
            kind=kind.value,
            text=text,
            author=user,
            via="slack",
            created_at=self._clock(),
            slack_ts=ts,
        )
        try:
            with session.begin_nested():
                session.add(entry)
        except IntegrityError:
            # the same event delivered twice at once: the other delivery stored it
            return None
        return entry.id

    def _captured(self, session: Session, channel: str, ts: str) -> JournalRow | None:
        return session.exec(
            select(JournalRow)
            .join(IncidentRow, IncidentRow.id == JournalRow.incident_id)  # type: ignore[arg-type]
            .where(
                IncidentRow.slack_channel == channel,
                JournalRow.slack_ts == ts,
                JournalRow.via == "slack",
            )
        ).first()

    def capture_edit(self, session: Session, *, channel: str, ts: str, text: str) -> bool:
        """Reflect an edited thread reply, keeping the previous text."""
        entry = self._captured(session, channel, ts)
        if entry is None or entry.text == text:
            return False
        entry.previous_text = entry.text
        entry.text = text
        entry.edited_at = self._clock()
        session.add(entry)
        return True

    def capture_delete(self, session: Session, *, channel: str, ts: str) -> bool:
        """Mark a deleted thread reply as deleted; the entry itself is kept."""
        entry = self._captured(session, channel, ts)
        if entry is None or entry.deleted_at is not None:
            return False
        entry.deleted_at = self._clock()
        session.add(entry)
        return True

    def count_open(self, session: Session) -> int:
        """Return the number of open incidents."""
        return int(
            session.execute(
                sa.select(sa.func.count())
                .select_from(IncidentRow)
                .where(sa.column("state") != IncidentState.RESOLVED.value)
            ).scalar_one()
        )
