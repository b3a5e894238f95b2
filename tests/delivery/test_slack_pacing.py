"""Posts to one channel are paced to about one per second; other channels do not wait."""

from __future__ import annotations

import time

from slack_sdk import WebClient

from bot.integrations.slack_chat import SlackChat
from tests.standins.slack import SlackStandin


def test_posts_to_one_channel_are_spaced_and_other_channels_are_not() -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    # the stand-in enforces Slack's ~1 message/s per channel with 429s
    with SlackStandin(rate_limit_per_channel=True) as slack:
        chat = SlackChat(WebClient(token="xoxb-test", base_url=slack.url), sleep=sleep)
        for i in range(3):
            chat.post(channel="C0SUMMARY01", text=f"m{i}", blocks=None, key=f"k{i}")
        chat.post(channel="C0SUPPORT01", text="other", blocks=None, key="o")
        assert len(slept) == 2 and all(0.5 < s <= 1.0 for s in slept)
        assert [c.status for c in slack.calls("chat.postMessage")] == [200] * 4
