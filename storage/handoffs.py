"""Handoff rows to read models."""

from __future__ import annotations

from bot.handoffs.domain import (
    Decision,
    HandoffStatus,
    HandoffView,
    Tier,
    format_handoff_id,
)
from storage.models import HandoffRow

__all__ = ["handoff_view"]


def handoff_view(row: HandoffRow, *, workflow_known: bool = True) -> HandoffView:
    """Return the read model of a stored handoff."""
    assert row.id is not None
    return HandoffView(
        id=row.id,
        public_id=format_handoff_id(row.id),
        idempotency_key=row.idempotency_key,
        source=row.source,
        workflow=row.workflow,
        agent_id=row.agent_id,
        agent_version=row.agent_version,
        reason=row.reason,
        confidence=row.confidence,
        confidence_band=row.confidence_band,
        tier=Tier(row.tier),
        tier_reason=row.tier_reason,
        status=HandoffStatus(row.status),
        request=dict(row.request),
        attempted_response=row.attempted_response,
        error=dict(row.error) if row.error is not None else None,
        suggested_actions=[str(a) for a in row.suggested_actions],
        proposed_action=dict(row.proposed_action) if row.proposed_action is not None else None,
        context=dict(row.context),
        ai_context=dict(row.ai_context),
        callback_url=row.callback_url,
        claimed_by=row.claimed_by,
        claimed_at=row.claimed_at,
        lease_until=row.lease_until,
        decision=Decision(row.decision) if row.decision else None,
        edited_output=row.edited_output,
        reject_reason=row.reject_reason,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        received_at=row.received_at,
        claim_due_at=row.claim_due_at,
        decide_due_at=row.decide_due_at,
        sla_claim_stage=row.sla_claim_stage,
        sla_decide_stage=row.sla_decide_stage,
        slack_channel=row.slack_channel,
        slack_ts=row.slack_ts,
        jira_key=row.jira_key,
        callback_delivered_at=row.callback_delivered_at,
        workflow_known=workflow_known,
    )
