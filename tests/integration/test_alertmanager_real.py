"""The real Prometheus Alertmanager delivers firing and resolved notifications to the real bot.

Nobody here wrote Alertmanager's webhook payloads: the Debian package `prometheus-alertmanager`
(0.25) sends them over HTTP with its own retries, grouping and bearer auth, to `python -m
bot.cli serve`, on SQLite and on PostgreSQL. The test polls the bot's tables (cheap), then
checks what it stored through the bot's own `export` command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage.db import create_db_engine, readonly
from storage.models import AlertRow, IncidentRow
from tests.support.databases import database
from tests.support.process import ROOT, BotProcess, free_port

pytestmark = [pytest.mark.alertmanager, pytest.mark.slow]

ALERTMANAGER = "prometheus-alertmanager"
EXAMPLE_POLICY = ROOT / "examples" / "ai-incident.example.yml"
TOKEN = "test-token"
RECEIVER = "ai-incident"
TIMEOUT = 60.0
ALERTNAME = "EmailSummarizerErrorRate"
INSTANCES = ("worker-1:9100", "worker-2:9100")

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], *, diagnostics: Callable[[], str]) -> T:
    """Poll `probe` until it returns something other than None, or fail after TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.25)
    pytest.fail(f"timed out after {TIMEOUT:.0f}s waiting for {what}\n{diagnostics()}")


def require_binary() -> str:
    """Return the Alertmanager binary; fail in CI (which must install it), else skip."""
    path = shutil.which(ALERTMANAGER)
    if path is None:
        message = f"{ALERTMANAGER} is not installed (Debian package prometheus-alertmanager)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must install it")
        pytest.skip(message)
    return path


# -- the two processes -------------------------------------------------------------------------


@dataclass
class Alertmanager:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10)
        assert response.status_code == 200, response.text

    def fingerprints(self) -> dict[str, str]:
        """Return Alertmanager's own fingerprint of each alert it holds, by `instance` label."""
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=10)
        response.raise_for_status()
        return {a["labels"]["instance"]: a["fingerprint"] for a in response.json()}

    def webhook_notifications(self) -> tuple[float, float]:
        """Return (sent, failed) notification counts of the webhook integration."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        counts = {"alertmanager_notifications": 0.0, "alertmanager_notifications_failed": 0.0}
        for family in text_string_to_metric_families(text):
            if family.name not in counts:
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("integration") == "webhook":
                    counts[family.name] += sample.value
        return counts["alertmanager_notifications"], counts["alertmanager_notifications_failed"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def alertmanager_config(bot_url: str) -> dict[str, Any]:
    return {
        "route": {
            "receiver": RECEIVER,
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "2s",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": RECEIVER,
                "webhook_configs": [
                    {
                        "url": f"{bot_url}/webhooks/alertmanager",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials": TOKEN},
                        },
                    }
                ],
            }
        ],
    }


def start_alertmanager(binary: str, bot_url: str, workdir: Path) -> Alertmanager:
    config = workdir / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(bot_url), sort_keys=False))
    storage = workdir / "alertmanager-data"
    storage.mkdir()
    port = free_port()
    log_path = workdir / "alertmanager.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # empty: no gossip, a single instance
                "--log.level=debug",
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    am = Alertmanager(proc, f"http://127.0.0.1:{port}", log_path)

    def ready() -> bool | None:
        if proc.poll() is not None:
            pytest.fail(f"alertmanager exited with {proc.returncode}:\n{am.output()}")
        try:
            return httpx.get(f"{am.url}/-/ready", timeout=1).status_code == 200 or None
        except httpx.HTTPError:
            return None

    try:
        wait_for("alertmanager /-/ready", ready, diagnostics=am.output)
    except BaseException:
        am.stop()
        raise
    return am


@pytest.fixture
def alertmanager_binary() -> str:
    return require_binary()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bot(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager_binary: str
) -> Iterator[BotProcess]:
    """The real bot in local mode (no Slack token), with the example policy, on each backend."""
    with database(request.param, tmp_path) as url:
        shutil.copy(EXAMPLE_POLICY, tmp_path / "ai-incident.yml")
        env = {"AI_INCIDENT_WEBHOOK_TOKEN": TOKEN, "SLACK_BOT_TOKEN": ""}
        process = BotProcess(database_url=url, workdir=tmp_path, env=env)
        try:
            process.start()
            yield process
        finally:
            process.stop()


@pytest.fixture
def alertmanager(
    alertmanager_binary: str, bot: BotProcess, tmp_path: Path
) -> Iterator[Alertmanager]:
    am = start_alertmanager(alertmanager_binary, bot.url, tmp_path)
    try:
        yield am
    finally:
        am.stop()


@pytest.fixture
def db(bot: BotProcess) -> Iterator[Engine]:
    """A read-only look at the bot's database, for cheap polling."""
    engine = create_db_engine(bot.env["DATABASE_URL"])
    try:
        yield readonly(engine)
    finally:
        engine.dispose()


# -- reading the bot's stored state -------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    incidents: int
    states: tuple[str, ...]
    alerts: int
    alert_states: frozenset[str]


def stored(engine: Engine) -> Stored:
    """Return a summary of what the bot has committed, read straight from its tables."""
    with Session(engine) as session:
        states = tuple(session.exec(select(IncidentRow.state).order_by(IncidentRow.id)).all())
        alert_states = session.exec(select(AlertRow.status)).all()
        return Stored(len(states), states, len(alert_states), frozenset(alert_states))


