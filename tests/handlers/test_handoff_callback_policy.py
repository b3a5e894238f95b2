"""`POST /webhooks/handoffs` checks `callback_url` before storing anything: public https by default,
the policy's `callback_allow` targets, loopback in local mode; a refused target is a 422 naming
`callback_url`. DNS is a fake the test programs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.config import Policy
from bot.settings import Settings
from storage.models import HandoffRow
from tests.conftest import TOKEN, Bot, example_policy, make_bot
from tests.standins.slack import SlackStandin
from tests.support.databases import database
from tests.support.handoffs import agent_headers, encoded, handoff_body
from tests.support.resolver import PUBLIC, FakeResolver
from tests.support.slack_requests import SECRET

NAMES = {
    "agent.example.com": [PUBLIC],
    "internal.example.com": ["10.0.0.9"],
    "mixed.example.com": [PUBLIC, "192.168.1.1"],
    "rebind.example.com": ["169.254.169.254"],
    "v6.example.com": ["::ffff:127.0.0.1"],
    "hooks.internal.example": ["10.20.30.40"],
    "lab.corp.example": ["172.16.5.5"],
}


def with_allow_lists(policy: Policy) -> Policy:
    """The example policy with a policy-wide and an `agents`-only allow list."""
    agents = policy.sources["agents"].model_copy(
        update={"callback_allow": ["hooks.internal.example"]}
    )
    return policy.model_copy(
        update={
            "handoffs": policy.handoffs.model_copy(update={"callback_allow": ["172.16.0.0/12"]}),
            "sources": {**policy.sources, "agents": agents},
        }
    )


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver(NAMES)


@pytest.fixture
def slack_bot(tmp_path: Path, slack: SlackStandin, resolver: FakeResolver) -> Iterator[Bot]:
    """A bot in Slack mode (not local) on SQLite."""
    with database("sqlite", tmp_path) as url:
        settings = Settings(
            database_url=url,
            ai_incident_webhook_token=TOKEN,
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=slack.url,
        )
        b = make_bot(
            url, policy=with_allow_lists(example_policy()), settings=settings, resolver=resolver
        )
        with b.client:
            yield b
        b.container.engine.dispose()


def stored(bot: Bot) -> list[HandoffRow]:
    with Session(bot.container.engine) as s:
        return list(s.exec(select(HandoffRow)).all())


def send(bot: Bot, url: str, *, signed: bool = False, key: str = "h-1") -> Any:
    body = handoff_body(key, callback_url=url)
    if signed:
        raw = encoded(body)
        return bot.client.post("/webhooks/handoffs", content=raw, headers=agent_headers(raw))
    return bot.post("/webhooks/handoffs", body)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8080/decisions", "127.0.0.1 is a loopback address"),
        ("https://localhost/decisions", "localhost (127.0.0.1) is a loopback address"),
        ("https://0.0.0.0/decisions", "0.0.0.0 is the unspecified address"),
        ("https://2130706433/decisions", "2130706433 (127.0.0.1) is a loopback address"),
        ("https://0x7f.1/decisions", "0x7f.1 (127.0.0.1) is a loopback address"),
        ("https://0177.0.0.1/decisions", "Invalid IPv4 address: '0177.0.0.1'"),
        ("https://[::1]/decisions", "::1 is a loopback address"),
        ("https://[::ffff:127.0.0.1]/", "is a loopback address"),
        ("https://169.254.169.254/latest/meta-data/", "is a cloud metadata address"),
        ("https://[fd00:ec2::254]/", "is a cloud metadata address"),
        ("https://10.0.0.5/decisions", "10.0.0.5 is a private address"),
        ("https://internal.example.com/d", "internal.example.com (10.0.0.9) is a private address"),
        ("https://mixed.example.com/d", "mixed.example.com (192.168.1.1) is a private address"),
        ("https://rebind.example.com/d", "is a cloud metadata address"),
        ("https://v6.example.com/d", "is a loopback address"),
        ("http://agent.example.com/d", "plain http to agent.example.com is not allowed"),
        ("https://nowhere.example.com/d", "nowhere.example.com does not resolve"),
    ],
)
def test_refused_callback_targets_are_422_naming_callback_url_and_nothing_is_stored(
    slack_bot: Bot, url: str, says: str
) -> None:
    r = send(slack_bot, url)
    assert r.status_code == 422, r.text
    answer = r.json()
    assert answer["fields"] == [
        {"field": "callback_url", "message": answer["fields"][0]["message"]}
    ]
    assert says in answer["fields"][0]["message"]
    assert answer["error"].startswith("invalid field callback_url: ")
    assert stored(slack_bot) == []


def test_a_public_https_target_is_accepted_after_looking_it_up(
    slack_bot: Bot, resolver: FakeResolver
) -> None:
    r = send(slack_bot, "https://agent.example.com/decisions")
    assert r.status_code == 202, r.text
    assert ("agent.example.com", 443) in resolver.lookups
    [row] = stored(slack_bot)
    assert row.callback_url == "https://agent.example.com/decisions"


def test_dns_that_does_not_answer_is_503_so_the_agent_retries(
    slack_bot: Bot, resolver: FakeResolver
) -> None:
    resolver.failing.add("agent.example.com")
    r = send(slack_bot, "https://agent.example.com/decisions")
    assert r.status_code == 503, r.text
    assert "callback_url" in r.json()["error"] and r.headers["retry-after"] == "30"
    assert stored(slack_bot) == []
    resolver.failing.clear()
    assert send(slack_bot, "https://agent.example.com/decisions").status_code == 202


def test_the_policy_wide_and_the_sources_allow_lists(slack_bot: Bot) -> None:
    # handoffs.callback_allow: 172.16.0.0/12, for every source, plain http allowed
    assert send(slack_bot, "http://lab.corp.example:8080/d", key="a").status_code == 202
    assert send(slack_bot, "http://172.16.0.1/d", key="b").status_code == 202
    # sources.agents.callback_allow: hooks.internal.example, for that source only
    assert (
        send(slack_bot, "http://hooks.internal.example/d", signed=True, key="c").status_code == 202
    )
    r = send(slack_bot, "http://hooks.internal.example/d", key="d")  # the global token
    assert r.status_code == 422
    assert "(10.20.30.40) is a private address" in r.json()["fields"][0]["message"]
    # listing private targets unlocks nothing else
    assert send(slack_bot, "http://10.0.0.5/d", signed=True, key="e").status_code == 422
    assert send(slack_bot, "https://169.254.169.254/", signed=True, key="f").status_code == 422
    assert sorted(row.idempotency_key for row in stored(slack_bot)) == ["a", "b", "c"]


def test_local_mode_allows_loopback_and_nothing_else_private(bot: Bot) -> None:
    assert bot.container.settings.local_mode
    assert send(bot, "http://127.0.0.1:8080/decisions", key="a").status_code == 202
    assert send(bot, "http://localhost:8080/decisions", key="b").status_code == 202
    assert send(bot, "http://[::1]:8080/decisions", key="c").status_code == 202
    for i, url in enumerate(["http://10.0.0.1/", "http://169.254.169.254/", "http://0.0.0.0/"]):
        r = send(bot, url, key=f"x{i}")
        assert r.status_code == 422 and r.json()["fields"][0]["field"] == "callback_url"
    assert len(stored(bot)) == 3
