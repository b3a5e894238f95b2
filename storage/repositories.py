"""Rows to read models."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from bot.domain.incidents import format_incident_id
from bot.domain.views import AlertView, IncidentView, JournalView, PageView
from bot.domain.watch.changes import CHANGE_WINDOW
from storage.models import AlertRow, IncidentRow, JournalRow, PageRow
from storage.watch import changes as watch_changes

__all__ = ["incident_view", "journal_views", "page_views"]

_ALERTS: sa.Table = AlertRow.__table__  # type: ignore[attr-defined]
# a change seen the moment the incident was filed is one before it
_INSTANT = timedelta(microseconds=1)


def journal_views(
    session: Session, incident_id: int, ids: list[int] | None = None
) -> list[JournalView]:
    """Return journal entries of an incident in order, optionally only the given ids."""
    query = select(JournalRow).where(JournalRow.incident_id == incident_id)
    if ids is not None:
        query = query.where(JournalRow.id.in_(ids))  # type: ignore[union-attr]
    rows = session.exec(query.order_by(JournalRow.id)).all()  # type: ignore[arg-type]
    return [
        JournalView(
            id=r.id or 0,
            kind=r.kind,
            text=r.text,
            author=r.author,
            via=r.via,
            created_at=r.created_at,
            edited_at=r.edited_at,
            previous_text=r.previous_text,
            deleted_at=r.deleted_at,
        )
        for r in rows
    ]


def incident_view(
    session: Session, incident_id: int, *, with_journal: bool = True, with_alerts: bool = True
) -> IncidentView | None:
    """Return the full read model of an incident, or None if there is none with that id."""
    inc = session.get(IncidentRow, incident_id)
    if inc is None or inc.id is None:
        return None
    counts = dict(
        session.execute(
            sa.select(_ALERTS.c.status, sa.func.count())
            .where(_ALERTS.c.incident_id == inc.id)
            .group_by(_ALERTS.c.status)
        ).all()
    )
    alerts = (
        session.exec(
            select(AlertRow).where(AlertRow.incident_id == inc.id).order_by(AlertRow.id)  # type: ignore[arg-type]
        ).all()
        if with_alerts
        else []
    )
    return IncidentView(
        id=inc.id,
        public_id=format_incident_id(inc.id),
        title=inc.title,
        workflow=inc.workflow,
        category=inc.category,
        severity=inc.severity,
        severity_reasons=list(inc.severity_reasons),
        state=inc.state,
        source=inc.source,
        commander=inc.commander,
        ai_context=dict(inc.ai_context),
        jira_key=inc.jira_key,
        jira_url=inc.jira_url,
        slack_channel=inc.slack_channel,
        slack_ts=inc.slack_ts,
        root_cause=inc.root_cause,
        resolved_by=inc.resolved_by,
        milestones={
            "detected": inc.detected_at,
            "triggered": inc.triggered_at,
            "acknowledged": inc.acknowledged_at,
            "mitigated": inc.mitigated_at,
            "resolved": inc.resolved_at,
            "root_cause_found": inc.root_cause_at,
        },
        alerts_firing=int(counts.get("firing", 0)),
        alerts_total=int(sum(counts.values())),
        alerts=[
            AlertView(
                fingerprint=a.fingerprint,
                status=a.status,
                title=a.title,
                description=a.description,
                labels=dict(a.labels),
                annotations=dict(a.annotations),
                links=list(a.links),
                values=dict(a.values),
                signal=a.signal,
                starts_at=a.starts_at,
                ends_at=a.ends_at,
                first_seen_at=a.first_seen_at,
            )
            for a in alerts
        ],
        journal=journal_views(session, inc.id) if with_journal else [],
        resolution_summary=inc.resolution_summary,
        impact_external=inc.impact_external,
        pages=page_views(session, inc.id) if with_journal else [],
        # from 24 h before it began until it was filed
        changes=watch_changes(
            session,
            workflows=[inc.workflow],
            since=inc.detected_at - CHANGE_WINDOW,
            until=inc.triggered_at + _INSTANT,
        ),
    )


def page_views(session: Session, incident_id: int) -> list[PageView]:
    """Return the pages sent for an incident, oldest first."""
    rows = session.exec(
        select(PageRow).where(PageRow.incident_id == incident_id).order_by(PageRow.id)  # type: ignore[arg-type]
    ).all()
    return [
        PageView(
            person=r.person,
            channel=r.channel,
            reason=r.reason,
            status=r.status,
            error=r.error,
            created_at=r.created_at,
            sent_at=r.sent_at,
        )
        for r in rows
    ]