def export(bot: BotProcess, incident: str) -> dict[str, Any] | None:
    """Return `ai-incident export <incident> --format json`, or None when it does not exist."""
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "export", incident, "--format", "json"],
        cwd=bot.workdir,
        env=bot.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode == 1 and "does not exist" in result.stderr:
        return None
    assert result.returncode == 0, f"export {incident} failed:\n{result.stderr}"
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def am_alert(instance: str, starts: datetime, ends: datetime) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": ALERTNAME,
            "instance": instance,
            "job": "email-summarizer",
            "workflow": "email-summarizer",
            "severity": "critical",
        },
        "annotations": {
            "summary": "Email summarizer error rate above 20 %",
            "description": f"{instance} fails most summarization runs",
        },
        "startsAt": starts.isoformat(),
        "endsAt": ends.isoformat(),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=ai_errors",
    }


# -- the test -----------------------------------------------------------------------------------


def test_real_alertmanager_opens_joins_and_resolves_one_incident(
    bot: BotProcess, alertmanager: Alertmanager, db: Engine
) -> None:
    def diagnostics() -> str:
        return (
            f"stored: {stored(db)}\n"
            f"--- bot log ---\n{bot.output()[-6000:]}\n"
            f"--- alertmanager log ---\n{alertmanager.output()[-6000:]}"
        )

    def until(what: str, check: Callable[[Stored], bool]) -> Stored:
        def probe() -> Stored | None:
            now = stored(db)
            return now if check(now) else None

        return wait_for(what, probe, diagnostics=diagnostics)

    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    later = started + timedelta(hours=6)

    # 1. one alert fires: after group_wait, Alertmanager's notification opens an incident
    alertmanager.post_alerts([am_alert(INSTANCES[0], started, later)])
    opened = until("an incident with the first alert", lambda s: s.alerts >= 1)
    assert opened == Stored(1, ("triggered",), 1, frozenset({"firing"})), diagnostics()

    # 2. a second alert of the same group fires: the next group_interval flush joins it
    alertmanager.post_alerts([am_alert(INSTANCES[1], started, later)])
    joined = until("the second alert to be stored", lambda s: s.alerts >= 2)
    assert joined == Stored(1, ("triggered",), 2, frozenset({"firing"})), diagnostics()

    firing = export(bot, "INC-1")
    assert firing is not None
    assert firing["state"] == "triggered"
    assert firing["severity"] == "P1"
    assert firing["workflow"] == "email-summarizer"
    assert firing["resolved_by"] is None
    assert firing["milestones"]["resolved"] is None
    assert [a["status"] for a in firing["alerts"]] == ["firing", "firing"]
    by_instance = {a["labels"]["instance"]: a for a in firing["alerts"]}
    assert set(by_instance) == set(INSTANCES)
    # each alert is tracked by the fingerprint Alertmanager itself computed
    assert {i: a["fingerprint"] for i, a in by_instance.items()} == alertmanager.fingerprints()
    for alert in firing["alerts"]:
        assert alert["labels"]["alertname"] == ALERTNAME
        assert alert["labels"]["workflow"] == "email-summarizer"
        assert alert["labels"]["severity"] == "critical"
        assert datetime.fromisoformat(alert["starts_at"]) == started
        # Alertmanager sends firing alerts with the zero endsAt (0001-01-01): not ended
        assert alert["ends_at"] is None
    assert any("joined" in entry["text"].lower() for entry in firing["journal"]), firing["journal"]

    # 3. both alerts end at the source: the resolved notification resolves the incident
    ended = datetime.now(UTC).replace(microsecond=0)
    alertmanager.post_alerts([am_alert(instance, started, ended) for instance in INSTANCES])
    done = until("the incident to be resolved", lambda s: s.states == ("resolved",))
    assert done == Stored(1, ("resolved",), 2, frozenset({"resolved"})), diagnostics()

    resolved = export(bot, "INC-1")
    assert resolved is not None
    assert resolved["state"] == "resolved"
    assert resolved["resolved_by"] is not None
    assert resolved["resolved_by"].startswith("source:"), resolved["resolved_by"]
    assert resolved["milestones"]["resolved"] is not None
    assert resolved["severity"] == "P1"
    assert [a["status"] for a in resolved["alerts"]] == ["resolved", "resolved"]
    for alert in resolved["alerts"]:
        assert alert["ends_at"] is not None
        assert datetime.fromisoformat(alert["ends_at"]) == ended
    texts = [entry["text"] for entry in resolved["journal"]]
    assert any("resolved at the source" in text for text in texts), texts

    # 4. Alertmanager delivered every notification with a 2xx, and the bot never crashed
    def three_sent() -> tuple[float, float] | None:
        counts = alertmanager.webhook_notifications()
        return counts if counts[0] >= 3 else None

    # opened, joined, resolved: three notifications at least
    sent, failed = wait_for(
        "Alertmanager to count three webhook notifications", three_sent, diagnostics=diagnostics
    )
    assert failed == 0, diagnostics()
    assert sent >= 3
    log = bot.output()
    assert "Traceback" not in log, log
    assert " ERROR " not in log, log
    assert bot.proc is not None and bot.proc.poll() is None, "the bot exited"
