"""Read models of an incident for cards, exports and the journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.domain.watch.history import Change

__all__ = ["AlertView", "IncidentView", "JournalView", "PageView"]


@dataclass(frozen=True)
class AlertView:
    fingerprint: str
    status: str
    title: str
    description: str | None
    labels: dict[str, Any]
    annotations: dict[str, Any]
    links: list[dict[str, Any]]
    values: dict[str, Any]
    signal: dict[str, Any] | None
    starts_at: datetime | None
    ends_at: datetime | None
    first_seen_at: datetime


@dataclass(frozen=True)
class JournalView:
    id: int
    kind: str
    text: str
    author: str
    via: str
    created_at: datetime
    edited_at: datetime | None = None
    previous_text: str | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class PageView:
    """One page sent (or tried) for an incident."""

    person: str
    channel: str
    reason: str
    status: str
    error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class IncidentView:
    id: int
    public_id: str
    title: str
    workflow: str
    category: str
    severity: str
    severity_reasons: list[dict[str, Any]]
    state: str
    source: str
    commander: str | None
    ai_context: dict[str, Any]
    jira_key: str | None
    jira_url: str | None
    slack_channel: str | None
    slack_ts: str | None
    root_cause: str | None
    resolved_by: str | None
    milestones: dict[str, datetime | None]
    alerts_firing: int = 0
    alerts_total: int = 0
    alerts: list[AlertView] = field(default_factory=list)
    journal: list[JournalView] = field(default_factory=list)
    # the kill switch of the incident's workflow, filled in where it is known
    workflow_paused: bool = False
    resolution_summary: str | None = None
    impact_external: bool = False
    pages: list[PageView] = field(default_factory=list)
    # the workflow's changes of model or prompt version in the 24 h before the incident
    changes: list[Change] = field(default_factory=list)
