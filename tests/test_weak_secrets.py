"""Placeholder, empty and short secrets: `serve` refuses them outside local mode, check-config reports them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.cli import secret_problems
from bot.config import parse_policy, secret_weakness, weak_secret_problems
from bot.settings import Settings
from tests.conftest import EXAMPLE
from tests.support.process import EXAMPLE_SECRETS, free_port
from tests.test_cli import run_cli

# each secret of the example policy and the variable that sets it
EXAMPLE_SECRET_FIELDS = {
    "sources.alertmanager.token": "ALERTMANAGER_WEBHOOK_TOKEN",
    "sources.grafana.hmac_secret": "GRAFANA_WEBHOOK_SECRET",
    "sources.llm-observability.token": "LLM_OBS_WEBHOOK_TOKEN",
    "sources.agents.hmac_secret": "AGENT_WEBHOOK_SECRET",
    "sources.otel.token": "OTEL_WEBHOOK_TOKEN",
    "jira.webhook_secret": "JIRA_WEBHOOK_SECRET",
}
STRONG = "9f86d081884c7d659a2feaa0c55ad015"


def line_of(text: str, needle: str) -> int:
    [line] = [i for i, row in enumerate(text.splitlines(), 1) if needle in row]
    return line


def problems_of(text: str, env: dict[str, str]) -> list[str]:
    policy = parse_policy(text, file="p.yml", env=env)
    return [str(p) for p in weak_secret_problems(policy, text, file="p.yml")]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("change-me-alertmanager", "is a placeholder anyone can guess"),
        ("CHANGEME", "is a placeholder anyone can guess"),
        ("replace_me_with_a_real_secret", "is a placeholder anyone can guess"),
        ("<your webhook token>", "is a placeholder anyone can guess"),
        ("xxxxxxxxxxxxxxxxxxxxxxxx", "is a placeholder anyone can guess"),
        ("password", "is a placeholder anyone can guess"),
        ("s3cret", "is only 6 characters long"),
        ("0123456789abcde", "is only 15 characters long"),
        ("   ", "is empty"),
        (STRONG, None),
        ("0123456789abcdef", None),
    ],
)
def test_what_makes_a_secret_weak(value: str, why: str | None) -> None:
    assert secret_weakness(value) == why


def test_every_placeholder_of_the_example_is_reported_with_its_line_and_variable() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    policy = parse_policy(text, file=str(EXAMPLE), env={})
    problems = weak_secret_problems(policy, text, file=str(EXAMPLE))
    assert [p.path for p in problems] == list(EXAMPLE_SECRET_FIELDS)
    for problem in problems:
        variable = EXAMPLE_SECRET_FIELDS[problem.path]
        assert str(problem) == (
            f"{EXAMPLE}:{line_of(text, variable)}: {problem.path}: is a placeholder anyone can "
            f"guess; set {variable} to a random value of at least 16 characters "
            "(e.g. `openssl rand -hex 32`)"
        )


def test_the_example_with_its_variables_set_has_no_weak_secret() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    policy = parse_policy(text, file=str(EXAMPLE), env=EXAMPLE_SECRETS)
    assert weak_secret_problems(policy, text, file=str(EXAMPLE)) == []


def test_short_and_required_but_empty_secrets_name_their_variable() -> None:
    text = (
        "sources:\n"
        "  am:\n"
        "    token: ${AM_TOKEN}\n"
        "  grafana:\n"
        "    kind: grafana\n"
        "    hmac_secret: ${GRAFANA_SECRET:-change-me}\n"
        "paging:\n"
        "  webhook_secret: ${PAGING_SECRET:-}\n"
        "jira:\n"
        "  webhook_secret: ${JIRA_SECRET}\n"
    )
    env = {"AM_TOKEN": "", "GRAFANA_SECRET": "", "PAGING_SECRET": "abc", "JIRA_SECRET": "jira1"}
    advice = "to a random value of at least 16 characters (e.g. `openssl rand -hex 32`)"
    assert problems_of(text, env) == [
        f"p.yml:3: sources.am.token: is empty; set AM_TOKEN {advice}",
        f"p.yml:6: sources.grafana.hmac_secret: is empty; set GRAFANA_SECRET {advice}",
        f"p.yml:8: paging.webhook_secret: is only 3 characters long; set PAGING_SECRET {advice}",
        f"p.yml:10: jira.webhook_secret: is only 5 characters long; set JIRA_SECRET {advice}",
    ]


def test_a_secret_written_in_the_file_is_told_to_come_from_the_environment() -> None:
    text = "sources:\n  am:\n    token: change-me-now\n"
    [problem] = problems_of(text, {})
    assert problem.startswith("p.yml:3: sources.am.token: is a placeholder anyone can guess; ")
    assert "read it from the environment with ${SOME_VARIABLE}" in problem


def test_secrets_left_out_or_optional_are_not_configured_not_weak() -> None:
    text = (
        "sources:\n"
        "  plain: {kind: generic}\n"
        "  am:\n"
        "    token: ${AM_TOKEN:-}\n"
        "  empty:\n"
        '    token: ""\n'
        "paging:\n"
        "  webhook_url: http://127.0.0.1:9/page\n"
        "jira:\n"
        f"  webhook_secret: {STRONG}\n"
    )
    assert problems_of(text, {}) == []


def test_serve_checks_the_policy_file_and_the_environment(tmp_path: Path) -> None:
    policy_file = tmp_path / "ai-incident.yml"
    policy_file.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-1-2-3"),
        slack_signing_secret=SecretStr("change-me"),
        ai_incident_webhook_token=SecretStr("short"),
        ai_incident_config=policy_file,
    )
    policy = parse_policy(policy_file.read_text(encoding="utf-8"), file="x", env={})
    problems = secret_problems(settings, policy)
    assert [p.path for p in problems] == [
        *EXAMPLE_SECRET_FIELDS,
        "AI_INCIDENT_WEBHOOK_TOKEN",
        "SLACK_SIGNING_SECRET",
    ]
    assert all(p.file == str(policy_file) for p in problems[:6])
    assert str(problems[6]) == (
        "environment: AI_INCIDENT_WEBHOOK_TOKEN: is only 5 characters long; set "
        "AI_INCIDENT_WEBHOOK_TOKEN to a random value of at least 16 characters "
        "(e.g. `openssl rand -hex 32`)"
    )
    # unset is not configured: the global token is optional
    strong = parse_policy(policy_file.read_text(encoding="utf-8"), file="x", env=EXAMPLE_SECRETS)
    assert secret_problems(Settings(ai_incident_config=policy_file), strong) == []


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.slow  # starts `ai-incident serve` in a child process
def test_serve_outside_local_mode_refuses_the_example_placeholders(tmp_path: Path) -> None:
    (tmp_path / "ai-incident.yml").write_text(EXAMPLE.read_text(encoding="utf-8"))
    db = tmp_path / "bot.db"
    r = run_cli(
        "serve",
        "--port",
        str(free_port()),
        database_url=f"sqlite:///{db}",
        workdir=tmp_path,
        env={
            "SLACK_BOT_TOKEN": "xoxb-1-2-3",
            "AI_INCIDENT_WEBHOOK_TOKEN": "webhook",
            "JIRA_WEBHOOK_SECRET": STRONG,
        },
    )
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[0].startswith("ai-incident: refusing to start: these secrets are empty, ")
    policy = tmp_path / "ai-incident.yml"
    text = policy.read_text()
    weak = [f for f in EXAMPLE_SECRET_FIELDS if f != "jira.webhook_secret"]
    for field in weak:
        variable = EXAMPLE_SECRET_FIELDS[field]
        assert any(
            line.startswith(f"{policy}:{line_of(text, variable)}: {field}: ")
            and f"set {variable} to" in line
            for line in lines
        ), (field, r.stderr)
    assert any(line.startswith("environment: AI_INCIDENT_WEBHOOK_TOKEN: ") for line in lines)
    assert len(lines) == 1 + len(weak) + 1
    assert "JIRA_WEBHOOK_SECRET" not in r.stderr
    assert "Traceback" not in r.stderr
    assert not db.exists()  # refused before anything started


def test_check_config_reports_each_placeholder_as_a_problem(tmp_path: Path) -> None:
    r = run_cli("check-config", str(EXAMPLE), database_url="sqlite://", workdir=tmp_path)
    assert r.returncode == 1
    *problems, summary = r.stderr.splitlines()
    text = EXAMPLE.read_text(encoding="utf-8")
    assert [p.split(": ")[0] for p in problems] == [
        f"{EXAMPLE}:{line_of(text, v)}" for v in EXAMPLE_SECRET_FIELDS.values()
    ]
    assert [p.split(": ")[1] for p in problems] == list(EXAMPLE_SECRET_FIELDS)
    assert summary == f"{EXAMPLE}: 6 problem(s)"
