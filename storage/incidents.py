"""The incident repository: rows <-> `Incident` snapshots, and the queries of the use cases.

Every function works inside the caller's transaction. Writing a snapshot back touches only the
fields the decision changed, so columns others own (the ticket, the thread) are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.domain.alerts import AlertIn, AlertStatus, GroupPlan, KnownAlert, content_digest
from bot.domain.incidents import Incident, IncidentState
from bot.domain.numbers import number
from bot.domain.severity import Evidence, Reason, Severity, Signal
from storage.models import AlertGroupRow, AlertRow, IncidentRow, JournalRow

__all__ = [
    "KnownAlerts",
    "add_alerts",
    "add_group",
    "add_reply",
    "by_thread",
    "captured",
    "close_group",
    "count_open",
    "due_for_escalation",
    "due_for_review",
    "evidence_from_row",
    "firing_evidence",
    "insert",
    "known_alerts",
    "lock",
    "lock_group",
    "others_firing",
    "reply_id",
    "save",
    "snapshot",
    "update_alerts",
]

_ALERTS: sa.Table = AlertRow.__table__  # type: ignore[attr-defined]
_GROUPS: sa.Table = AlertGroupRow.__table__  # type: ignore[attr-defined]

# snapshot fields stored as they are; severity, state and reasons are converted
_PLAIN = tuple(
    f.name
    for f in fields(Incident)
    if f.name not in ("id", "severity", "state", "severity_reasons", "ai_context")
)


# -- rows <-> snapshots -----------------------------------------------------------------------


def _reason(stored: dict[str, Any], fallback: Severity) -> Reason:
    return Reason(
        rule=str(stored.get("rule", "")),
        severity=Severity(stored.get("severity") or fallback),
        text=str(stored.get("text", "")),
    )


def _stored_reasons(reasons: Sequence[Reason]) -> list[dict[str, Any]]:
    return [{"rule": r.rule, "severity": r.severity.value, "text": r.text} for r in reasons]


def snapshot(row: IncidentRow) -> Incident:
    """Return the lifecycle's view of an incident row."""
    severity = Severity(row.severity)
    return Incident(
        id=row.id,
        severity=severity,
        state=IncidentState(row.state),
        severity_reasons=tuple(_reason(r, severity) for r in row.severity_reasons),
        ai_context=dict(row.ai_context),
        **{name: getattr(row, name) for name in _PLAIN},
    )


def _columns(incident: Incident) -> dict[str, Any]:
    values = {name: getattr(incident, name) for name in _PLAIN}
    values.update(
        severity=incident.severity.value,
        state=incident.state.value,
        severity_reasons=_stored_reasons(incident.severity_reasons),
        ai_context=dict(incident.ai_context),
    )
    return values


def save(session: Session, row: IncidentRow, before: Incident, after: Incident) -> None:
    """Write the fields that changed from `before` to `after` onto the row."""
    if before == after:
        return
    old, new = _columns(before), _columns(after)
    for name, value in new.items():
        if old[name] != value:
            setattr(row, name, value)
    session.add(row)


def insert(session: Session, incident: Incident) -> IncidentRow:
    """Store a new incident and return its row, with its id."""
    row = IncidentRow(**_columns(incident))
    session.add(row)
    session.flush()
    return row


def lock(session: Session, incident_id: int) -> IncidentRow | None:
    """Return the incident row, locked for this transaction, or None."""
    return session.get(IncidentRow, incident_id, with_for_update=True)


def _due(session: Session, column: Any, now: datetime, limit: int) -> Sequence[IncidentRow]:
    return session.exec(
        select(IncidentRow)
        .where(
            column.is_not(None),
            column <= now,
            IncidentRow.state != IncidentState.RESOLVED.value,
        )
        .order_by(column)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def due_for_review(session: Session, now: datetime, limit: int) -> Sequence[IncidentRow]:
    """Lock open incidents whose severity review time has come, earliest first."""
    return _due(session, IncidentRow.severity_review_at, now, limit)


def due_for_escalation(session: Session, now: datetime, limit: int) -> Sequence[IncidentRow]:
    """Lock open incidents whose root-cause deadline has passed, earliest first."""
    return _due(session, IncidentRow.root_cause_deadline_at, now, limit)


def count_open(session: Session) -> int:
    """Return the number of open incidents."""
    return int(
        session.execute(
            sa.select(sa.func.count())
            .select_from(IncidentRow)
            .where(sa.column("state") != IncidentState.RESOLVED.value)
        ).scalar_one()
    )


# -- alert groups -----------------------------------------------------------------------------


def lock_group(session: Session, key: str) -> AlertGroupRow | None:
    """Return the open alert group of that key, locked, or None."""
    return session.exec(
        select(AlertGroupRow).where(AlertGroupRow.key == key).with_for_update()
    ).first()


def add_group(
    session: Session, *, key: str, incident_id: int, source: str, group_key: str, now: datetime
) -> None:
    """Open an alert group; its primary key makes a second opener fail."""
    session.add(
        AlertGroupRow(
            key=key, incident_id=incident_id, source=source, group_key=group_key, opened_at=now
        )
    )
    session.flush()


def close_group(session: Session, incident_id: int) -> None:
    """Close the incident's alert group, so a new firing opens a new incident."""
    session.execute(sa.delete(_GROUPS).where(_GROUPS.c.incident_id == incident_id))


# -- alerts -----------------------------------------------------------------------------------


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
        "watched": None
        if e.watched is None
        else {
            "rule": e.watched.rule,
            "severity": e.watched.severity.value,
            "text": e.watched.text,
        },
        "trusted_timing": e.trusted_timing,
        "reported_by": e.reported_by,
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
        watched=_watched(ev.get("watched")),
        seen_since=row.firing_seen_at or row.first_seen_at,
        trusted_timing=bool(ev.get("trusted_timing")),
        reported_by=ev.get("reported_by"),
    )


