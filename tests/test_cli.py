"""The `ai-incident` command as a user runs it: real subprocesses on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

import storage.models  # noqa: F401  (registers the tables in SQLModel.metadata)
from bot.cli import build_parser
from bot.domain.incidents import IncidentState
from storage.db import create_db_engine, migration_status
from storage.models import AlertRow, IncidentRow, JournalRow
from tests.conftest import EXAMPLE, make_bot, payload
from tests.support.process import EXAMPLE_SECRETS, ROOT

# every test runs `ai-incident` in a child process, as a user does
pytestmark = pytest.mark.slow

FIRING = "alertmanager_v4_firing.json"
FINGERPRINTS = {"f404ecabc8dd5cd7", "f8f08d4e32c61a9d"}


def run_cli(
    *args: str, database_url: str, workdir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot.cli ARGS` in `workdir` with its own database and policy path."""
    child_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AI_INCIDENT_", "SLACK_", "JIRA_", "DATABASE_URL"))
    }
    child_env.update(
        {
            "DATABASE_URL": database_url,
            "AI_INCIDENT_CONFIG": str(workdir / "ai-incident.yml"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONIOENCODING": "utf-8",
            **(env or {}),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=workdir,
        env=child_env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def subcommands() -> list[str]:
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


# -- --help -------------------------------------------------------------------------------------


def test_top_level_help_lists_every_subcommand(tmp_path: Path, sqlite_url: str) -> None:
    r = run_cli("--help", database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: ai-incident")
    for name in ("serve", "migrate", "check-config", "export"):
        assert name in r.stdout
    assert set(subcommands()) >= {"serve", "migrate", "check-config", "export"}


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_has_help(command: str, tmp_path: Path, sqlite_url: str) -> None:
    r = run_cli(command, "--help", database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: ai-incident {command}")
    expected = {
        "serve": ["--host", "--port"],
        "export": ["incident", "--format", "json", "md", "--raw"],
        "check-config": ["file"],
    }
    for word in expected.get(command, []):
        assert word in r.stdout
    assert not (tmp_path / "cli.db").exists()  # help touches no database


def test_no_subcommand_is_a_usage_error(tmp_path: Path, sqlite_url: str) -> None:
    r = run_cli(database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode == 2
    assert "usage: ai-incident" in r.stderr


# -- check-config -------------------------------------------------------------------------------


def test_check_config_accepts_the_example(tmp_path: Path, sqlite_url: str) -> None:
    r = run_cli(
        "check-config", str(EXAMPLE), database_url=sqlite_url, workdir=tmp_path, env=EXAMPLE_SECRETS
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{EXAMPLE}: OK")
    assert "6 workflow(s)" in r.stdout and "3 people" in r.stdout and "5 source(s)" in r.stdout
    assert r.stderr == ""


def test_check_config_reads_ai_incident_config_without_a_file_argument(
    tmp_path: Path, sqlite_url: str
) -> None:
    (tmp_path / "ai-incident.yml").write_text("timezone: Asia/Tokyo\n", encoding="utf-8")
    r = run_cli("check-config", database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ai-incident.yml: OK" in r.stdout


def test_check_config_reports_every_problem_as_file_line_path_reason(
    tmp_path: Path, sqlite_url: str
) -> None:
    policy = tmp_path / "broken.yml"
    policy.write_text(
        "timezone: Europe/Berlim\n"
        "people:\n"
        "  alice: {slack_id: U0ALICE001}\n"
        "workflows:\n"
        "  summarizer: oops\n"
        "  chatbot:\n"
        "    owner: bob\n"
        "    escalation_policy: missing\n",
        encoding="utf-8",
    )
    r = run_cli("check-config", str(policy), database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines == [
        f"{policy}:1: timezone: unknown time zone 'Europe/Berlim'; "
        "use an IANA name such as 'Europe/Berlin' or 'UTC'",
        f"{policy}:5: workflows.summarizer: "
        "expected a mapping of settings (key: value), got the text 'oops'",
        f"{policy}:7: workflows.chatbot.owner: 'bob' is not defined under people (defined: alice)",
        f"{policy}:8: workflows.chatbot.escalation_policy: 'missing' is not defined under "
        "escalation_policies (none is defined)",
        f"{policy}: 4 problem(s)",
    ]


def test_check_config_reports_invalid_yaml_with_its_line(tmp_path: Path, sqlite_url: str) -> None:
    policy = tmp_path / "bad.yml"
    policy.write_text("timezone: UTC\nroles:\n  ai_lead: [alice\n", encoding="utf-8")
    r = run_cli("check-config", str(policy), database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0].startswith(f"{policy}:4: not valid YAML: ")
    assert "Traceback" not in r.stderr


def test_check_config_needs_variables_without_default_from_the_environment(
    tmp_path: Path, sqlite_url: str
) -> None:
    policy = tmp_path / "p.yml"
    policy.write_text("sources:\n  am:\n    token: ${AM_TOKEN_FOR_TEST}\n", encoding="utf-8")
    r = run_cli("check-config", str(policy), database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == (
        f"{policy}:3: sources.am.token: environment variable AM_TOKEN_FOR_TEST is not set "
        "(write ${AM_TOKEN_FOR_TEST:-default} to make it optional)"
    )
    r = run_cli(
        "check-config",
        str(policy),
        database_url=sqlite_url,
        workdir=tmp_path,
        env={"AM_TOKEN_FOR_TEST": "s3cret-a8d0c5e9f1b2"},
    )
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout


def test_check_config_of_a_missing_file_fails(tmp_path: Path, sqlite_url: str) -> None:
    missing = tmp_path / "nope.yml"
    r = run_cli("check-config", str(missing), database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode != 0
    assert r.stderr.strip() == f"{missing}: no such file"
    # likewise the default path when AI_INCIDENT_CONFIG names nothing
    r = run_cli("check-config", database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode != 0
    assert "ai-incident.yml: no such file" in r.stderr


# -- migrate ------------------------------------------------------------------------------------


def schema(url: str) -> tuple[set[str], str | None]:
    engine = create_db_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        current, _head = migration_status(engine)
    finally:
        engine.dispose()
    return tables, current


@pytest.mark.both_backends
def test_migrate_creates_the_schema_on_an_empty_database_and_is_idempotent(
    empty_db_url: str, tmp_path: Path
) -> None:
    assert schema(empty_db_url)[0] == set()
    r = run_cli("migrate", database_url=empty_db_url, workdir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "newest migration" in r.stdout
    tables, current = schema(empty_db_url)
    assert tables >= set(SQLModel.metadata.tables) | {"alembic_version"}
    engine = create_db_engine(empty_db_url)
    try:
        assert current is not None and current == migration_status(engine)[1]
    finally:
        engine.dispose()
    again = run_cli("migrate", database_url=empty_db_url, workdir=tmp_path)
    assert again.returncode == 0, again.stderr
    assert schema(empty_db_url) == (tables, current)


# -- export -------------------------------------------------------------------------------------


def ingest_fixture(db_url: str, **annotations: str) -> None:
    """Open INC-1 through the real webhook on `db_url`, then stop the in-process bot."""
    body = payload(FIRING)
    body["alerts"][0]["annotations"].update(
        {"gen_ai_request_model": "gpt-4o-mini", "prompt_version": "summarize-v7", **annotations}
    )
    bot = make_bot(db_url)
    try:
        with bot.client:
            r = bot.post("/webhooks/alertmanager", body)
            assert r.status_code == 202, r.text
            assert r.json()["incident"] == "INC-1"
    finally:
        bot.container.engine.dispose()


def stored(db_url: str) -> tuple[IncidentRow, list[AlertRow], list[JournalRow]]:
    engine = create_db_engine(db_url)
    try:
        with Session(engine) as s:
            inc = s.exec(select(IncidentRow).where(IncidentRow.id == 1)).one()
            alerts = list(s.exec(select(AlertRow).where(AlertRow.incident_id == 1)).all())
            journal = list(
                s.exec(
                    select(JournalRow).where(JournalRow.incident_id == 1).order_by(JournalRow.id)  # type: ignore[arg-type]
                ).all()
            )
            return inc, alerts, journal
    finally:
        engine.dispose()


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def test_export_json_prints_the_whole_incident(db_url: str, tmp_path: Path) -> None:
    ingest_fixture(db_url)
    r = run_cli("export", "INC-1", "--format", "json", database_url=db_url, workdir=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    inc, alerts, journal = stored(db_url)

    assert out["id"] == "INC-1"
    assert out["title"] == inc.title and "email-summarizer" in out["title"]
    assert out["severity"] == "P1"
    assert out["state"] == IncidentState.TRIGGERED == inc.state
    assert out["workflow"] == "email-summarizer"
    assert out["category"] == "internal"

    reasons = out["severity_reasons"]
    assert reasons == as_json(inc.severity_reasons)
    assert reasons and all({"severity", "rule", "text"} <= set(r) for r in reasons)
    assert any(r["severity"] == "P1" and "critical" in json.dumps(r) for r in reasons)

    assert {a["fingerprint"] for a in out["alerts"]} == FINGERPRINTS
    assert {a.fingerprint for a in alerts} == FINGERPRINTS
    by_fp = {a["fingerprint"]: a for a in out["alerts"]}
    first = by_fp["f404ecabc8dd5cd7"]
    assert first["status"] == "firing"
    assert first["labels"]["instance"] == "worker-1"
    assert first["starts_at"].startswith("2026-11-20T08:24:38")
    assert first["ends_at"] is None
    assert by_fp["f8f08d4e32c61a9d"]["starts_at"].startswith("2026-11-20T07:24:41")  # +01:00

    assert out["ai_context"]["workflow"] == "email-summarizer"
    assert out["ai_context"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert out["ai_context"]["prompt_version"] == "summarize-v7"

    assert journal, "ingest writes the journal"
    assert [j["text"] for j in out["journal"]] == [j.text for j in journal]
    assert [j["kind"] for j in out["journal"]] == [j.kind for j in journal]
    assert all(j["at"] for j in out["journal"])


def test_export_markdown_has_reasons_alerts_table_and_journal(db_url: str, tmp_path: Path) -> None:
    ingest_fixture(db_url)
    r = run_cli("export", "INC-1", "--format", "md", database_url=db_url, workdir=tmp_path)
    assert r.returncode == 0, r.stderr
    md = r.stdout
    inc, _alerts, journal = stored(db_url)
    assert md.startswith(f"# INC-1: {inc.title}\n")
    assert "- **Severity:** P1" in md
    assert "- **State:** triggered" in md
    assert "## Why this severity" in md
    for reason in inc.severity_reasons:
        assert f"- {reason['severity']} `{reason['rule']}`: {reason['text']}" in md
    assert "model requested: gpt-4o-mini" in md
    assert "prompt: summarize-v7" in md
    assert "| fingerprint | status | title | started | ended |" in md
    rows = [line for line in md.splitlines() if line.startswith(("| f404", "| f8f0"))]
    assert len(rows) == 2
    assert {row.split(" | ")[0].removeprefix("| ") for row in rows} == FINGERPRINTS
    assert all(" | firing | " in row for row in rows)
    journal_section = md.split("## Journal", 1)[1]
    for entry in journal:
        assert entry.text in journal_section
    # markdown is the default format
    default = run_cli("export", "inc-1", database_url=db_url, workdir=tmp_path)
    assert default.returncode == 0 and default.stdout == md


# Fake credentials are assembled from pieces so that secret scanners do not flag this file.
LEAKED = "sk-" + "proj-" + "Ab3dEfGhXq3vN8kLm2Pw7RtY9aBc4DeF6gHj1KsT0u"
HOSTILE = f"<!channel> key {LEAKED} mail jane@example.com order CUST-123456"


@pytest.mark.parametrize("fmt", ["json", "md"])
def test_export_redacts_like_slack_and_raw_prints_the_stored_text(
    fmt: str, db_url: str, tmp_path: Path
) -> None:
    ingest_fixture(db_url, summary=HOSTILE, request_id=HOSTILE)
    (tmp_path / "ai-incident.yml").write_text(
        "redaction:\n  patterns:\n    - {name: customer_id, regex: 'CUST-[0-9]{6}'}\n",
        encoding="utf-8",
    )
    r = run_cli("export", "INC-1", "--format", fmt, database_url=db_url, workdir=tmp_path)
    assert r.returncode == 0, r.stderr
    for leaked in ("Ab3dEfGh", "jane@", "CUST-123456"):
        assert leaked not in r.stdout
    for mark in ("openai_api_key", "email", "customer_id"):
        assert f"REDACTED:{mark}" in r.stdout.replace("\\", "")  # Markdown escapes "_"
    if fmt == "md":
        assert "<!channel>" not in r.stdout and "\\<\\!channel\\>" in r.stdout

    raw = run_cli(
        "export", "INC-1", "--format", fmt, "--raw", database_url=db_url, workdir=tmp_path
    )
    assert raw.returncode == 0, raw.stderr
    assert HOSTILE in (json.dumps(json.loads(raw.stdout)) if fmt == "json" else raw.stdout)
    assert "REDACTED" not in raw.stdout


def test_export_of_an_incident_that_does_not_exist(db_url: str, tmp_path: Path) -> None:
    ingest_fixture(db_url)
    r = run_cli("export", "INC-999", "--format", "json", database_url=db_url, workdir=tmp_path)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.startswith("INC-999 does not exist in ")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("text", ["nonsense", "INC-", "INC-1x", "PROJ-7"])
def test_export_of_text_that_is_not_an_incident_id(
    text: str, tmp_path: Path, sqlite_url: str
) -> None:
    r = run_cli("export", text, database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip() == f"{text!r} is not an incident id like INC-7"
    assert not (tmp_path / "cli.db").exists()  # rejected before touching the database


def test_export_rejects_an_unknown_format(tmp_path: Path, sqlite_url: str) -> None:
    r = run_cli("export", "INC-1", "--format", "pdf", database_url=sqlite_url, workdir=tmp_path)
    assert r.returncode == 2
    assert "invalid choice: 'pdf'" in r.stderr


def test_export_from_a_database_without_the_schema_says_so(
    empty_db_url: str, tmp_path: Path
) -> None:
    r = run_cli("export", "INC-1", database_url=empty_db_url, workdir=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("cannot read incidents from ")
    assert "ai-incident migrate" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_digest_prints_a_past_week_and_previews_the_current_one(
    db_url: str, tmp_path: Path
) -> None:
    ingest_fixture(db_url)  # INC-1, a P1, opened in 2026-W48
    (tmp_path / "ai-incident.yml").write_text(EXAMPLE.read_text(encoding="utf-8"))
    r = run_cli("digest", "--week", "2026-W48", database_url=db_url, workdir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Weekly AI operations review — 2026-W48 (23 Nov to 29 Nov 2026)")
    assert "P1: 1 opened, 0 resolved" in r.stdout
    assert "email-summarizer: no data (no `error_rate` signal this week)" in r.stdout
    assert "*" not in r.stdout.splitlines()[0] and ":x:" not in r.stdout  # text, not mrkdwn
    preview = run_cli("digest", "--preview", database_url=db_url, workdir=tmp_path)
    assert preview.returncode == 0, preview.stderr
    assert preview.stdout.startswith("Weekly AI operations review — ")
    bad = run_cli("digest", "--week", "2026-48", database_url=db_url, workdir=tmp_path)
    assert bad.returncode == 2 and "not an ISO week" in bad.stderr
