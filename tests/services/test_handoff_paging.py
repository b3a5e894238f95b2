"""A handoff past its SLA reaches whoever is on call, and its page goes through escalation."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, select

from storage.models import IncidentRow, JournalRow, PageRow
from tests.conftest import FakeClock, make_bot
from tests.services.test_handoffs import receive, thread_lines, tick

ALICE = "U0ALICE001"
BOB = "U0BOB00002"


def test_the_page_step_opens_an_incident_and_pages_the_workflows_on_call(db_url: str) -> None:
    # Monday 2026-11-30 10:00 Berlin: in the example's `primary` rotation (weekly from Monday
    # 2026-01-05 09:00, alice then bob) week 48 of the rotation is bob's
    clock = FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    bot = make_bot(db_url, clock=clock)
    handoff = receive(bot)  # support-chatbot, human tier: claim within 15 min
    clock.advance(minutes=15)
    tick(bot)
    clock.advance(minutes=7, seconds=30)
    tick(bot)
    mention = thread_lines(bot, handoff)[-1]
    assert mention["action"] == "oncall" and mention["oncall"] == [BOB]  # on call, not the lead
    clock.advance(minutes=7, seconds=30)
    tick(bot)
    assert thread_lines(bot, handoff)[-1]["action"] == "page"
    with Session(bot.container.engine) as s:
        [incident] = s.exec(select(IncidentRow)).all()
        assert incident.title == f"HO-{handoff} (human tier) is past its claim SLA"
        assert (incident.severity, incident.workflow) == ("P2", "support-chatbot")
        journal = [j.text for j in s.exec(select(JournalRow)).all()]
        pages = s.exec(select(PageRow).where(PageRow.incident_id == incident.id)).all()
    assert any(t.startswith("Paged") and "by hand" in t for t in journal), journal
    assert {p.person for p in pages if p.reason == "manual"} == {"bob"}
    bot.container.engine.dispose()
