"""Severity that rises with time: re-evaluation of sustained signals and the 4-hour root-cause rule."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from bot.scheduler import Job, run_due_jobs
from storage.models import IncidentRow, JournalRow
from tests.conftest import Bot, FakeClock, make_bot


def _incident(engine: Any) -> IncidentRow:
    with Session(engine) as s:
        return s.exec(select(IncidentRow)).one()


def _journal(engine: Any) -> list[str]:
    with Session(engine) as s:
        return [r.text for r in s.exec(select(JournalRow).order_by(JournalRow.id)).all()]


def _error_rate(value: float) -> dict[str, Any]:
    return {
        "dedup_key": "summarizer-errors",
        "status": "firing",
        "title": "Summarizer error rate",
        "workflow": "email-summarizer",
        "signal": {"kind": "error_rate", "value": value, "window": "10m"},
    }


def severity_jobs(bot: Bot) -> list[Job]:
    """The severity deadlines alone (not paging or the digest, which also move things)."""
    return [bot.container.incidents.review_due, bot.container.incidents.escalate_due]


def test_sustained_error_rate_becomes_p2_then_p1_without_root_cause_across_restart(
    db_url: str,
) -> None:
    clock = FakeClock()
    first = make_bot(db_url, clock=clock)
    with first.client:
        r = first.post("/webhooks/alerts", _error_rate(0.07))
        assert r.status_code == 202
        inc = _incident(first.container.engine)
        assert inc.severity == "P3"
        # the deadline is persisted, not held in memory
        assert inc.severity_review_at == clock.now.replace(hour=12)
        clock.advance(minutes=119)
        assert run_due_jobs(first.container.engine, severity_jobs(first), lambda: None) == 0
        assert _incident(first.container.engine).severity == "P3"
    first.container.engine.dispose()

    # the bot was down while the two hours passed; a new process picks the deadline up
    clock.advance(minutes=5)
    second = make_bot(db_url, clock=clock)
    with second.client:
        moved = run_due_jobs(second.container.engine, severity_jobs(second), lambda: None)
        assert moved == 1
        inc = _incident(second.container.engine)
        assert inc.severity == "P2"
        assert "error_rate" in inc.severity_reasons[0]["rule"]
        assert inc.root_cause_deadline_at is not None
        assert (inc.root_cause_deadline_at - clock.now).total_seconds() == 4 * 3600
        assert any("P3 → P2" in t for t in _journal(second.container.engine))
        # running again changes nothing: decisions are idempotent
        assert run_due_jobs(second.container.engine, severity_jobs(second), lambda: None) == 0
    second.container.engine.dispose()

    clock.advance(hours=4, seconds=1)
    third = make_bot(db_url, clock=clock)
    with third.client:
        assert run_due_jobs(third.container.engine, severity_jobs(third), lambda: None) == 1
        inc = _incident(third.container.engine)
        assert inc.severity == "P1"
        assert inc.root_cause_deadline_at is None
        assert "root cause" in inc.severity_reasons[0]["text"]
        assert any("P2 → P1" in t for t in _journal(third.container.engine))
    third.container.engine.dispose()


def test_a_new_alert_raises_severity_but_a_milder_one_never_lowers_it(db_url: str) -> None:
    bot = make_bot(db_url)
    with bot.client:
        bot.post("/webhooks/alerts", _error_rate(0.25))
        assert _incident(bot.container.engine).severity == "P1"
        r = bot.post("/webhooks/alerts", _error_rate(0.03))
        assert r.json()["alerts_changed"] == 1  # a new value is an update, not a duplicate
        inc = _incident(bot.container.engine)
        assert inc.severity == "P1"
        assert any("Alert updated (error_rate = 0.03)" in t for t in _journal(bot.container.engine))
        assert not any("→ P3" in t or "→ P2" in t for t in _journal(bot.container.engine))
    bot.container.engine.dispose()


def test_an_updated_value_raises_severity(db_url: str) -> None:
    bot = make_bot(db_url)
    with bot.client:
        bot.post("/webhooks/alerts", _error_rate(0.03))
        assert _incident(bot.container.engine).severity == "P3"
        assert bot.post("/webhooks/alerts", _error_rate(0.03)).json()["duplicate"] is True
        bot.post("/webhooks/alerts", _error_rate(0.31))
        inc = _incident(bot.container.engine)
        assert inc.severity == "P1"
        assert "0.31" in inc.severity_reasons[0]["text"]
    bot.container.engine.dispose()


def test_p2_opened_directly_gets_a_root_cause_deadline(db_url: str) -> None:
    bot = make_bot(db_url)
    with bot.client:
        body = {
            "dedup_key": "cost",
            "status": "firing",
            "title": "Per-run cost doubled",
            "workflow": "proposal-writer",
            "signal": {"kind": "cost_per_run", "value": 0.9, "baseline": 0.3},
        }
        bot.post("/webhooks/alerts", body)
        inc = _incident(bot.container.engine)
        assert inc.severity == "P2"
        assert inc.root_cause_deadline_at is not None
        assert (inc.root_cause_deadline_at - inc.triggered_at).total_seconds() == 4 * 3600
    bot.container.engine.dispose()
