"""`ai-incident check-config` reports people who may be paged but cannot be reached.

The first test runs the command; the others check the same steps in process (the policy's
own problems, then weak secrets and unreachable people), which is what the command prints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import unreachable_problems
from bot.config import ConfigError, parse_policy, weak_secret_problems
from tests.test_cli import run_cli

POLICY = """\
people:
  ann:
    slack_id: U0ANN0001
  dave:
    email: dave@example.com
roles:
  ai_lead: [ann]
  founder: [dave]
schedules:
  primary:
    layers:
      - users: [ann, dave]
"""


def test_a_paging_target_without_slack_id_or_provider_is_reported(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY, encoding="utf-8")
    r = run_cli("check-config", str(policy), database_url="sqlite://", workdir=tmp_path)
    assert r.returncode == 1
    [problem, summary] = r.stderr.strip().splitlines()
    assert problem == (
        f"{policy}:4: people.dave: dave may be paged (roles.founder.0, "
        "schedules.primary.layers.0.users.1) but cannot be reached: no slack_id, and no paging "
        "provider (pagerduty_routing_key, opsgenie_api_key, webhook_url) is configured"
    )
    assert summary == f"{policy}: 1 problem(s)"


def test_a_provider_makes_everyone_reachable() -> None:
    text = POLICY + "paging:\n  webhook_url: http://127.0.0.1:9/page\n"
    policy = parse_policy(text, file="policy.yml", env={})
    assert unreachable_problems(policy, text, "policy.yml") == []
    assert weak_secret_problems(policy, text, file="policy.yml") == []


def test_a_person_referenced_but_not_defined_is_reported_once_as_a_reference() -> None:
    # undefined people are the reference check's to report, with their own path and line
    with pytest.raises(ConfigError) as raised:
        parse_policy(POLICY.replace("[ann, dave]", "[ann, erin]"), file="policy.yml", env={})
    messages = [str(p) for p in raised.value.problems]
    assert any(
        "schedules.primary.layers.0.users.1: 'erin' is not defined under people" in m
        for m in messages
    ), messages
    assert not any("cannot be reached" in m for m in messages)
