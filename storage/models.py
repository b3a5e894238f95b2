"""SQLModel tables: incidents, alerts, groups, journal, outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from bot.domain.numbers import finite_json

__all__ = [
    "AlertGroupRow",
    "AlertRow",
    "DigestRunRow",
    "EscalationRow",
    "HandoffRow",
    "IncidentRow",
    "JournalRow",
    "OnCallOverrideRow",
    "OutboxRow",
    "PageRow",
    "StandardJSON",
    "SwitchAuditRow",
    "UTCDateTime",
    "WorkflowSwitchRow",
    "metadata",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Store UTC instants as naive UTC; hand back tz-aware datetimes on every backend."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class StandardJSON(TypeDecorator[Any]):
    """A JSON column that holds standard JSON only: NaN and ±Infinity are stored by name.

    PostgreSQL's `json` refuses the bare tokens Python would write, and SQLite would keep them
    for `export` to print as invalid JSON. Rows written before this read back the same way.
    """

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return finite_json(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return finite_json(value)


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=sa.Column(StandardJSON(), nullable=False))


class IncidentRow(SQLModel, table=True):
    __tablename__ = "incident"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=500)
    workflow: str = Field(max_length=200, index=True)
    category: str = Field(max_length=40)
    severity: str = Field(max_length=2)
    severity_reasons: list[dict[str, Any]] = _json(list)
    state: str = Field(max_length=20, index=True)
    source: str = Field(max_length=100)
    group_key: str | None = Field(default=None, max_length=64, index=True)
    commander: str | None = Field(default=None, max_length=100)
    ai_context: dict[str, Any] = _json(dict)
    impact_external: bool = False
    jira_key: str | None = Field(default=None, max_length=50, index=True)
    jira_url: str | None = Field(default=None, max_length=500)
    # the Jira user the ticket was last assigned to (by us or in Jira), to tell an echo from news
    jira_assignee: str | None = Field(default=None, max_length=200)
    # whether the ticket carries the Slack thread link (in its description or a later comment)
    jira_thread_linked: bool = False
    slack_channel: str | None = Field(default=None, max_length=40)
    slack_ts: str | None = Field(default=None, max_length=40)
    root_cause: str | None = None
    resolved_by: str | None = Field(default=None, max_length=100)
    resolution_summary: str | None = None
    detected_at: datetime = _ts(nullable=False)
    triggered_at: datetime = _ts(nullable=False, index=True)
    acknowledged_at: datetime | None = _ts()
    mitigated_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts(index=True)
    root_cause_at: datetime | None = _ts()
    severity_changed_at: datetime = _ts(nullable=False)
    severity_review_at: datetime | None = _ts(index=True)
    root_cause_deadline_at: datetime | None = _ts(index=True)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class AlertGroupRow(SQLModel, table=True):
    """One row per open alert group; its primary key makes opening a group race-free."""

    __tablename__ = "alert_group"

    key: str = Field(primary_key=True, max_length=64)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    source: str = Field(max_length=100)
    group_key: str
    opened_at: datetime = _ts(nullable=False)


class AlertRow(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (
        sa.UniqueConstraint("incident_id", "fingerprint", name="uq_alert_incident_fp"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    fingerprint: str = Field(max_length=200)
    status: str = Field(max_length=10)
    digest: str = Field(default="", max_length=64)
    title: str = Field(max_length=500)
    description: str | None = None
    labels: dict[str, Any] = _json(dict)
    annotations: dict[str, Any] = _json(dict)
    links: list[dict[str, Any]] = _json(list)
    values: dict[str, Any] = _json(dict)
    signal: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(StandardJSON(), nullable=True)
    )
    evidence: dict[str, Any] = _json(dict)
    ai_context: dict[str, Any] = _json(dict)
    generator_url: str | None = None
    starts_at: datetime | None = _ts()
    ends_at: datetime | None = _ts()
    first_seen_at: datetime = _ts(nullable=False)
    last_seen_at: datetime = _ts(nullable=False, index=True)
    resolved_at: datetime | None = _ts()
    # when the bot itself first saw the current firing: a refire starts it again
    firing_seen_at: datetime | None = _ts()


class JournalRow(SQLModel, table=True):
    __tablename__ = "journal_entry"
    __table_args__ = (
        # a person's Slack message is captured once, however often Slack delivers the event
        sa.Index(
            "uq_journal_slack_message",
            "incident_id",
            "slack_ts",
            unique=True,
            sqlite_where=sa.text("via = 'slack'"),
            postgresql_where=sa.text("via = 'slack'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    kind: str = Field(max_length=20)
    text: str
    author: str = Field(max_length=100)
    via: str = Field(default="bot", max_length=20)
    created_at: datetime = _ts(nullable=False)
    edited_at: datetime | None = _ts()
    previous_text: str | None = None
    deleted_at: datetime | None = _ts()
    slack_ts: str | None = Field(default=None, max_length=40, index=True)


class OutboxRow(SQLModel, table=True):
    """A side effect recorded with the state change that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    idempotency_key: str = Field(max_length=200, unique=True)
    ordering_key: str = Field(max_length=100, index=True)
    coalesce_key: str | None = Field(default=None, max_length=200, index=True)
    incident_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = _json(dict)
    status: str = Field(default="pending", max_length=12)
    attempts: int = 0
    next_attempt_at: datetime = _ts(nullable=False)
    lease_until: datetime | None = _ts()
    last_error: str | None = None
    result: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(StandardJSON(), nullable=True)
    )
    created_at: datetime = _ts(nullable=False)
    delivered_at: datetime | None = _ts()


