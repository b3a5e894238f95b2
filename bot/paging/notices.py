"""The pages a decision sends: a fired escalation step, the AI lead's notice, the founder's.

Each writes page records, outbox rows and a journal entry in the caller's transaction; the
keys make writing the same pages twice write them once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, select

from bot.domain.incidents import IncidentState
from bot.domain.severity import Severity
from bot.paging.channels import CHANNEL_LABELS
from bot.paging.escalation import (
    Contact,
    Fire,
    Snapshot,
    contact_in,
    resolve_targets,
    split_members,
)
from bot.paging.policy import PagingPolicy
from bot.paging.rows import note, on_call_now
from storage.models import EscalationRow, IncidentRow, PageRow
from storage.pages import queue_mention, queue_pages

__all__ = ["fire_step", "founder_reached", "labels", "names", "notify_ai_lead", "notify_founder"]


def labels(channels: Sequence[str]) -> str:
    """Return channels in words: "Slack DM, PagerDuty"."""
    return ", ".join(CHANNEL_LABELS.get(c, c) for c in channels)


def names(contacts: Sequence[Contact]) -> str:
    return ", ".join(c.label for c in contacts)


def _who(contacts: Sequence[Contact], groups: Sequence[str]) -> list[str]:
    return [c.label for c in contacts] + [f"user group {g}" for g in groups]


def fire_step(
    session: Session,
    policy: PagingPolicy,
    incident: IncidentRow,
    row: EscalationRow,
    snapshot: Snapshot,
    due: Fire,
    now: datetime,
) -> set[str]:
    """Page everyone the due step reaches; return the people sent a Slack DM."""
    assert incident.id is not None

    def on_call(name: str) -> str | None:
        return on_call_now(session, name, snapshot.schedules[name], snapshot.timezone, now)

    reach = resolve_targets(snapshot, due.step.targets, on_call)
    contacts = [contact_in(policy, p, snapshot) for p in reach.people]
    where = due.describe(snapshot)
    why = f"escalation {where} of policy {snapshot.policy}"
    key_base = f"page:{incident.id}:{row.run}.{due.round}.{due.index}"
    queue_pages(
        session,
        incident_id=incident.id,
        contacts=contacts,
        groups=reach.groups,
        channels=due.step.channels,
        reason="escalation",
        why=why,
        key_base=key_base,
        now=now,
        run=row.run,
        round_=due.round,
        step=due.index,
    )
    who = _who(contacts, reach.groups)
    if who:
        text = f"Escalation {where}: paging {', '.join(who)} via {labels(due.step.channels)}."
    else:
        text = f"Escalation {where}: nobody to page."
    if reach.gaps:
        text += " " + "; ".join(reach.gaps).capitalize() + "."
    note(session, incident, text, now)
    founders = set(snapshot.roles.get("founder", ()))
    if founders & {c.person for c in contacts}:
        row.founder_due_at = None
    return {c.person for c in contacts} if "slack_dm" in due.step.channels else set()


def notify_ai_lead(
    session: Session,
    policy: PagingPolicy,
    incident: IncidentRow,
    snapshot: Snapshot,
    sev: Severity,
    now: datetime,
    *,
    skip: set[str],
) -> None:
    """Slack DM to the AI lead and a mention in the thread, once per severity reached."""
    assert incident.id is not None
    leads = snapshot.roles.get("ai_lead", ())
    people, groups = split_members(leads)
    contacts = [contact_in(policy, p, snapshot) for p in people]
    key = f"notify:{incident.id}:{sev.value}"
    if not leads:
        return
    queued = queue_mention(
        session,
        incident_id=incident.id,
        users=[c.slack_id for c in contacts if c.slack_id],
        groups=groups,
        severity=sev.value,
        key=f"{key}:thread",
        now=now,
    )
    if not queued:
        return  # notified at this severity already
    why = f"{sev.value}: you are notified as the AI lead"
    queue_pages(
        session,
        incident_id=incident.id,
        contacts=[c for c in contacts if c.person not in skip],
        groups=groups,
        channels=["slack_dm"],
        reason="notify",
        why=why,
        key_base=key,
        now=now,
        stop_if_handled=False,
    )
    note(
        session,
        incident,
        f"{sev.value}: the AI lead ({', '.join(_who(contacts, groups))}) is notified by Slack DM "
        "and mentioned here.",
        now,
    )


def founder_reached(session: Session, incident: IncidentRow, snapshot: Snapshot) -> bool:
    """Return True if a founder was paged for the incident already (queued or sent)."""
    founders, _ = split_members(snapshot.roles.get("founder", ()))
    if not founders:
        return False
    found = session.exec(
        select(PageRow.id)
        .where(
            PageRow.incident_id == incident.id,
            PageRow.person.in_(founders),  # type: ignore[attr-defined]
            PageRow.status.in_(("queued", "sent")),  # type: ignore[attr-defined]
        )
        .limit(1)
    ).first()
    return found is not None


def notify_founder(
    session: Session,
    policy: PagingPolicy,
    incident: IncidentRow,
    row: EscalationRow,
    snapshot: Snapshot,
    now: datetime,
) -> None:
    """Page the founder of a P1 with external impact still unresolved after two hours."""
    assert incident.id is not None
    row.founder_due_at = None
    if incident.state == IncidentState.RESOLVED.value:
        return
    if founder_reached(session, incident, snapshot):
        return
    people, groups = split_members(snapshot.roles.get("founder", ()))
    contacts = [contact_in(policy, m, snapshot) for m in people]
    channels = policy.paging.person_channels()
    why = "P1 with external impact, unresolved after two hours: you are notified as founder"
    key_base = f"founder:{incident.id}:{row.run}"
    queue_pages(
        session,
        incident_id=incident.id,
        contacts=contacts,
        groups=groups,
        channels=channels,
        reason="founder",
        why=why,
        key_base=key_base,
        now=now,
        stop_if_handled=False,
    )
    note(
        session,
        incident,
        "P1 with external impact unresolved for two hours: notifying the founder "
        f"({', '.join(_who(contacts, groups))}) via {labels(channels)}.",
        now,
    )
