"""The composition root: one Slack user-group cache serves every role check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot.services.commands import Invocation
from bot.settings import Settings
from handlers.handoff_schema import HandoffBody
from tests.conftest import TOKEN, make_bot, without_tickets
from tests.standins.slack import SlackStandin
from tests.support.handoffs import handoff_body

GROUP = "S0RESPOND1"
CAROL = "U0CAROL003"  # in neither role by name, only through the user group


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin(tokens={"xoxb-test"}) as standin:
        standin.add_usergroup(GROUP, [CAROL])
        yield standin
    standin.assert_no_violations()


def test_commands_and_handoffs_share_one_user_group_cache(db_url: str, slack: SlackStandin) -> None:
    policy = without_tickets()
    roles = policy.roles.model_copy(
        update={"reviewers": [*policy.roles.reviewers, f"group:{GROUP}"]}
    )
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-test"),
        slack_api_url=slack.url,
        database_url=db_url,
        ai_incident_webhook_token=SecretStr(TOKEN),
    )
    bot = make_bot(db_url, policy=policy.model_copy(update={"roles": roles}), settings=settings)
    container = bot.container
    assert container.handoffs is not None
    try:
        answer = container.commands.run(
            Invocation(text="pause email-summarizer drill", user=CAROL, channel="C0SUMMARY01")
        )
        assert answer.startswith("Workflow email-summarizer is paused")
        body = HandoffBody.model_validate(handoff_body("shared-cache"))
        received = container.handoffs.receive(
            body.to_domain(default_workflow="unassigned"), source="agents"
        )
        claimed = container.handoffs.claim(
            handoff_id=int(received.handoff_id.removeprefix("HO-")), user=CAROL
        )
        assert claimed.ok, claimed.text
        # the command's lookup filled the cache the handoff's reviewer check then read
        assert len(slack.calls("usergroups.users.list")) == 1
    finally:
        container.engine.dispose()