class WorkflowSwitchRow(SQLModel, table=True):
    """The kill switch of one workflow; no row means the policy file's default holds."""

    __tablename__ = "workflow_switch"

    workflow: str = Field(primary_key=True, max_length=200)
    enabled: bool
    reason: str | None = None
    changed_by: str = Field(max_length=100)
    changed_at: datetime = _ts(nullable=False)
    version: int = 1


class SwitchAuditRow(SQLModel, table=True):
    """Every flip of a kill switch: who, when, old → new, why, from where."""

    __tablename__ = "switch_audit"

    id: int | None = Field(default=None, primary_key=True)
    workflow: str = Field(max_length=200, index=True)
    old_enabled: bool
    new_enabled: bool
    actor: str = Field(max_length=100)
    reason: str | None = None
    via: str = Field(max_length=20)
    incident_id: int | None = None
    at: datetime = _ts(nullable=False)


class DigestRunRow(SQLModel, table=True):
    """One weekly digest per period and channel; the unique key makes posting it exactly once."""

    __tablename__ = "digest_run"
    __table_args__ = (sa.UniqueConstraint("period", "channel", name="uq_digest_period_channel"),)

    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(max_length=10)
    channel: str = Field(max_length=40)
    scheduled_for: datetime = _ts(nullable=False)
    claimed_at: datetime = _ts(nullable=False)
    late: bool = False
    status: str = Field(default="queued", max_length=12)
    slack_ts: str | None = Field(default=None, max_length=40)
    posted_at: datetime | None = _ts()
    chart: str | None = Field(default=None, max_length=20)
    chart_error: str | None = None


class EscalationRow(SQLModel, table=True):
    """One per incident: the policy snapshot taken when it opened and where paging stands.

    `status`: idle (nothing to page yet), active (the step `step` of round `round` fires at
    `next_at`), stopped (acknowledged, resolved or lowered), exhausted (nobody answered).
    `run` counts how often paging started, so a restart's pages never reuse an earlier key.
    """

    __tablename__ = "escalation"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", unique=True)
    policy: str = Field(max_length=200)
    snapshot: dict[str, Any] = _json(dict)
    status: str = Field(default="idle", max_length=12)
    run: int = 0
    step: int = 0
    round: int = 0
    next_at: datetime | None = _ts(index=True)
    business_hours_only: bool = False
    founder_due_at: datetime | None = _ts(index=True)
    reason: str | None = None
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class OnCallOverrideRow(SQLModel, table=True):
    """Someone on call from `starts_at` to `ends_at`, in one schedule or (NULL) in every one."""

    __tablename__ = "oncall_override"

    id: int | None = Field(default=None, primary_key=True)
    schedule: str | None = Field(default=None, max_length=200, index=True)
    person: str = Field(max_length=100)
    starts_at: datetime = _ts(nullable=False)
    ends_at: datetime = _ts(nullable=False, index=True)
    created_by: str = Field(max_length=100)
    created_at: datetime = _ts(nullable=False)


class PageRow(SQLModel, table=True):
    """One page to one person through one channel, and what became of it."""

    __tablename__ = "page"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    reason: str = Field(max_length=20)
    run: int | None = None
    round: int | None = None
    step: int | None = None
    person: str = Field(max_length=100)
    channel: str = Field(max_length=20)
    status: str = Field(default="queued", max_length=12)
    error: str | None = None
    created_at: datetime = _ts(nullable=False)
    sent_at: datetime | None = _ts()


class HandoffRow(SQLModel, table=True):
    """A piece of work an AI agent handed to humans (§8); `id` is the number in `HO-<n>`.

    The decision columns (`decision`, `confidence_band`, `tier`, `received_at`, `claimed_at`,
    `decided_at`, `sla_*_breached`) are the feedback the digest reads.
    """

    __tablename__ = "handoff"
    __table_args__ = (
        sa.Index("ix_handoff_open", "status", "received_at"),
        sa.Index("ix_handoff_lease", "status", "lease_until"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    source: str = Field(max_length=100)
    workflow: str = Field(max_length=200, index=True)
    agent_id: str | None = Field(default=None, max_length=200)
    agent_version: str | None = Field(default=None, max_length=100)
    reason: str = Field(max_length=20)
    confidence: float | None = None
    confidence_band: str = Field(max_length=20)
    tier: str = Field(max_length=10)
    tier_reason: str
    status: str = Field(max_length=12)
    request: dict[str, Any] = _json(dict)
    attempted_response: str | None = None
    error: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(StandardJSON(), nullable=True)
    )
    suggested_actions: list[Any] = _json(list)
    proposed_action: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(StandardJSON(), nullable=True)
    )
    context: dict[str, Any] = _json(dict)
    ai_context: dict[str, Any] = _json(dict)
    callback_url: str | None = Field(default=None, max_length=2048)
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_at: datetime | None = _ts()  # the first claim: time to claim
    lease_until: datetime | None = _ts()
    decision: str | None = Field(default=None, max_length=12)
    edited_output: str | None = None
    reject_reason: str | None = None
    decided_by: str | None = Field(default=None, max_length=100)
    decided_at: datetime | None = _ts(index=True)
    received_at: datetime = _ts(nullable=False, index=True)
    updated_at: datetime = _ts(nullable=False)
    claim_due_at: datetime | None = _ts()
    decide_due_at: datetime | None = _ts()
    sla_claim_stage: int = 0
    sla_decide_stage: int = 0
    sla_claim_breached: bool = False
    sla_decide_breached: bool = False
    sla_next_at: datetime | None = _ts(index=True)
    slack_channel: str | None = Field(default=None, max_length=40)
    slack_ts: str | None = Field(default=None, max_length=40)
    jira_key: str | None = Field(default=None, max_length=50)
    callback_delivered_at: datetime | None = _ts()


metadata = SQLModel.metadata

# the watched history's tables are plain tables in the same metadata
from storage import watch_tables as _watch_tables  # noqa: E402,F401
