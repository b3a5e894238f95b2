"""Normalised alerts and the pure decisions of grouping (§4)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.domain.severity import Evidence

__all__ = [
    "AI_CONTEXT_KEYS",
    "AlertIn",
    "AlertStatus",
    "GroupPlan",
    "KnownAlert",
    "Link",
    "Notification",
    "content_digest",
    "group_id",
    "merge_ai_context",
    "plan_group",
]

AI_CONTEXT_KEYS: tuple[str, ...] = (
    "request_id",
    "trace_id",
    "workflow",
    "agent.id",
    "agent.version",
    "prompt_version",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "cost_usd",
    "latency_ms",
    "confidence",
)


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class AlertIn:
    """One alert as received, whatever the sender's format."""

    fingerprint: str
    status: AlertStatus
    title: str
    description: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str | None = None
    workflow: str | None = None
    evidence: Evidence = field(default_factory=Evidence)
    ai_context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """One delivery from a sender: a group key and the alerts it carries."""

    source: str
    group_key: str
    title: str
    alerts: tuple[AlertIn, ...]
    workflow: str | None = None
    reason: str | None = None
    truncated_alerts: int = 0
    external_url: str | None = None


@dataclass(frozen=True)
class KnownAlert:
    """What storage already holds about an alert of the group."""

    fingerprint: str
    status: AlertStatus
    ends_at: datetime | None
    digest: str = ""


@dataclass(frozen=True)
class GroupPlan:
    """What a notification changes in an open group."""

    new: tuple[AlertIn, ...]
    changed: tuple[AlertIn, ...]
    refired: tuple[AlertIn, ...]
    newly_resolved: tuple[AlertIn, ...]
    all_resolved: bool
    updated: tuple[AlertIn, ...] = ()

    @property
    def is_noop(self) -> bool:
        """Return True for a duplicate: nothing new, nothing changed."""
        return not (self.new or self.changed)


def group_id(source: str, group_key: str) -> str:
    """Return the storage key of an alert group (fixed length, any group key)."""
    return hashlib.sha256(f"{source}\0{group_key}".encode()).hexdigest()[:64]


def content_digest(alert: AlertIn) -> str:
    """Return a digest of what an alert says besides its status, to tell updates from repeats."""
    ev = alert.evidence
    sig = ev.signal
    content = json.dumps(
        [
            sorted(alert.labels.items()),
            sorted(alert.annotations.items()),
            sorted((k, str(v)) for k, v in alert.values.items()),
            alert.description,
            None
            if sig is None
            else [sig.kind, sig.value, sig.threshold, sig.baseline, sig.stddev, str(sig.window)],
            [
                ev.delivered_externally,
                ev.acted_upon,
                ev.customer_facing,
                ev.harmful_output,
                ev.hint,
            ],
            sorted((k, str(v)) for k, v in alert.ai_context.items()),
        ],
        default=str,
    )
    return hashlib.sha256(content.encode()).hexdigest()[:32]


def plan_group(known: Sequence[KnownAlert], incoming: Sequence[AlertIn]) -> GroupPlan:
    """Compare a notification with what is stored; duplicates change nothing."""
    by_fp = {k.fingerprint: k for k in known}
    latest: dict[str, AlertIn] = {}
    for alert in incoming:
        latest[alert.fingerprint] = alert
    new: list[AlertIn] = []
    changed: list[AlertIn] = []
    refired: list[AlertIn] = []
    newly_resolved: list[AlertIn] = []
    updated: list[AlertIn] = []
    statuses = {k.fingerprint: k.status for k in known}
    for fp, alert in latest.items():
        old = by_fp.get(fp)
        if old is None:
            new.append(alert)
        elif old.status != alert.status:
            changed.append(alert)
            if alert.status is AlertStatus.RESOLVED:
                newly_resolved.append(alert)
            else:
                refired.append(alert)
        elif alert.status is AlertStatus.RESOLVED and alert.ends_at != old.ends_at:
            changed.append(alert)
        elif old.digest and content_digest(alert) != old.digest:
            # same status, new content: a generic alert re-sent with a new value, say
            changed.append(alert)
            updated.append(alert)
        statuses[fp] = alert.status
    all_resolved = bool(statuses) and all(s is AlertStatus.RESOLVED for s in statuses.values())
    return GroupPlan(
        tuple(new),
        tuple(changed),
        tuple(refired),
        tuple(newly_resolved),
        all_resolved,
        tuple(updated),
    )


def merge_ai_context(current: Mapping[str, Any], alerts: Sequence[AlertIn]) -> dict[str, Any]:
    """Merge the AI context of alerts into the incident's: the newest value of each key wins."""
    merged = dict(current)
    for alert in alerts:
        for key, value in alert.ai_context.items():
            if value is not None and value != "":
                merged[key] = value
    return merged
