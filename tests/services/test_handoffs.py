"""Claims, releases, lease expiry, decisions and SLA clocks, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.handoffs.domain import Decision, SlaAction, SlaClock
from bot.handoffs.events import (
    HandoffClaimed,
    HandoffDecided,
    HandoffEvent,
    HandoffQueued,
    HandoffSlaMissed,
)
from bot.handoffs.runner import HandoffRunner
from bot.handoffs.service import HandoffService
from bot.scheduler import run_due_jobs
from handlers.handoff_schema import HandoffBody
from storage.db import session_scope
from storage.models import HandoffRow, OutboxRow
from storage.outbox import enqueue
from tests.conftest import Bot, FakeClock, make_bot
from tests.support.handoffs import BOB, handoff_body

ALICE = "U0ALICE001"  # reviewer and the example policy's AI lead
CAROL = "U0CAROL003"  # not a reviewer


@pytest.fixture
def hbot(db_url: str) -> Iterator[Bot]:
    """A bot whose workers do not run: the test drives jobs and deliveries itself."""
    b = make_bot(db_url)
    yield b
    b.container.engine.dispose()


def runner(bot: Bot) -> HandoffRunner:
    assert bot.container.handoffs is not None
    return bot.container.handoffs


def service(bot: Bot) -> HandoffService:
    return runner(bot).service


def receive(bot: Bot, key: str = "k1", **overrides: Any) -> int:
    return receive_by(runner(bot), key, **overrides)


def receive_by(handoffs: HandoffRunner, key: str = "k1", **overrides: Any) -> int:
    body = HandoffBody.model_validate(handoff_body(key, **overrides))
    got = handoffs.receive(body.to_domain(default_workflow="unassigned"), source="agents")
    return int(got.handoff_id.removeprefix("HO-"))


def row(bot: Bot, handoff_id: int) -> HandoffRow:
    with Session(bot.container.engine) as s:
        found = s.get(HandoffRow, handoff_id)
        assert found is not None
        return found


def thread_lines(bot: Bot, handoff_id: int) -> list[dict[str, Any]]:
    with Session(bot.container.engine) as s:
        rows = s.exec(
            select(OutboxRow).where(OutboxRow.kind == "handoff.thread").order_by(OutboxRow.id)  # type: ignore[arg-type]
        ).all()
    return [r.payload["line"] for r in rows if r.payload["handoff_id"] == handoff_id]


def tick(bot: Bot) -> int:
    return run_due_jobs(bot.container.engine, bot.container.jobs, lambda: None)


@pytest.mark.both_backends
def test_two_concurrent_claims_have_exactly_one_winner(hbot: Bot) -> None:
    for round_ in range(5):
        handoff = receive(hbot, f"race-{round_}")
        barrier = threading.Barrier(2)
        answers: dict[str, Any] = {}

        def claim(
            user: str,
            handoff: int = handoff,
            barrier: threading.Barrier = barrier,
            answers: dict[str, Any] = answers,
        ) -> None:
            barrier.wait()
            answers[user] = runner(hbot).claim(handoff_id=handoff, user=user)

        threads = [threading.Thread(target=claim, args=(u,)) for u in (BOB, ALICE)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [u for u, a in answers.items() if a.ok]
        assert len(winners) == 1, answers
        [loser] = [u for u in answers if u not in winners]
        assert answers[loser].text.startswith(f"HO-{handoff} is claimed by <@{winners[0]}> until")
        stored = row(hbot, handoff)
        assert stored.status == "claimed" and stored.claimed_by == winners[0]
        assert [line["event"] for line in thread_lines(hbot, handoff)] == ["claimed"]


def test_the_holder_renews_and_only_reviewers_claim(hbot: Bot) -> None:
    handoff = receive(hbot)
    refusal = runner(hbot).claim(handoff_id=handoff, user=CAROL)
    assert not refusal.ok and refusal.text.startswith("Only reviewers can claim handoffs")
    assert runner(hbot).claim(handoff_id=handoff, user=BOB).ok
    hbot.clock.advance(minutes=10)
    renewed = runner(hbot).claim(handoff_id=handoff, user=BOB)
    assert renewed.ok and "renewed" in renewed.text
    assert row(hbot, handoff).lease_until == hbot.clock.now + timedelta(minutes=15)
    assert row(hbot, handoff).claimed_at == hbot.clock.now - timedelta(minutes=10)  # the first
    assert not runner(hbot).claim(handoff_id=999, user=BOB).ok


def test_an_expired_lease_returns_the_handoff_to_the_queue(hbot: Bot) -> None:
    handoff = receive(hbot)
    assert runner(hbot).claim(handoff_id=handoff, user=BOB).ok
    hbot.clock.advance(minutes=14)
    tick(hbot)
    assert row(hbot, handoff).status == "claimed"
    hbot.clock.advance(minutes=2)
    tick(hbot)
    stored = row(hbot, handoff)
    assert (stored.status, stored.claimed_by, stored.lease_until) == ("queued", None, None)
    assert thread_lines(hbot, handoff)[-1] == {"event": "expired", "actor": BOB}
    with Session(hbot.container.engine) as s:
        updates = s.exec(
            select(OutboxRow).where(OutboxRow.coalesce_key == f"handoff-card-update:{handoff}")
        ).all()
    assert updates, "the card is refreshed to show the handoff back in the queue"
    assert runner(hbot).claim(handoff_id=handoff, user=ALICE).ok


def test_an_expired_lease_can_be_taken_before_the_job_runs(hbot: Bot) -> None:
    handoff = receive(hbot)
    assert runner(hbot).claim(handoff_id=handoff, user=BOB).ok
    held = runner(hbot).claim(handoff_id=handoff, user=ALICE)
    assert not held.ok and f"<@{BOB}>" in held.text
    hbot.clock.advance(minutes=16)
    assert runner(hbot).claim(handoff_id=handoff, user=ALICE).ok
    assert row(hbot, handoff).claimed_by == ALICE
    # and the former holder may no longer decide it
    late = runner(hbot).decide(handoff_id=handoff, user=BOB, decision=Decision.APPROVED)
    assert not late.ok and f"<@{ALICE}>" in late.text


def test_release_gives_it_back_and_only_the_holder_can(hbot: Bot) -> None:
    handoff = receive(hbot)
    assert not runner(hbot).release(handoff_id=handoff, user=BOB).ok  # nobody holds it
    assert runner(hbot).claim(handoff_id=handoff, user=BOB).ok
    other = runner(hbot).release(handoff_id=handoff, user=ALICE)
    assert not other.ok and f"claimed by <@{BOB}>" in other.text
    released = runner(hbot).release(handoff_id=handoff, user=BOB)
    assert released.ok and "back in the queue" in released.text
    stored = row(hbot, handoff)
    assert (stored.status, stored.claimed_by) == ("queued", None)
    assert [line["event"] for line in thread_lines(hbot, handoff)] == ["claimed", "released"]
    assert runner(hbot).claim(handoff_id=handoff, user=ALICE).ok


def test_decisions_are_stored_as_feedback(hbot: Bot) -> None:
    approved, edited, same, rejected = (receive(hbot, f"d{i}") for i in range(4))
    r = runner(hbot)
    hbot.clock.advance(minutes=3)
    assert r.decide(handoff_id=approved, user=BOB, decision=Decision.APPROVED).ok
    out = r.decide(handoff_id=edited, user=BOB, decision=Decision.EDITED, edited_output="Better.")
    assert out.ok
    original = row(hbot, same).attempted_response
    assert r.decide(handoff_id=same, user=BOB, decision=Decision.EDITED, edited_output=original).ok
    no_reason = r.decide(handoff_id=rejected, user=ALICE, decision=Decision.REJECTED, reason=" ")
    assert not no_reason.ok and "reason" in no_reason.text
    assert r.decide(
        handoff_id=rejected, user=ALICE, decision=Decision.REJECTED, reason="refund policy"
    ).ok
    assert row(hbot, approved).decision == "approved"
    assert (row(hbot, edited).decision, row(hbot, edited).edited_output) == ("edited", "Better.")
    assert row(hbot, same).decision == "approved"  # an edit that changes nothing
    decided = row(hbot, rejected)
    assert (decided.decision, decided.reject_reason, decided.decided_by) == (
        "rejected",
        "refund policy",
        ALICE,
    )
    assert decided.claimed_at == decided.decided_at == hbot.clock.now  # deciding claims
    assert decided.confidence_band == "0.60-0.65"
    assert not decided.sla_claim_breached and not decided.sla_decide_breached
    again = r.claim(handoff_id=rejected, user=BOB)
    assert not again.ok and again.text == f"HO-{rejected} was already rejected by <@{ALICE}>."
    # no callback URL, so no callback row; a decided handoff no longer runs SLA clocks
    with Session(hbot.container.engine) as s:
        assert not s.exec(select(OutboxRow).where(OutboxRow.kind == "handoff.callback")).all()
    assert decided.sla_next_at is None


def test_auto_tier_handoffs_cannot_be_claimed(hbot: Bot) -> None:
    handoff = receive(hbot, confidence=0.99)
    refusal = runner(hbot).claim(handoff_id=handoff, user=BOB)
    assert not refusal.ok and "auto tier" in refusal.text


def test_sla_reminds_then_mentions_oncall_then_pages_and_survives_a_restart(
    db_url: str,
) -> None:
    clock = FakeClock()
    first = make_bot(db_url, clock=clock)
    handoff = receive(first)  # human tier: claim within 15 min, decide within 1 h
    clock.advance(minutes=14, seconds=59)
    tick(first)
    assert thread_lines(first, handoff) == []
    clock.advance(seconds=1)
    tick(first)
    [remind] = thread_lines(first, handoff)
    assert (remind["event"], remind["clock"], remind["action"]) == ("sla", "claim", "remind")
    assert row(first, handoff).sla_claim_breached
    clock.advance(minutes=7, seconds=30)
    tick(first)
    oncall = thread_lines(first, handoff)[-1]
    assert oncall["action"] == "oncall" and oncall["oncall"] == [ALICE]  # the AI lead
    first.container.engine.dispose()

    # a restart: a new process on the same database neither repeats nor skips a step
    second = make_bot(db_url, clock=clock)
    paged: list[HandoffEvent] = []
    # the page step taken by a service of the new process whose pager records what it hears
    recording = HandoffService(
        policy=second.container.policy,
        clock=clock,
        killswitch=second.container.killswitch,
        pagers=[lambda _s, event: paged.append(event)],
    )
    tick(second)
    assert len(thread_lines(second, handoff)) == 2
    clock.advance(minutes=7, seconds=30)
    with session_scope(second.container.engine) as s:
        assert recording.sla_due(s) == 1
    page = thread_lines(second, handoff)[-1]
    assert page["action"] == "page" and page["paged"] is True
    [event] = paged
    assert isinstance(event, HandoffSlaMissed)
    assert (event.clock, event.action, event.oncall) == (SlaClock.CLAIM, SlaAction.PAGE, (ALICE,))
    # claimed: the claim clock stops, the decide clock runs on
    assert runner(second).claim(handoff_id=handoff, user=BOB).ok
    for _ in range(2):  # the holder keeps the lease fresh while working on it
        clock.advance(minutes=14)
        assert runner(second).claim(handoff_id=handoff, user=BOB).ok
    clock.advance(minutes=2)
    tick(second)
    decide = thread_lines(second, handoff)[-1]
    assert (decide["clock"], decide["action"], decide["holder"]) == ("decide", "remind", BOB)
    assert row(second, handoff).sla_decide_stage == 1
    second.container.engine.dispose()


def test_listeners_record_their_side_effects_in_the_same_transaction(hbot: Bot) -> None:
    seen: list[HandoffEvent] = []

    def ticket(session: Session, event: HandoffEvent) -> None:
        seen.append(event)
        if isinstance(event, HandoffQueued):
            enqueue(
                session,
                kind="ticket.create",
                idempotency_key=f"ticket:handoff:{event.handoff.id}",
                ordering_key=f"ticket:handoff:{event.handoff.id}",
                payload={"handoff_id": event.handoff.id},
                now=event.now,
            )

    container = hbot.container
    heard = HandoffService(
        policy=container.policy,
        clock=container.clock,
        killswitch=container.killswitch,
        listeners=[ticket],
    )
    listened = HandoffRunner(engine=container.engine, service=heard, safe=container.safe)
    handoff = receive_by(listened)
    listened.claim(handoff_id=handoff, user=BOB)
    listened.decide(handoff_id=handoff, user=BOB, decision=Decision.APPROVED)
    assert [type(e) for e in seen] == [HandoffQueued, HandoffClaimed, HandoffDecided]
    with Session(hbot.container.engine) as s:
        assert s.exec(select(OutboxRow).where(OutboxRow.kind == "ticket.create")).one()

    def broken(session: Session, event: HandoffEvent) -> None:
        raise RuntimeError("listener failed")

    failing = HandoffService(
        policy=container.policy,
        clock=container.clock,
        killswitch=container.killswitch,
        listeners=[broken],
    )
    with pytest.raises(RuntimeError), session_scope(container.engine) as s:
        body = HandoffBody.model_validate(handoff_body("rolled-back"))
        failing.receive(s, handoff=body.to_domain(default_workflow="x"), source="agents")
    with Session(hbot.container.engine) as s:
        assert (
            s.exec(select(HandoffRow).where(HandoffRow.idempotency_key == "rolled-back")).first()
            is None
        )


def test_the_queue_lists_humans_first(hbot: Bot) -> None:
    review = receive(hbot, "r", confidence=0.85)
    human = receive(hbot, "h")
    receive(hbot, "auto", confidence=0.99)
    assert runner(hbot).claim(handoff_id=human, user=BOB).ok
    text = runner(hbot).queue()
    assert text.startswith("2 open handoff(s):")
    assert text.index(f"HO-{human}") < text.index(f"HO-{review}")
    assert f"claimed by <@{BOB}>" in text and "queued" in text
