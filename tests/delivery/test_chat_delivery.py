"""Cards and journal lines from webhook to chat: the console in local mode, Slack's Web API otherwise.

The ingest writer runs as in production; the delivery worker is driven by the test with the fake
clock (its background thread is stopped), so debounce, Retry-After and backoff are exact.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from slack_sdk.models.blocks import Block
from sqlmodel import Session, select

from bot.settings import Settings
from storage import journal
from storage.models import IncidentRow, JournalRow, OutboxRow
from tests.conftest import TOKEN, Bot, make_bot, payload, without_tickets
from tests.standins.slack import SlackStandin, metadata_keys

CHANNEL = "C0SUMMARY01"  # the email-summarizer workflow's channel in the example policy
FIXTURE = "alertmanager_v4_firing.json"


@contextmanager
def driven(bot: Bot) -> Iterator[Bot]:
    """Run the app with the ingest writer; leave the chat lane to `deliver`, the others stopped."""
    try:
        with bot.client:
            # a lane left running would race the driven one for the same Slack channel
            bot.container.stop_delivery()
            yield bot
    finally:
        bot.container.engine.dispose()


def deliver(bot: Bot, *, until_idle: bool = False, step: float = 0.5) -> int:
    """Run the chat lane once, or until nothing is left, moving the fake clock by `step`
    between runs (the other lanes stay stopped: these tests are about the chat's traffic)."""
    worker = bot.container.worker
    ran = worker.run_once()
    if until_idle:
        for _ in range(200):
            if worker.pending_count() == 0:
                break
            bot.clock.advance(seconds=step)
            ran += worker.run_once()
        assert worker.pending_count() == 0
    return ran


def notify(bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
    r = bot.post("/webhooks/alertmanager", body)
    assert r.status_code in (200, 202), r.text
    answer: dict[str, Any] = r.json()
    return answer


def with_alerts(count: int) -> dict[str, Any]:
    """The fixture's group with `count` distinct firing alerts (Alertmanager resends all of them)."""
    body = payload(FIXTURE)
    template = body["alerts"][0]
    alerts = []
    for i in range(count):
        alert = copy.deepcopy(template)
        alert["fingerprint"] = f"{i + 1:016x}"
        alert["labels"]["instance"] = f"worker-{i + 1}"
        alerts.append(alert)
    body["alerts"] = alerts
    return body


def alert_numbers(text: str) -> list[int]:
    """The numbers of the `with_alerts` alerts a journal post names (by fingerprint)."""
    return [int(fp, 16) for fp in re.findall(r"\[([0-9a-f]{16})\]", text)]


def paging_entries(bot: Bot) -> set[int]:
    """Journal entries paging wrote (the fixture is a P1, which pages; see test_paging_flow)."""
    with Session(bot.container.engine) as s:
        return {r.id or 0 for r in s.exec(select(JournalRow).where(JournalRow.author == "paging"))}


def outbox(bot: Bot, kind: str | None = None) -> list[OutboxRow]:
    """The chat rows of the outbox (cards and journal posts other than paging's), in order."""
    paging = paging_entries(bot)
    with Session(bot.container.engine) as s:
        rows = s.exec(select(OutboxRow).order_by(OutboxRow.id)).all()  # type: ignore[arg-type]
    return [
        r
        for r in rows
        if r.kind.startswith("chat.")
        and not (r.kind == journal.JOURNAL and set(r.payload["entry_ids"]) <= paging)
        and (kind is None or r.kind == kind)
    ]


def journal_rows(bot: Bot) -> list[JournalRow]:
    with Session(bot.container.engine) as s:
        return list(s.exec(select(JournalRow).order_by(JournalRow.id)).all())  # type: ignore[arg-type]


def incident(bot: Bot) -> IncidentRow:
    with Session(bot.container.engine) as s:
        return s.exec(select(IncidentRow)).one()


# -- local mode ---------------------------------------------------------------------------------


def test_local_mode_prints_a_readable_card_and_journal(db_url: str) -> None:
    bot = make_bot(db_url, policy=without_tickets())  # tickets: tests/delivery/test_ticket_*
    with driven(bot):
        assert notify(bot, payload(FIXTURE))["incident"] == "INC-1"
        deliver(bot)
        # the card, then the opening journal line (and paging's pages and lines)
        assert [r.kind for r in outbox(bot)] == [journal.CARD, journal.JOURNAL]
        assert {r.status for r in outbox(bot)} == {"done"}
        opened = bot.console.getvalue()
        bot.clock.advance(seconds=1)
        notify(bot, with_alerts(3))  # three more alerts join the group
        assert deliver(bot) == 0  # debounced: nothing before 2 s
        bot.clock.advance(seconds=2)
        assert deliver(bot) == 2
        deliver(bot, until_idle=True)
    out = bot.console.getvalue()

    assert f"=== [slack {CHANNEL}] new incident card ===" in opened
    card = opened.split("new incident card ===\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert card[0] == "INC-1 [P1] email-summarizer error rate above 20%"
    assert re.search(r"state: triggered\s+workflow: email-summarizer \(internal\)", card[1])
    assert "ticket: no tickets (Jira is off)" in card[2]
    assert any(line.strip().startswith("why P1: ") for line in card)
    assert card[-1].strip() == "alerts: 2 firing of 2"

    lines = [
        line
        for line in out.splitlines()
        if line.startswith(f"[slack {CHANNEL} thread ")
        and not line.endswith(" — paging")
        and "<@" not in line  # paging's mention of the AI lead
    ]
    assert len(lines) == 4
    # the global webhook token makes the sender the `default` source
    assert "] [change] Incident opened from default with 2 alert(s). Severity P1: " in lines[0]
    assert lines[0].endswith(" — ai-incident")
    joined = [line for line in lines if "[observation] Alert joined (firing)" in line]
    assert len(joined) == 3 and all(line.endswith(" — default") for line in joined)

    assert out.count("card updated ===") == 1
    updated = out.split("card updated ===\n", 1)[1]
    assert "alerts: 5 firing of 5" in updated
    # readable text only: no JSON, no Block Kit, no Python reprs
    for raw in ("{", "}", '"type"', "'text'", "blocks", "mrkdwn", "None"):
        assert raw not in out, raw


# -- Slack --------------------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin(tokens={"xoxb-test"}) as standin:
        yield standin


def slack_bot(db_url: str, slack: SlackStandin, *, slack_interval_s: float = 0.0) -> Bot:
    """A bot posting to the stand-in; unpaced unless asked (pacing: test_slack_pacing.py)."""
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-test"),
        slack_api_url=slack.url,
        database_url=db_url,
        ai_incident_webhook_token=SecretStr(TOKEN),
    )
    # Jira off: these tests count Slack calls; tickets have their own (test_ticket_delivery.py)
    return make_bot(
        db_url, policy=without_tickets(), settings=settings, slack_interval_s=slack_interval_s
    )


def _chat(call: Any) -> bool:
    """A post to the workflow's channel that is not paging's (mentions, its journal lines)."""
    text = str(call.params.get("text"))
    return call.params.get("channel") == CHANNEL and not (
        text.endswith(" — paging") or "<@" in text
    )


def top_level_posts(slack: SlackStandin) -> list[Any]:
    return [
        c for c in slack.calls("chat.postMessage") if not c.params.get("thread_ts") and _chat(c)
    ]


def replies(slack: SlackStandin) -> list[Any]:
    return [c for c in slack.calls("chat.postMessage") if c.params.get("thread_ts") and _chat(c)]


def card_message(slack: SlackStandin) -> dict[str, Any]:
    [card] = [
        m for m in slack.messages(CHANNEL) if "thread_ts" not in m or m["thread_ts"] == m["ts"]
    ]
    return card


def assert_valid_blocks(blocks: list[dict[str, Any]]) -> None:
    assert blocks
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()


def test_an_alert_storm_updates_one_card_and_batches_the_thread(
    db_url: str, slack: SlackStandin
) -> None:
    # paced as in production: the thread's replies batch while the channel is not due
    bot = slack_bot(db_url, slack, slack_interval_s=1.0)
    notifications, per_notification = 75, 4  # 300 alerts into one group
    with driven(bot):
        for n in range(1, notifications + 1):
            notify(bot, with_alerts(n * per_notification))
            bot.clock.advance(seconds=0.25)
            deliver(bot)
        deliver(bot, until_idle=True)

    total = notifications * per_notification
    assert len(top_level_posts(slack)) == 1
    updates = slack.calls("chat.update")
    assert 3 <= len(updates) <= 15, len(updates)
    thread = replies(slack)
    assert 3 <= len(thread) <= 20, len(thread)
    assert all(c.ok for c in slack.calls())

    # every alert is accounted for in the thread, in arrival order, none twice
    texts = [str(c.params["text"]) for c in thread]
    assert texts[0].startswith(f"[change] Incident opened from default with {per_notification}")
    named = [n for t in texts for n in alert_numbers(t)]
    assert not any("more (see" in t for t in texts)
    assert named == sorted(set(named))
    assert len(named) == total - per_notification
    assert all(row.slack_ts is not None for row in journal_rows(bot))

    # the card in Slack shows the last state, and its updates never went backwards
    card = card_message(slack)
    assert f"{total} firing of {total}" in card["text"]
    counts = [int(re.findall(r"(\d+) firing of", str(c.params["text"]))[0]) for c in updates]
    assert counts == sorted(counts) and counts[-1] == total
    assert [r.status for r in outbox(bot)] == ["done"] * len(outbox(bot))
    assert len(outbox(bot, journal.CARD)) == 1 + len(updates)


def test_card_blocks_are_valid_block_kit(db_url: str, slack: SlackStandin) -> None:
    bot = slack_bot(db_url, slack)
    with driven(bot):
        body = payload(FIXTURE)
        body["commonAnnotations"]["summary"] = "Summarizer <leaks> & *stars* " + "x" * 200
        notify(bot, body)
        deliver(bot)
        bot.clock.advance(seconds=1)
        notify(bot, with_alerts(3))
        deliver(bot, until_idle=True)
    [post] = top_level_posts(slack)
    [update] = slack.calls("chat.update")
    for call in (post, update):
        assert call.ok and call.params["text"]
        assert_valid_blocks(call.params["blocks"])
    assert_valid_blocks(card_message(slack)["blocks"])
    assert metadata_keys([card_message(slack)]) == ["card:1"]


def test_a_429_on_update_is_honoured_and_nothing_is_reordered_or_lost(
    db_url: str, slack: SlackStandin
) -> None:
    bot = slack_bot(db_url, slack)
    with driven(bot):
        notify(bot, with_alerts(2))
        deliver(bot)
        slack.fail_next("chat.update", status=429, retry_after=7)
        notify(bot, with_alerts(3))
        bot.clock.advance(seconds=2)
        deliver(bot)
        limited_at = bot.clock()
        [limited] = slack.calls("chat.update")
        assert limited.status == 429
        [card_row] = [r for r in outbox(bot, journal.CARD) if r.status != "done"]
        assert card_row.status == "pending"
        assert card_row.next_attempt_at == limited_at + timedelta(seconds=7)
        assert "rate limited" in (card_row.last_error or "")

        # more changes meanwhile: they fold into the waiting update or queue behind it
        notify(bot, with_alerts(4))
        calls_before = len(slack.calls())
        bot.clock.advance(seconds=6.5)
        assert deliver(bot) == 0
        assert len(slack.calls()) == calls_before
        bot.clock.advance(seconds=0.5)
        deliver(bot, until_idle=True)
        [retried] = [r for r in outbox(bot, journal.CARD) if r.id == card_row.id]
        delivered_at: datetime | None = retried.delivered_at
        assert delivered_at is not None and delivered_at >= limited_at + timedelta(seconds=7)

    ok_update = slack.calls("chat.update")[-1]
    assert ok_update.ok and "4 firing of 4" in str(ok_update.params["text"])
    assert len(slack.calls("chat.update")) == 2  # the 429, then one update with the latest state
    assert "4 firing of 4" in card_message(slack)["text"]
    texts = [str(c.params["text"]) for c in replies(slack)]
    assert [alert_numbers(t) for t in texts] == [[], [3], [4]]
    # the reply about alert 4 was queued after the limited update and went out after it
    assert replies(slack)[-1].at > ok_update.at
    assert all(r.status == "done" for r in outbox(bot))
    assert all(row.slack_ts is not None for row in journal_rows(bot))


def test_channel_not_found_gives_up_and_the_rest_still_flows(
    db_url: str, slack: SlackStandin, caplog: pytest.LogCaptureFixture
) -> None:
    bot = slack_bot(db_url, slack)
    with driven(bot), caplog.at_level(logging.WARNING):
        notify(bot, with_alerts(2))
        deliver(bot)
        slack.fail_next("chat.update", error="channel_not_found")
        notify(bot, with_alerts(3))
        bot.clock.advance(seconds=2)
        deliver(bot)
        [failed] = [r for r in outbox(bot) if r.status == "failed"]
        assert failed.kind == journal.CARD and failed.attempts == 1
        assert failed.last_error == "chat.update: channel_not_found"
        # the card recovers with the next change
        notify(bot, with_alerts(4))
        bot.clock.advance(seconds=2)
        deliver(bot, until_idle=True)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("channel_not_found" in m for m in errors)
    assert [c.status for c in slack.calls("chat.update")] == [200, 200]
    assert [c.ok for c in slack.calls("chat.update")] == [False, True]
    assert "4 firing of 4" in card_message(slack)["text"]
    assert len(replies(slack)) == 3 and all(c.ok for c in replies(slack))


@pytest.mark.parametrize("error", ["ratelimited", "internal_error"])
def test_transient_slack_errors_are_retried(
    db_url: str, slack: SlackStandin, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    bot = slack_bot(db_url, slack)
    with driven(bot), caplog.at_level(logging.WARNING):
        notify(bot, with_alerts(2))
        deliver(bot)
        slack.fail_next("chat.update", error=error, times=2)
        notify(bot, with_alerts(3))
        bot.clock.advance(seconds=2)
        deliver(bot)
        [card_row] = [r for r in outbox(bot, journal.CARD) if r.status != "done"]
        assert card_row.status == "pending" and error in (card_row.last_error or "")
        deliver(bot, until_idle=True, step=0.25)
    assert [c.ok for c in slack.calls("chat.update")] == [False, False, True]
    assert all(r.status == "done" for r in outbox(bot))
    assert [r.attempts for r in outbox(bot, journal.CARD)] == [1, 3]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_reply_whose_answer_was_lost_is_not_posted_twice(
    db_url: str, slack: SlackStandin
) -> None:
    bot = slack_bot(db_url, slack)
    with driven(bot):
        notify(bot, with_alerts(2))
        deliver(bot)
        slack.fail_next("chat.postMessage", status=500, effect=True)
        notify(bot, with_alerts(3))
        bot.clock.advance(seconds=2)
        deliver(bot, until_idle=True)
    paging = {f"journal:{i}" for i in paging_entries(bot)}
    keys = [
        k for k in metadata_keys(slack.messages(CHANNEL)) if k not in paging and "notify" not in k
    ]
    assert len(keys) == len(set(keys)) == 3  # the card and two replies, each once
    assert len(slack.calls("conversations.replies")) == 1  # the retry looked before posting
    assert all(r.status == "done" for r in outbox(bot))


def test_a_card_post_that_gave_up_does_not_hold_up_the_incident_for_ever(db_url: str) -> None:
    with SlackStandin(tokens={"xoxb-test"}, strict_channels=True) as slack:
        bot = slack_bot(db_url, slack)
        with driven(bot):
            notify(bot, with_alerts(2))  # the bot is in no channel yet: channel_not_found
            deliver(bot, until_idle=True)
            assert {r.status for r in outbox(bot)} == {"failed"}
            assert all(
                c.response == {"ok": False, "error": "channel_not_found"}
                for c in slack.calls()
                if c.params.get("channel") == CHANNEL
            )
            slack.add_channel(channel_id=CHANNEL)
            notify(bot, with_alerts(3))
            bot.clock.advance(seconds=2)
            deliver(bot, until_idle=True)
            assert incident(bot).slack_ts is not None
        [card] = [c for c in top_level_posts(slack) if c.ok]
        assert "3 firing of 3" in str(card.params["text"])
        [reply] = [c for c in replies(slack) if c.ok]
        assert card.response is not None and reply.params["thread_ts"] == card.response["ts"]
        assert alert_numbers(str(reply.params["text"])) == [3]
