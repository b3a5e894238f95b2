"""Handoffs (§8), pure: tiers, statuses, leases, SLA steps, feedback bands, callback signatures.

Nothing here does I/O or reads a clock: every instant is passed in as `now`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "DECIDED",
    "OPEN",
    "REPLAY_WINDOW_S",
    "SIGNATURE_HEADER",
    "BadSignature",
    "Decision",
    "HandoffIn",
    "HandoffStatus",
    "HandoffView",
    "InvalidHandoffId",
    "Reason",
    "Refusal",
    "SlaAction",
    "SlaClock",
    "SlaStep",
    "Tier",
    "TierDecision",
    "can_claim",
    "can_decide",
    "confidence_band",
    "decide_tier",
    "decision_breaches",
    "decision_of",
    "due_sla_steps",
    "format_handoff_id",
    "holds_lease",
    "initial_status",
    "lease_deadline",
    "next_sla_at",
    "parse_handoff_id",
    "refusal",
    "sign",
    "sla_deadlines",
    "sla_steps",
    "steps_for",
    "verify",
]

SIGNATURE_HEADER = "X-AI-Incident-Signature"
REPLAY_WINDOW_S = 300


class Tier(StrEnum):
    """How much a human is needed (the webhook answers with exactly these words)."""

    AUTO = "auto"  # stored and counted, no card: the agent proceeds
    REVIEW = "review"  # the agent may proceed; a reviewer checks after
    HUMAN = "human"  # the agent waits for the decision


class Reason(StrEnum):
    LOW_CONFIDENCE = "low_confidence"
    TOOL_ERROR = "tool_error"
    POLICY = "policy"
    KILL_SWITCH = "kill_switch"
    OTHER = "other"


class HandoffStatus(StrEnum):
    RECORDED = "recorded"  # auto tier: nobody reviews it
    QUEUED = "queued"
    CLAIMED = "claimed"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"


OPEN = frozenset({HandoffStatus.QUEUED, HandoffStatus.CLAIMED})
DECIDED = frozenset({HandoffStatus.APPROVED, HandoffStatus.EDITED, HandoffStatus.REJECTED})


class Decision(StrEnum):
    """What a reviewer decided; stored as feedback for the digest."""

    APPROVED = "approved"  # the agent's response as it was
    EDITED = "edited"  # approved with a corrected output
    REJECTED = "rejected"  # with a reason


# -- ids ---------------------------------------------------------------------------------------


class InvalidHandoffId(ValueError):
    """Text that is not a handoff id."""


_HO = re.compile(r"^(?:HO-)?(\d{1,9})$", re.IGNORECASE)


def format_handoff_id(number: int) -> str:
    """Return the public id of a handoff number: `HO-7`."""
    return f"HO-{number}"


def parse_handoff_id(text: str) -> int:
    """Return the number in `HO-7` (or `7`); raise InvalidHandoffId otherwise."""
    match = _HO.match(text.strip())
    if match is None:
        raise InvalidHandoffId(f"{text!r} is not a handoff id like HO-7")
    return int(match.group(1))


# -- tiers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierDecision:
    tier: Tier
    why: str


def decide_tier(
    *,
    confidence: float | None,
    reason: Reason,
    workflow_paused: bool,
    auto_threshold: float,
    review_threshold: float,
) -> TierDecision:
    """Return the tier of a handoff and why.

    A tool error, a paused workflow (or an agent saying its kill switch stopped it) and a
    handoff without a confidence always go to human decision; otherwise `auto` at or above the
    auto threshold, `review` at or above the review threshold, else `human`.
    """
    if workflow_paused:
        return TierDecision(Tier.HUMAN, "the workflow is paused (kill switch): humans decide")
    if reason is Reason.TOOL_ERROR:
        return TierDecision(Tier.HUMAN, "a tool failed: humans decide")
    if reason is Reason.KILL_SWITCH:
        return TierDecision(Tier.HUMAN, "the agent was stopped by the kill switch: humans decide")
    if confidence is None:
        return TierDecision(Tier.HUMAN, "no confidence given: humans decide")
    if confidence >= auto_threshold:
        return TierDecision(
            Tier.AUTO, f"confidence {confidence:.2f} ≥ auto threshold {auto_threshold:.2f}"
        )
    if confidence >= review_threshold:
        return TierDecision(
            Tier.REVIEW,
            f"confidence {confidence:.2f} ≥ review threshold {review_threshold:.2f} "
            f"and < {auto_threshold:.2f}",
        )
    return TierDecision(
        Tier.HUMAN, f"confidence {confidence:.2f} < review threshold {review_threshold:.2f}"
    )


BAND_WIDTH = 5  # hundredths


def confidence_band(confidence: float | None) -> str:
    """Return the feedback band of a confidence: `0.80-0.85`, …, `0.95-1.00`, `<0.50`, `unknown`.

    Bands are 0.05 wide from 0.50 up, narrow enough to see where the tier thresholds should sit.
    """
    if confidence is None or math.isnan(confidence):
        return "unknown"
    # round first: 0.57 * 100 is 56.99999999999999
    hundredths = math.floor(round(confidence * 100, 6))
    if hundredths < 50:
        return "<0.50"
    low = min(hundredths // BAND_WIDTH * BAND_WIDTH, 100 - BAND_WIDTH)
    return f"{low / 100:.2f}-{(low + BAND_WIDTH) / 100:.2f}"


# -- claims and decisions ----------------------------------------------------------------------


def lease_deadline(now: datetime, lease: timedelta) -> datetime:
    """Return when a claim made at `now` expires."""
    return now + lease


def can_claim(
    status: HandoffStatus,
    claimed_by: str | None,
    lease_until: datetime | None,
    actor: str,
    now: datetime,
) -> bool:
    """Return True if `actor` may take the lease now.

    A queued handoff may be claimed; a claimed one only by its holder (renewing the lease) or
    by anyone once the lease has expired.
    """
    if status is HandoffStatus.QUEUED:
        return True
    if status is not HandoffStatus.CLAIMED:
        return False
    return claimed_by == actor or lease_until is None or lease_until <= now


def can_decide(
    status: HandoffStatus,
    claimed_by: str | None,
    lease_until: datetime | None,
    actor: str,
    now: datetime,
) -> bool:
    """Return True if `actor` may decide now: the same rule as claiming (deciding claims)."""
    return can_claim(status, claimed_by, lease_until, actor, now)


def initial_status(tier: Tier) -> HandoffStatus:
    """Return the status a new handoff starts in: auto-tier ones are recorded, not queued."""
    return HandoffStatus.RECORDED if tier is Tier.AUTO else HandoffStatus.QUEUED


def holds_lease(
    status: HandoffStatus,
    claimed_by: str | None,
    lease_until: datetime | None,
    actor: str,
    now: datetime,
) -> bool:
    """Return True if `actor` holds a live lease now (claiming again renews it)."""
    return (
        status is HandoffStatus.CLAIMED
        and claimed_by == actor
        and lease_until is not None
        and lease_until > now
    )


class Refusal(StrEnum):
    """Why a claim, release or decision did not go through."""

    DECIDED = "decided"
    NOT_REVIEWABLE = "not_reviewable"  # auto tier
    HELD = "held"  # someone else holds a live lease
    NOT_CLAIMED = "not_claimed"


def refusal(
    status: HandoffStatus, claimed_by: str | None, lease_until: datetime | None, now: datetime
) -> Refusal:
    """Return why an action on a handoff in this state was refused."""
    if status in DECIDED:
        return Refusal.DECIDED
    if status is HandoffStatus.RECORDED:
        return Refusal.NOT_REVIEWABLE
    if claimed_by and lease_until is not None and lease_until > now:
        return Refusal.HELD
    return Refusal.NOT_CLAIMED


def decision_of(decision: Decision, edited_output: str | None, attempted: str | None) -> Decision:
    """Return the decision to record: an "edit" that changes nothing is an approval unchanged."""
    if decision is Decision.EDITED and (edited_output or "").strip() == (attempted or "").strip():
        return Decision.APPROVED
    return decision


# -- SLA ---------------------------------------------------------------------------------------


class SlaClock(StrEnum):
    CLAIM = "claim"
    DECIDE = "decide"


class SlaAction(StrEnum):
    REMIND = "remind"  # a reminder in the card's thread
    ONCALL = "oncall"  # mention whoever is on call
    PAGE = "page"  # page through the escalation machinery


@dataclass(frozen=True)
class SlaStep:
    clock: SlaClock
    stage: int  # 1, 2, 3
    action: SlaAction
    due_at: datetime


_ACTIONS = (SlaAction.REMIND, SlaAction.ONCALL, SlaAction.PAGE)


def sla_deadlines(
    received_at: datetime, time_to_claim: timedelta, time_to_decide: timedelta
) -> tuple[datetime, datetime]:
    """Return (claim by, decide by); both count from when the handoff was received."""
    return received_at + time_to_claim, received_at + time_to_decide


def sla_steps(clock: SlaClock, due: datetime, allowed: timedelta) -> list[SlaStep]:
    """Return the three steps of one SLA clock.

    At the deadline a reminder; half the allowed time later on-call is mentioned; a whole
    allowed time after the deadline on-call is paged.
    """
    gap = allowed / 2
    return [
        SlaStep(clock=clock, stage=i + 1, action=action, due_at=due + gap * i)
        for i, action in enumerate(_ACTIONS)
    ]


def steps_for(
    received_at: datetime, claim_due_at: datetime | None, decide_due_at: datetime | None
) -> list[SlaStep]:
    """Return the steps of a handoff's running clocks, from the deadlines stored with it.

    The allowed times are read back from the deadlines, so a policy change or a restart never
    moves a clock that is already running.
    """
    steps: list[SlaStep] = []
    if claim_due_at is not None:
        steps += sla_steps(SlaClock.CLAIM, claim_due_at, claim_due_at - received_at)
    if decide_due_at is not None:
        steps += sla_steps(SlaClock.DECIDE, decide_due_at, decide_due_at - received_at)
    return steps


def decision_breaches(
    *,
    claimed_at: datetime | None,
    claim_due_at: datetime | None,
    decide_due_at: datetime | None,
    now: datetime,
) -> tuple[bool, bool]:
    """Return whether a decision made at `now` missed the claim SLA, and the decide SLA."""
    claim = claim_due_at is not None and claimed_at is not None and claimed_at > claim_due_at
    decide = decide_due_at is not None and now > decide_due_at
    return claim, decide


def _clock_running(clock: SlaClock, status: HandoffStatus, ever_claimed: bool) -> bool:
    # the claim clock measures the wait for the first claim; after a release or an expired
    # lease the decide clock alone keeps watch
    if clock is SlaClock.CLAIM:
        return status is HandoffStatus.QUEUED and not ever_claimed
    return status in OPEN


def due_sla_steps(
    steps: Sequence[SlaStep],
    *,
    status: HandoffStatus,
    stages_done: dict[SlaClock, int],
    now: datetime,
    ever_claimed: bool = False,
) -> list[SlaStep]:
    """Return the step to take now on each running clock: the highest stage due and not done.

    After a long outage several stages of a clock may be due at once; only the highest is
    taken (a reminder is pointless once on-call is being paged) and the lower ones count as done.
    """
    chosen: dict[SlaClock, SlaStep] = {}
    for step in steps:
        if not _clock_running(step.clock, status, ever_claimed):
            continue
        if step.stage <= stages_done.get(step.clock, 0) or step.due_at > now:
            continue
        best = chosen.get(step.clock)
        if best is None or step.stage > best.stage:
            chosen[step.clock] = step
    return sorted(chosen.values(), key=lambda s: (s.due_at, s.clock))


def next_sla_at(
    steps: Sequence[SlaStep],
    *,
    status: HandoffStatus,
    stages_done: dict[SlaClock, int],
    ever_claimed: bool = False,
) -> datetime | None:
    """Return when the scheduler must look at the handoff next, or None when no clock runs."""
    pending = [
        s.due_at
        for s in steps
        if _clock_running(s.clock, status, ever_claimed) and s.stage > stages_done.get(s.clock, 0)
    ]
    return min(pending) if pending else None


# -- callback signatures -----------------------------------------------------------------------


class BadSignature(Exception):
    """A signature header that does not prove the sender; the message says why."""


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Return the `X-AI-Incident-Signature` value: `t=<unix>,v1=<hex hmac-sha256 of "t.body">`."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str, body: bytes, header: str, *, now: float, tolerance: float = REPLAY_WINDOW_S
) -> int:
    """Check a signature header against the body; return its timestamp or raise BadSignature.

    Several `v1=` entries may be given (a sender rotating secrets); one matching is enough.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise BadSignature("the signature's t= is not a unix time") from None
        elif key == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise BadSignature("the signature must read t=<unix>,v1=<hex>")
    if abs(now - timestamp) > tolerance:
        raise BadSignature(
            f"the signature's timestamp is more than {int(tolerance)} s away from now"
        )
    expected = _mac(secret, timestamp, body).encode()
    # bytes: compare_digest refuses non-ASCII text, and a header may carry anything
    if not any(
        hmac.compare_digest(expected, c.encode("utf-8", "surrogatepass")) for c in candidates
    ):
        raise BadSignature("the signature does not match the body")
    return timestamp


