"""`/ai-incident timeline` and `postmortem`: posted in the incident thread from the journal."""

from __future__ import annotations

import time

from tests.conftest import Bot, payload
from tests.handlers.test_slack_commands import incident, run
from tests.standins.slack import SlackStandin


def thread_text(bot: Bot, slack: SlackStandin, marker: str) -> str:
    # Slack posts are paced at one per second per channel, and the thread has many
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        # debounced card updates ahead of the report in the incident's queue come due
        bot.clock.advance(seconds=3)
        bot.container.poke()
        inc = incident(bot)
        if inc.slack_channel and inc.slack_ts:
            for m in slack.thread(inc.slack_channel, inc.slack_ts):
                if marker in m.get("text", ""):
                    return str(m["text"])
        time.sleep(0.05)
    raise AssertionError(f"nothing with {marker!r} in the thread")


def test_timeline_and_postmortem_are_posted_in_the_thread(sbot: Bot, slack: SlackStandin) -> None:
    firing = payload("alertmanager_v4_firing.json")
    assert sbot.post("/webhooks/alertmanager", firing).status_code == 202
    run(sbot, slack, "ack")
    run(sbot, slack, "note action: rolled the prompt back to v11 <!channel>")
    run(sbot, slack, "rootcause provider changed the default model")
    run(sbot, slack, "resolve INC-1 rollback held")

    answer = run(sbot, slack, "timeline")
    assert answer == "The timeline of INC-1 is being posted in its thread."
    timeline = thread_text(sbot, slack, "Timeline of INC-1")
    assert "milestone · triggered" in timeline and "milestone · resolved" in timeline
    assert "root cause" in timeline and "provider changed the default model" in timeline
    assert "<!channel>" not in timeline  # people's words cannot mention everyone

    assert "TO FILL IN" in run(sbot, slack, "postmortem INC-1")
    draft = thread_text(sbot, slack, "Postmortem draft: INC-1")
    for section in (
        "*Summary*",
        "*Impact*",
        "*Timeline*",
        "*What was tried*",
        "*Root cause*",
        "*Prompt version*",
        "*Model version*",
        "*External API changes*",
        "*Follow-ups*",
    ):
        assert section in draft
    assert "Resolution: rollback held" in draft
    assert "provider changed the default model" in draft
    assert "rolled the prompt back to v11" in draft  # what was tried
    assert "[TO FILL IN: vendor model updates" in draft
    slack.assert_no_violations()
