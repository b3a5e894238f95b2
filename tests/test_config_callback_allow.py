"""`handoffs.callback_allow` and `sources.<name>.callback_allow`: read, checked, and reported by
`check-config` with file and line."""

from __future__ import annotations

from pathlib import Path

from bot.config import parse_policy
from tests.conftest import EXAMPLE
from tests.test_cli import run_cli

POLICY = """\
handoffs:
  callback_allow: ["10.0.0.0/8", "hooks.internal.example"]
sources:
  agents:
    kind: agent
    callback_allow:
      - 192.168.10.0/24
      - lab-agent.corp.example
"""


def test_both_allow_lists_are_read() -> None:
    policy = parse_policy(POLICY, file="p.yml", env={})
    assert policy.handoffs.callback_allow == ["10.0.0.0/8", "hooks.internal.example"]
    assert policy.sources["agents"].callback_allow == ["192.168.10.0/24", "lab-agent.corp.example"]


def test_the_examples_commented_allow_list_is_valid_once_uncommented() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "  # callback_allow: " in text
    policy = parse_policy(
        text.replace("  # callback_allow: ", "  callback_allow: "), file="x.yml", env={}
    )
    assert policy.handoffs.callback_allow == ["10.0.0.0/8", "hooks.internal.example"]


def test_check_config_reports_each_bad_entry_with_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(
        POLICY.replace('"hooks.internal.example"', '"0.0.0.0/0"').replace(
            "192.168.10.0/24", "https://hooks.example/"
        ),
        encoding="utf-8",
    )
    r = run_cli("check-config", str(policy), database_url="sqlite://", workdir=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"{policy}:2: handoffs.callback_allow.1: '0.0.0.0/0' would allow every address, "
        "cloud metadata included; list the networks your agents live in",
        f"{policy}:7: sources.agents.callback_allow.0: 'https://hooks.example/' is neither a "
        "host name (hooks.internal.example) nor a network (10.0.0.0/8, fd00::/8)",
        f"{policy}: 2 problem(s)",
    ]


def test_check_config_accepts_good_allow_lists(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY, encoding="utf-8")
    r = run_cli("check-config", str(policy), database_url="sqlite://", workdir=tmp_path)
    assert r.returncode == 0, r.stderr
