"""A Slack outage (5xx for a minute, then 429s) loses nothing and duplicates nothing."""

from __future__ import annotations

import copy
from collections import Counter

from sqlmodel import Session, select

from storage.models import IncidentRow, JournalRow, OutboxRow
from tests.conftest import Bot, payload
from tests.standins.slack import SlackStandin


def open_rows(bot: Bot) -> list[OutboxRow]:
    with Session(bot.container.engine) as s:
        return [
            r
            for r in s.exec(select(OutboxRow)).all()
            if r.status in ("pending", "in_flight", "failed")
        ]


def test_an_outage_then_rate_limits_lose_nothing(sbot: Bot, slack: SlackStandin) -> None:
    sbot.container.stop_delivery()  # drive every lane and the clock by hand
    slack.fail_next("*", status=503, times=8)  # about a minute and a half of backoff
    slack.fail_next("*", status=429, retry_after=3, times=6)
    firing = payload("alertmanager_v4_firing.json")
    assert sbot.post("/webhooks/alertmanager", firing).status_code == 202
    for i in range(30):
        more = copy.deepcopy(firing)
        extra = copy.deepcopy(firing["alerts"][0])
        extra["fingerprint"] = f"storm{i:04d}"
        more["alerts"].append(extra)
        assert sbot.post("/webhooks/alertmanager", more).status_code == 202
        if i % 10 == 0:
            sbot.container.deliver_due()
    # a minute and more of failures: the rows wait with backoff, nothing is dropped
    for _ in range(400):
        sbot.clock.advance(seconds=30)
        sbot.container.deliver_due()
        if not open_rows(sbot):
            break
    assert open_rows(sbot) == []
    statuses = Counter(c.status for c in slack.calls())
    assert statuses[503] == 8 and statuses[429] == 6
    keys = [m["metadata"]["event_payload"]["key"] for m in slack.messages() if m.get("metadata")]
    assert len(keys) == len(set(keys)), "a message was posted twice"
    # the card is the only top-level message outside the pages' direct messages
    top = [
        m
        for m in slack.messages()
        if m.get("thread_ts") in (None, m["ts"]) and not m["channel"].startswith("D")
    ]
    assert len(top) == 1
    with Session(sbot.container.engine) as s:
        inc = s.exec(select(IncidentRow)).one()
        entries = s.exec(select(JournalRow)).all()
    assert inc.slack_ts == top[0]["ts"]
    assert all(e.slack_ts is not None for e in entries)
    thread_text = "\n".join(str(m["text"]) for m in slack.messages() if m["ts"] != inc.slack_ts)
    for i in range(30):
        assert f"storm{i:04d}" in thread_text
