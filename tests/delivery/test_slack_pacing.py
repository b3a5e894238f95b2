"""Posts to one channel are paced to about one per second on the injected clock; nothing waits.

The adapter never sleeps: a post to a channel that is not due raises NotYet with its time, and
the worker defers that row alone (uncounted, not uncertain) while other channels go on at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.delivery.worker import Attempt, DeliveryWorker
from bot.integrations.ports import NotYet, PostedMessage, post_once
from bot.integrations.slack_chat import ChannelPace, SlackChat
from storage.db import create_db_engine, migrate, session_scope
from storage.models import OutboxRow
from storage.outbox import enqueue
from tests.conftest import FakeClock
from tests.standins.slack import SlackStandin

SUMMARY, SUPPORT = "C0SUMMARY01", "C0SUPPORT01"


def test_posts_to_one_channel_are_spaced_and_other_channels_are_not() -> None:
    clock = FakeClock()
    # the stand-in enforces Slack's ~1 message/s per channel with 429s, on the wall clock: the
    # fake clock moves faster, so the burst of one it allows is all these posts may use
    with SlackStandin(rate_limit_per_channel=True) as slack:
        chat = SlackChat(WebClient(token="xoxb-test", base_url=slack.url), clock=clock)
        chat.post(channel=SUMMARY, text="m0", blocks=None, key="k0")
        with pytest.raises(NotYet) as raised:
            chat.post(channel=SUMMARY, text="m1", blocks=None, key="k1")
        assert raised.value.at == clock() + timedelta(seconds=1)
        chat.post(channel=SUPPORT, text="other", blocks=None, key="o")  # not held back
        clock.advance(seconds=0.9)
        with pytest.raises(NotYet):
            chat.post(channel=SUMMARY, text="m1", blocks=None, key="k1")
        assert [c.status for c in slack.calls("chat.postMessage")] == [200, 200]
        assert [m["text"] for m in slack.messages(SUMMARY)] == ["m0"]


def test_an_unpaced_adapter_never_defers() -> None:
    clock = FakeClock()
    with SlackStandin() as slack:
        chat = SlackChat(
            WebClient(token="xoxb-test", base_url=slack.url), per_channel_interval=0, clock=clock
        )
        for i in range(3):
            chat.post(channel=SUMMARY, text=f"m{i}", blocks=None, key=f"k{i}")
        assert len(slack.messages(SUMMARY)) == 3


def test_one_post_to_a_channel_at_a_time_across_lanes() -> None:
    clock = FakeClock()
    pace = ChannelPace(timedelta(seconds=1), clock)
    inside, release = threading.Event(), threading.Event()
    outcome: list[str] = []

    def first() -> None:
        with pace.turn(SUMMARY):
            inside.set()
            release.wait(10)
        outcome.append("posted")

    lane = threading.Thread(target=first)
    lane.start()
    assert inside.wait(10)
    # the first post's answer has not come: another lane's post to the channel is not due
    with pytest.raises(NotYet), pace.turn(SUMMARY):
        pass
    with pace.turn(SUPPORT):  # another channel is
        outcome.append("other")
    release.set()
    lane.join(10)
    assert outcome == ["other", "posted"]


# -- the worker defers a paced row alone ------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database (the worker's deferral is not about the backend)."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


class PacedChat:
    """A ChatNotifier whose channels take one post a second on the clock (a ChannelPace)."""

    def __init__(self, clock: FakeClock) -> None:
        self.pace = ChannelPace(timedelta(seconds=1), clock)
        self.posts: list[tuple[str, str]] = []
        self.looked: list[str] = []

    def post(self, *, channel: str, text: str, key: str, **_: Any) -> PostedMessage:
        with self.pace.turn(channel):
            self.posts.append((channel, key))
        return PostedMessage(channel=channel, ts=f"{len(self.posts)}.0")

    def find(self, *, channel: str, key: str, thread_ts: str | None = None) -> str | None:
        self.looked.append(key)
        found = [i for i, posted in enumerate(self.posts) if posted == (channel, key)]
        return f"{found[0] + 1}.0" if found else None


def rows(engine: Engine) -> dict[str, OutboxRow]:
    with Session(engine) as session:
        return {r.idempotency_key: r for r in session.exec(select(OutboxRow)).all()}


def test_a_channel_not_due_defers_its_row_alone_uncounted(engine: Engine) -> None:
    clock = FakeClock()
    chat = PacedChat(clock)

    def handler(attempt: Attempt) -> dict[str, Any]:
        channel = str(attempt.payload["channel"])
        for part in range(int(attempt.payload.get("parts", 1))):
            post_once(
                chat,
                channel=channel,
                text="x",
                key=f"{attempt.idempotency_key}#{part}",
                uncertain=attempt.uncertain,
                sent=attempt.sent,
            )
        return {}

    with session_scope(engine) as session:
        for key, order, channel in (
            ("a1", "incident:1", SUMMARY),
            ("a2", "incident:1", SUMMARY),  # behind a1 on its key
            ("b1", "incident:2", SUMMARY),  # the same channel, another key
            ("c1", "incident:3", SUPPORT),
            ("dm", "page:1", "D0ALICE001"),
        ):
            enqueue(
                session,
                kind="chat.post",
                idempotency_key=key,
                ordering_key=order,
                payload={"channel": channel},
                now=clock(),
            )
    worker = DeliveryWorker(engine=engine, handlers={"chat.post": handler}, clock=clock)
    worker.run_once()
    # one post to the busy channel; the other channel and the DM went on at once
    assert chat.posts == [(SUMMARY, "a1#0"), (SUPPORT, "c1#0"), ("D0ALICE001", "dm#0")]
    b1 = rows(engine)["b1"]
    assert b1.status == "pending" and b1.attempts == 0 and b1.last_error is None
    assert b1.next_attempt_at == clock() + timedelta(seconds=1)
    clock.advance(seconds=1)
    worker.run_once()
    # a2 (behind a1) and b1 are due at once; one of them gets the channel's turn
    clock.advance(seconds=1)
    worker.run_once()
    assert sorted(k for c, k in chat.posts if c == SUMMARY) == ["a1#0", "a2#0", "b1#0"]
    assert all(r.status == "done" and r.attempts == 1 for r in rows(engine).values())
    assert chat.looked == []  # a deferral is not uncertain: nobody looked before posting


def test_a_row_deferred_after_part_of_it_went_out_looks_before_posting_again(
    engine: Engine,
) -> None:
    clock = FakeClock()
    chat = PacedChat(clock)

    def two_parts(attempt: Attempt) -> dict[str, Any]:
        for part in range(2):
            post_once(
                chat,
                channel=SUMMARY,
                text="x",
                key=f"report#{part}",
                uncertain=attempt.uncertain,
                sent=attempt.sent,
            )
        return {}

    with session_scope(engine) as session:
        enqueue(
            session,
            kind="chat.report",
            idempotency_key="report",
            ordering_key="incident:1",
            payload={},
            now=clock(),
        )
    worker = DeliveryWorker(engine=engine, handlers={"chat.report": two_parts}, clock=clock)
    worker.run_once()
    row = rows(engine)["report"]
    assert row.status == "pending" and row.attempts == 1  # counted: a part went out
    clock.advance(seconds=1)
    worker.run_once()
    assert chat.looked == ["report#0", "report#1"]
    assert chat.posts == [(SUMMARY, "report#0"), (SUMMARY, "report#1")]  # none twice
    assert rows(engine)["report"].status == "done"