# -- what an agent sends -----------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffIn:
    """A handoff as received, whatever the wire format (§8)."""

    idempotency_key: str
    workflow: str
    reason: Reason
    confidence: float | None
    agent_id: str | None = None
    agent_version: str | None = None
    request: Mapping[str, str | None] = field(default_factory=dict)
    attempted_response: str | None = None
    error: Mapping[str, str | None] | None = None
    suggested_actions: tuple[str, ...] = ()
    proposed_action: Mapping[str, Any] | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    ai_context: Mapping[str, Any] = field(default_factory=dict)
    callback_url: str | None = None


# -- the read model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffView:
    """A handoff as cards, lists and the API show it."""

    id: int
    public_id: str
    idempotency_key: str
    source: str
    workflow: str
    agent_id: str | None
    agent_version: str | None
    reason: str
    confidence: float | None
    confidence_band: str
    tier: Tier
    tier_reason: str
    status: HandoffStatus
    request: dict[str, Any]
    attempted_response: str | None
    error: dict[str, Any] | None
    suggested_actions: list[str]
    proposed_action: dict[str, Any] | None
    context: dict[str, Any]
    ai_context: dict[str, Any]
    callback_url: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    lease_until: datetime | None
    decision: Decision | None
    edited_output: str | None
    reject_reason: str | None
    decided_by: str | None
    decided_at: datetime | None
    received_at: datetime
    claim_due_at: datetime | None
    decide_due_at: datetime | None
    sla_claim_stage: int
    sla_decide_stage: int
    slack_channel: str | None
    slack_ts: str | None
    jira_key: str | None
    callback_delivered_at: datetime | None = None
    workflow_known: bool = True

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def holder(self, now: datetime) -> str | None:
        """Return who holds the lease now, or None when nobody does."""
        if self.status is not HandoffStatus.CLAIMED or self.lease_until is None:
            return None
        return self.claimed_by if self.lease_until > now else None
