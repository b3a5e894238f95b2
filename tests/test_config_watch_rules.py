"""Per-workflow severity thresholds and the silence interval in the policy file."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from bot.config import ConfigError, ConfigProblem, Policy, SeverityOverrides, parse_policy
from bot.domain.severity import SeverityRules
from tests.conftest import example_policy


def parse(text: str) -> Policy:
    return parse_policy(textwrap.dedent(text), file="policy.yml", env={})


def problems(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value.problems


def test_overrides_take_every_key_of_the_top_level_thresholds() -> None:
    assert set(SeverityOverrides.model_fields) == set(SeverityRules.model_fields)


def test_rules_for_merges_the_workflows_keys_over_the_top_level() -> None:
    policy = parse(
        """
        severity:
          error_rate_p3: 0.03
          min_runs: 30
        workflows:
          chat:
            severity:
              min_runs: 100
              hold_down: 30m
              latency_ms: 2500
          batch: {}
        """
    )
    chat = policy.rules_for("chat")
    assert chat.min_runs == 100
    assert chat.hold_down == timedelta(minutes=30)
    assert chat.latency_ms == 2500
    assert chat.error_rate_p3 == 0.03  # from the top level
    assert chat.error_rate_p2_sustained == timedelta(hours=2)  # the default
    assert policy.rules_for("batch") == policy.severity
    assert policy.rules_for("not-in-the-file") == policy.severity
    assert policy.severity.min_runs == 30


def test_an_unknown_override_key_is_named_with_its_line() -> None:
    found = problems(
        """
        workflows:
          chat:
            severity:
              min_runz: 10
        """
    )
    assert [(p.path, p.line) for p in found] == [("workflows.chat.severity.min_runz", 5)]
    assert "unknown key 'min_runz'; did you mean 'min_runs'?" in found[0].message


def test_override_values_are_validated_like_the_top_level() -> None:
    found = problems(
        """
        workflows:
          chat:
            severity:
              hold_down: soon
              min_runs: 0
        """
    )
    by_path = {p.path: p for p in found}
    assert "invalid duration 'soon'" in by_path["workflows.chat.severity.hold_down"].message
    assert "at least 1" in by_path["workflows.chat.severity.min_runs"].message


def test_merged_thresholds_must_still_fit_together() -> None:
    # 0.1 is fine on its own, but above the top-level error_rate_p2 of 0.05
    found = problems(
        """
        workflows:
          chat:
            severity:
              error_rate_p3: 0.1
        """
    )
    assert [(p.path, p.line) for p in found] == [("workflows.chat.severity", 4)]
    assert "error_rate_p3 <= error_rate_p2 <= error_rate_p1" in found[0].message
    # raising the workflow's P2 and P1 thresholds with it is fine
    policy = parse(
        """
        workflows:
          chat:
            severity: {error_rate_p3: 0.1, error_rate_p2: 0.2, error_rate_p1: 0.4}
        """
    )
    assert policy.rules_for("chat").error_rate_p2 == 0.2


def test_expect_every_is_a_duration_or_off() -> None:
    policy = parse(
        """
        workflows:
          a: {watch: {expect_every: 30m}}
          b: {watch: {expect_every: "off"}}
          c: {}
        """
    )
    a, b, c = (policy.workflow(name).watch for name in "abc")
    assert (a.expect_interval, a.silence_off) == (timedelta(minutes=30), False)
    assert (b.expect_interval, b.silence_off) == (None, True)
    assert (c.expect_interval, c.silence_off, c.expect_every) == (None, False, None)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("soon", "invalid duration 'soon'"),
        ("0", "longer than 0; write 'off'"),
        ("true", "a duration such as '30m', or 'off'"),
    ],
)
def test_a_bad_expect_every_says_what_it_takes(value: str, says: str) -> None:
    found = problems(f"workflows:\n  a:\n    watch:\n      expect_every: {value}\n")
    assert [(p.path, p.line) for p in found] == [("workflows.a.watch.expect_every", 4)]
    assert says in found[0].message


def test_the_example_shows_an_override_and_both_kinds_of_expect_every() -> None:
    example = example_policy()
    assert example.rules_for("support-chatbot").latency_ms == 3000
    assert example.rules_for("support-chatbot").min_runs == 50
    assert example.rules_for("email-summarizer") == example.severity
    assert example.workflow("support-chatbot").watch.expect_interval == timedelta(minutes=30)
    assert example.workflow("weekly-report").watch.silence_off
