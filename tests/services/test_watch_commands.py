"""`watch` through the command runner and the outbox: answers, queued charts, local mode."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.domain.watch.history import Run, RunStatus
from bot.services.commands import Invocation
from bot.services.errors import UnknownWorkflow
from bot.services.watch import WatchService
from bot.services.watch_commands import WATCH_CHART, SeenOnly
from storage.db import session_scope
from storage.models import OutboxRow
from storage.watch import record_runs
from tests.conftest import Bot, example_policy, make_bot

CHANNEL = "C0SUMMARY01"


@pytest.fixture
def quiet_bot(db_url: str) -> Iterator[Bot]:
    """A bot in local mode whose lanes deliver only when the test says."""
    b = make_bot(db_url)
    yield b
    b.container.engine.dispose()


def record(bot: Bot, workflow: str, count: int, *, errors: int = 0) -> None:
    at = bot.clock() - timedelta(minutes=2)
    with session_scope(bot.container.engine) as session:
        record_runs(
            session,
            [
                Run(
                    workflow=workflow,
                    run_id=f"r{n}",
                    at=at,
                    status=RunStatus.ERROR if n < errors else RunStatus.OK,
                    latency_ms=800.0,
                    cost_usd=0.02,
                )
                for n in range(count)
            ],
        )


def ask(bot: Bot, text: str, channel: str = CHANNEL) -> str:
    return bot.container.commands.run(Invocation(text=text, user="U0ALICE01", channel=channel))


def chart_rows(bot: Bot) -> list[OutboxRow]:
    with Session(bot.container.engine) as s:
        return list(s.exec(select(OutboxRow).where(OutboxRow.kind == WATCH_CHART)).all())


@pytest.mark.both_backends
def test_asking_twice_before_delivery_draws_one_chart(quiet_bot: Bot) -> None:
    record(quiet_bot, "email-summarizer", 20, errors=3)
    for _ in range(2):
        assert ask(quiet_bot, "watch email-summarizer chart").endswith("coming to this channel.")
    [row] = chart_rows(quiet_bot)
    assert row.payload == {"workflow": "email-summarizer", "channel": CHANNEL, "user": "U0ALICE01"}
    quiet_bot.container.deliver_due()
    [row] = chart_rows(quiet_bot)
    assert row.status == "done" and row.result == {
        "file": "F-console",
        "workflow": "email-summarizer",
    }
    printed = quiet_bot.console.getvalue()
    assert f"[slack {CHANNEL}] would upload watch-email-summarizer-" in printed
    assert "email-summarizer: runs, error rate and spend, last 7 days" in printed
    # asked again once drawn, it is drawn again, in another channel too
    ask(quiet_bot, "watch email-summarizer chart", channel="C0OTHER001")
    assert len(chart_rows(quiet_bot)) == 2


def test_the_text_answer_outside_slack_lists_the_figures(quiet_bot: Bot) -> None:
    record(quiet_bot, "email-summarizer", 20, errors=3)
    text = ask(quiet_bot, "watch email-summarizer")
    assert text.splitlines()[:2] == [
        "email-summarizer",
        "  Runs last hour: 20 · errors 10 min 15.0 %, 2 h 15.0 %, today 15.0 %",
    ]
    everything = ask(quiet_bot, "watch")
    assert "email-summarizer\n  Runs last hour: 20" in everything
    assert "support-chatbot\n  No runs seen yet." in everything


def test_an_alias_names_its_workflow(db_url: str) -> None:
    policy = example_policy()
    workflows = dict(policy.workflows)
    summarizer = workflows["email-summarizer"]
    workflows["email-summarizer"] = summarizer.model_copy(
        update={"watch": summarizer.watch.model_copy(update={"alias": ["summarizer-svc"]})}
    )
    bot = make_bot(db_url, policy=policy.model_copy(update={"workflows": workflows}))
    try:
        record(bot, "email-summarizer", 4)
        assert ask(bot, "watch summarizer-svc").startswith("email-summarizer\n  Runs last hour: 4")
    finally:
        bot.container.engine.dispose()


def test_the_lanes_get_nothing_for_a_workflow_never_seen(quiet_bot: Bot) -> None:
    record(quiet_bot, "email-summarizer", 4)
    service = WatchService(policy=quiet_bot.container.policy, clock=quiet_bot.clock)
    lanes = SeenOnly(service)
    with Session(quiet_bot.container.engine) as session:
        with pytest.raises(UnknownWorkflow):
            service.figures(session, "mystery-flow")
        assert lanes.figures(session, "mystery-flow") == []
        assert lanes.week(session, "mystery-flow") == []
        [figures] = lanes.figures(session, "email-summarizer")
        assert figures.runs_last_hour == 4
        assert sum(p.runs for p in lanes.week(session, "email-summarizer")) == 4