def _watched(value: Any) -> Reason | None:
    if not isinstance(value, dict):
        return None
    try:
        return Reason(str(value["rule"]), Severity(value["severity"]), str(value["text"]))
    except (KeyError, ValueError):
        return None


def add_alerts(
    session: Session, incident_id: int, alerts: Sequence[AlertIn], now: datetime
) -> None:
    """Store new alerts of an incident."""
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
                "firing_seen_at": now if a.status is AlertStatus.FIRING else None,
            }
            for a in alerts
        ],
    )


class _Held(NamedTuple):
    id: int
    starts_at: datetime | None
    firing_seen_at: datetime | None


class KnownAlerts(NamedTuple):
    """The stored alerts a notification names: what planning needs, and their rows' ids."""

    known: list[KnownAlert]
    held: dict[str, _Held]

    def seen_firing(self) -> dict[str, datetime]:
        """Return when the bot first saw each of these alerts firing, where it has."""
        return {fp: h.firing_seen_at for fp, h in self.held.items() if h.firing_seen_at}


def known_alerts(session: Session, incident_id: int, fingerprints: Sequence[str]) -> KnownAlerts:
    """Return the incident's alerts of these fingerprints, only the columns planning needs."""
    # no ORM objects and only the alerts named: the cost must not grow with the incident
    rows = list(
        session.execute(
            sa.select(_ALERTS.c.id, _ALERTS.c.fingerprint, _ALERTS.c.status)
            .add_columns(_ALERTS.c.ends_at, _ALERTS.c.digest, _ALERTS.c.starts_at)
            .add_columns(_ALERTS.c.firing_seen_at)
            .where(
                _ALERTS.c.incident_id == incident_id,
                _ALERTS.c.fingerprint.in_(fingerprints),
            )
        )
    )
    by_fp = {r.fingerprint: r for r in rows}
    return KnownAlerts(
        known=[
            KnownAlert(fp, AlertStatus(r.status), r.ends_at, r.digest) for fp, r in by_fp.items()
        ],
        held={fp: _Held(r.id, r.starts_at, r.firing_seen_at) for fp, r in by_fp.items()},
    )


def update_alerts(session: Session, held: KnownAlerts, plan: GroupPlan, now: datetime) -> None:
    """Store the new content of the alerts the plan changed; a refired alert starts again."""
    for a in plan.changed:
        row = held.held[a.fingerprint]
        refired = a in plan.refired
        starts_at = (a.starts_at or now) if refired else row.starts_at
        # the bot's own clock: a refire is seen now, an alert still firing keeps when it was seen
        seen = now if refired else sa.func.coalesce(_ALERTS.c.firing_seen_at, now)
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
                firing_seen_at=seen,
            )
        )


def others_firing(session: Session, incident_id: int, fingerprints: Sequence[str]) -> bool:
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


def firing_evidence(session: Session, incident_id: int) -> list[Evidence]:
    """Return the evidence of every firing alert of the incident."""
    rows = session.exec(
        select(AlertRow).where(AlertRow.incident_id == incident_id, AlertRow.status == "firing")
    ).all()
    return [evidence_from_row(r) for r in rows]


# -- the thread is the journal ----------------------------------------------------------------


def by_thread(session: Session, channel: str, thread_ts: str) -> IncidentRow | None:
    """Return the incident whose card starts that thread, or None."""
    return session.exec(
        select(IncidentRow).where(
            IncidentRow.slack_channel == channel, IncidentRow.slack_ts == thread_ts
        )
    ).first()


def reply_id(session: Session, incident_id: int, ts: str) -> int | None:
    """Return the id of the journal entry captured from that message, or None."""
    return session.exec(
        select(JournalRow.id).where(
            JournalRow.incident_id == incident_id, JournalRow.slack_ts == ts
        )
    ).first()


def add_reply(session: Session, entry: JournalRow) -> int | None:
    """Store a captured reply; return None if the same message was stored meanwhile."""
    try:
        with session.begin_nested():
            session.add(entry)
    except IntegrityError:
        # the same event delivered twice at once: the other delivery stored it
        return None
    return entry.id


def captured(session: Session, channel: str, ts: str) -> JournalRow | None:
    """Return the journal entry captured from a thread message, or None."""
    return session.exec(
        select(JournalRow)
        .join(IncidentRow, IncidentRow.id == JournalRow.incident_id)  # type: ignore[arg-type]
        .where(
            IncidentRow.slack_channel == channel,
            JournalRow.slack_ts == ts,
            JournalRow.via == "slack",
        )
    ).first()
