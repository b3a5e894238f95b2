"""Handoff decisions with plain values: tiers, bands, leases, SLA steps, signatures."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.handoffs.domain import (
    BadSignature,
    Decision,
    HandoffStatus,
    InvalidHandoffId,
    Reason,
    Refusal,
    SlaAction,
    SlaClock,
    SlaStep,
    Tier,
    can_claim,
    confidence_band,
    decide_tier,
    decision_breaches,
    decision_of,
    due_sla_steps,
    format_handoff_id,
    holds_lease,
    initial_status,
    next_sla_at,
    parse_handoff_id,
    refusal,
    sign,
    sla_deadlines,
    sla_steps,
    steps_for,
    verify,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def tier(
    confidence: float | None,
    reason: Reason = Reason.LOW_CONFIDENCE,
    paused: bool = False,
    auto: float = 0.95,
    review: float = 0.80,
) -> Tier:
    return decide_tier(
        confidence=confidence,
        reason=reason,
        workflow_paused=paused,
        auto_threshold=auto,
        review_threshold=review,
    ).tier


@pytest.mark.parametrize(
    ("confidence", "expected"),
    [
        (1.0, Tier.AUTO),
        (0.95, Tier.AUTO),  # the auto threshold itself is auto
        (0.9499999, Tier.REVIEW),
        (0.80, Tier.REVIEW),  # the review threshold itself is review
        (0.7999999, Tier.HUMAN),
        (0.0, Tier.HUMAN),
    ],
)
def test_tier_boundaries(confidence: float, expected: Tier) -> None:
    assert tier(confidence) is expected


def test_tool_errors_paused_workflows_and_missing_confidence_go_to_humans() -> None:
    assert tier(0.99, reason=Reason.TOOL_ERROR) is Tier.HUMAN
    assert tier(0.99, paused=True) is Tier.HUMAN
    assert tier(0.99, reason=Reason.KILL_SWITCH) is Tier.HUMAN
    assert tier(None, reason=Reason.OTHER) is Tier.HUMAN
    assert tier(0.99, reason=Reason.POLICY) is Tier.AUTO
    decision = decide_tier(
        confidence=0.99,
        reason=Reason.LOW_CONFIDENCE,
        workflow_paused=True,
        auto_threshold=0.95,
        review_threshold=0.8,
    )
    assert "paused" in decision.why


def test_thresholds_come_from_the_policy() -> None:
    assert tier(0.85, auto=0.9, review=0.85) is Tier.REVIEW
    assert tier(0.9, auto=0.9, review=0.85) is Tier.AUTO
    assert tier(0.84, auto=0.9, review=0.85) is Tier.HUMAN


@given(
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
)
def test_more_confidence_never_needs_more_humans(a: float, b: float, review: float) -> None:
    auto = max(review, 0.95)
    rank = {Tier.AUTO: 0, Tier.REVIEW: 1, Tier.HUMAN: 2}
    low, high = sorted((a, b))
    assert rank[tier(high, review=review, auto=auto)] <= rank[tier(low, review=review, auto=auto)]


@pytest.mark.parametrize(
    ("confidence", "band"),
    [
        (0.80, "0.80-0.85"),
        (0.57, "0.55-0.60"),
        (0.95, "0.95-1.00"),
        (1.0, "0.95-1.00"),
        (0.5, "0.50-0.55"),
        (0.49, "<0.50"),
        (None, "unknown"),
    ],
)
def test_confidence_bands(confidence: float | None, band: str) -> None:
    assert confidence_band(confidence) == band


@given(st.floats(min_value=0.5, max_value=1))
def test_a_band_holds_its_confidence(confidence: float) -> None:
    low, high = (float(x) for x in confidence_band(confidence).split("-"))
    assert low <= round(confidence, 6) <= high


def test_who_may_claim() -> None:
    later = NOW + timedelta(minutes=5)
    assert can_claim(HandoffStatus.QUEUED, None, None, "U1", NOW)
    assert can_claim(HandoffStatus.CLAIMED, "U1", later, "U1", NOW)  # the holder renews
    assert not can_claim(HandoffStatus.CLAIMED, "U1", later, "U2", NOW)
    assert can_claim(HandoffStatus.CLAIMED, "U1", later, "U2", later)  # the lease has expired
    for status in (HandoffStatus.APPROVED, HandoffStatus.REJECTED, HandoffStatus.RECORDED):
        assert not can_claim(status, None, None, "U1", NOW)


def test_an_edit_that_changes_nothing_is_an_approval() -> None:
    assert decision_of(Decision.EDITED, " same \n", "same") is Decision.APPROVED
    assert decision_of(Decision.EDITED, "better", "same") is Decision.EDITED
    assert decision_of(Decision.REJECTED, None, "same") is Decision.REJECTED


def test_auto_tier_handoffs_are_recorded_and_the_others_queued() -> None:
    assert initial_status(Tier.AUTO) is HandoffStatus.RECORDED
    assert initial_status(Tier.REVIEW) is HandoffStatus.QUEUED
    assert initial_status(Tier.HUMAN) is HandoffStatus.QUEUED


def test_only_the_holder_of_a_live_lease_renews() -> None:
    later = NOW + timedelta(minutes=5)
    assert holds_lease(HandoffStatus.CLAIMED, "bob", later, "bob", NOW)
    assert not holds_lease(HandoffStatus.CLAIMED, "bob", later, "alice", NOW)
    assert not holds_lease(HandoffStatus.CLAIMED, "bob", NOW, "bob", NOW)  # expired
    assert not holds_lease(HandoffStatus.CLAIMED, "bob", None, "bob", NOW)
    assert not holds_lease(HandoffStatus.QUEUED, None, None, "bob", NOW)


@pytest.mark.parametrize(
    ("status", "holder", "until", "why"),
    [
        (HandoffStatus.APPROVED, "bob", None, Refusal.DECIDED),
        (HandoffStatus.REJECTED, "bob", None, Refusal.DECIDED),
        (HandoffStatus.RECORDED, None, None, Refusal.NOT_REVIEWABLE),
        (HandoffStatus.CLAIMED, "bob", NOW + timedelta(minutes=1), Refusal.HELD),
        (HandoffStatus.CLAIMED, "bob", NOW, Refusal.NOT_CLAIMED),  # the lease ran out
        (HandoffStatus.QUEUED, None, None, Refusal.NOT_CLAIMED),
    ],
)
def test_why_an_action_was_refused(
    status: HandoffStatus, holder: str | None, until: datetime | None, why: Refusal
) -> None:
    assert refusal(status, holder, until, NOW) is why


def test_steps_are_read_back_from_the_stored_deadlines() -> None:
    claim_by, decide_by = NOW + timedelta(minutes=15), NOW + timedelta(hours=1)
    steps = steps_for(NOW, claim_by, decide_by)
    assert steps == sla_steps(SlaClock.CLAIM, claim_by, timedelta(minutes=15)) + sla_steps(
        SlaClock.DECIDE, decide_by, timedelta(hours=1)
    )
    assert steps_for(NOW, None, None) == []
    assert [s.clock for s in steps_for(NOW, None, decide_by)] == [SlaClock.DECIDE] * 3


def test_a_decision_records_which_deadlines_it_missed() -> None:
    claim_by, decide_by = NOW + timedelta(minutes=15), NOW + timedelta(hours=1)
    on_time = decision_breaches(
        claimed_at=NOW, claim_due_at=claim_by, decide_due_at=decide_by, now=NOW
    )
    assert on_time == (False, False)
    late = NOW + timedelta(hours=2)
    assert decision_breaches(
        claimed_at=late, claim_due_at=claim_by, decide_due_at=decide_by, now=late
    ) == (True, True)
    # a tier without SLA timers misses nothing
    assert decision_breaches(claimed_at=late, claim_due_at=None, decide_due_at=None, now=late) == (
        False,
        False,
    )


def test_handoff_ids() -> None:
    assert format_handoff_id(7) == "HO-7"
    assert parse_handoff_id("HO-7") == parse_handoff_id("ho-7") == parse_handoff_id("7") == 7
    with pytest.raises(InvalidHandoffId):
        parse_handoff_id("INC-7")


# -- SLA ---------------------------------------------------------------------------------------


def steps() -> list[SlaStep]:
    claim_by, decide_by = sla_deadlines(NOW, timedelta(minutes=15), timedelta(hours=1))
    return [
        *sla_steps(SlaClock.CLAIM, claim_by, timedelta(minutes=15)),
        *sla_steps(SlaClock.DECIDE, decide_by, timedelta(hours=1)),
    ]


def test_sla_steps_remind_then_mention_oncall_then_page() -> None:
    claim = [s for s in steps() if s.clock is SlaClock.CLAIM]
    assert [(s.stage, s.action) for s in claim] == [
        (1, SlaAction.REMIND),
        (2, SlaAction.ONCALL),
        (3, SlaAction.PAGE),
    ]
    assert [s.due_at - NOW for s in claim] == [
        timedelta(minutes=15),
        timedelta(minutes=22, seconds=30),
        timedelta(minutes=30),
    ]


def test_due_steps_follow_the_status_and_what_is_done() -> None:
    queued = HandoffStatus.QUEUED
    assert due_sla_steps(steps(), status=queued, stages_done={}, now=NOW) == []
    [remind] = due_sla_steps(
        steps(), status=queued, stages_done={}, now=NOW + timedelta(minutes=15)
    )
    assert (remind.clock, remind.action) == (SlaClock.CLAIM, SlaAction.REMIND)
    # done already: nothing again (restart-safe when the stage is stored)
    assert (
        due_sla_steps(
            steps(), status=queued, stages_done={SlaClock.CLAIM: 1}, now=NOW + timedelta(minutes=16)
        )
        == []
    )
    # a claimed handoff's claim clock has stopped; its decide clock runs on
    late = NOW + timedelta(hours=1)
    [decide] = due_sla_steps(steps(), status=HandoffStatus.CLAIMED, stages_done={}, now=late)
    assert (decide.clock, decide.action) == (SlaClock.DECIDE, SlaAction.REMIND)
    assert due_sla_steps(steps(), status=HandoffStatus.APPROVED, stages_done={}, now=late) == []
    # released after a claim: only the decide clock watches it
    again = due_sla_steps(
        steps(), status=HandoffStatus.QUEUED, stages_done={}, now=late, ever_claimed=True
    )
    assert [s.clock for s in again] == [SlaClock.DECIDE]


def test_after_an_outage_only_the_highest_due_stage_is_taken() -> None:
    due = due_sla_steps(
        steps(), status=HandoffStatus.QUEUED, stages_done={}, now=NOW + timedelta(hours=3)
    )
    assert [(s.clock, s.action) for s in due] == [
        (SlaClock.CLAIM, SlaAction.PAGE),
        (SlaClock.DECIDE, SlaAction.PAGE),
    ]


def test_next_sla_at_is_the_next_pending_step_of_a_running_clock() -> None:
    queued = HandoffStatus.QUEUED
    assert next_sla_at(steps(), status=queued, stages_done={}) == NOW + timedelta(minutes=15)
    assert next_sla_at(steps(), status=queued, stages_done={SlaClock.CLAIM: 3}) == NOW + timedelta(
        hours=1
    )
    assert next_sla_at(steps(), status=HandoffStatus.CLAIMED, stages_done={}) == NOW + timedelta(
        hours=1
    )
    assert next_sla_at(steps(), status=HandoffStatus.REJECTED, stages_done={}) is None


# -- signatures --------------------------------------------------------------------------------

SECRET = "s3cret"
BODY = b'{"decision":"approved"}'


def test_signature_format_and_round_trip() -> None:
    header = sign(SECRET, BODY, 1_800_000_000)
    stamp, mac = header.split(",")
    assert stamp == "t=1800000000"
    expected = hmac.new(SECRET.encode(), b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert mac == f"v1={expected}"
    assert verify(SECRET, BODY, header, now=1_800_000_100) == 1_800_000_000


@pytest.mark.parametrize(
    ("header", "body", "secret", "now", "why"),
    [
        (sign(SECRET, BODY, 1_800_000_000), BODY + b" ", SECRET, 1_800_000_000, "does not match"),
        (sign(SECRET, BODY, 1_800_000_000), BODY, "other", 1_800_000_000, "does not match"),
        (sign(SECRET, BODY, 1_800_000_000), BODY, SECRET, 1_800_000_301, "away from now"),
        (sign(SECRET, BODY, 1_800_000_000), BODY, SECRET, 1_799_999_699, "away from now"),
        ("v1=abc", BODY, SECRET, 1_800_000_000, "t=<unix>"),
        ("t=soon,v1=abc", BODY, SECRET, 1_800_000_000, "unix time"),
        ("garbage", BODY, SECRET, 1_800_000_000, "t=<unix>"),
    ],
)
def test_bad_signatures_say_why(header: str, body: bytes, secret: str, now: int, why: str) -> None:
    with pytest.raises(BadSignature, match=why):
        verify(secret, body, header, now=now)


def test_one_matching_signature_of_several_is_enough() -> None:
    good = sign(SECRET, BODY, 1_800_000_000).split(",")[1]
    assert verify(SECRET, BODY, f"t=1800000000,v1=deadbeef,{good}", now=1_800_000_000)
