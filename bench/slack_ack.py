"""Slash-command ack latency while Slack is slow and an alert storm is running (SPEC §10, §15).

    .venv/bin/python bench/slack_ack.py [--seconds 20] [--slack-delay 0.5] [--storm-senders 4]

Starts the Slack Web API stand-in (tests/standins/slack.py) answering every call after
`--slack-delay` seconds, and the bot as a user runs it (`python -m bot.cli serve`) in Slack
HTTP mode on a fresh SQLite database. While `--storm-senders` threads post Alertmanager
notifications (new alerts into 20 groups), one sender at a time types `/ai-incident` commands
(`help`, `list`, `status INC-1`, `ack INC-n`, `note INC-1 …`), each signed as Slack signs it.
The figure is the time until the bot's HTTP answer (the ack Slack waits 3 s for), client side.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.standins.slack import SlackStandin  # noqa: E402
from tests.support.process import BotProcess  # noqa: E402

SECRET = "bench-signing-secret"
# `serve` outside local mode refuses a token shorter than 16 characters
BENCH_TOKEN = "bench-webhook-token-4e1a"
TARGET_P99_MS = 300.0
COMMANDS = ["help", "list", "status INC-1", "note INC-1 looking at worker-1", "ack INC-{n}"]


def signed_headers(body: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def notification(group: int, seq: int) -> dict[str, object]:
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": f"Bench{group}",
                "workflow": "email-summarizer",
                "n": f"{seq}-{i}",
            },
            "annotations": {"summary": f"bench group {group}"},
            "startsAt": "2026-11-23T08:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": f"g{group}s{seq}i{i}",
        }
        for i in range(5)
    ]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="Bench{group}"}}',
        "status": "firing",
        "receiver": "bench",
        "groupLabels": {"alertname": f"Bench{group}"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "alerts": alerts,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--slack-delay", type=float, default=0.5)
    parser.add_argument("--storm-senders", type=int, default=4)
    args = parser.parse_args()
    stop = threading.Event()
    stored = {"alerts": 0, "errors": 0}

    def storm(sender: int, url: str) -> None:
        seq = 0
        with httpx.Client(headers={"Authorization": f"Bearer {BENCH_TOKEN}"}, timeout=10) as http:
            while not stop.is_set():
                seq += 1
                r = http.post(
                    f"{url}/webhooks/alertmanager",
                    json=notification((sender * 7 + seq) % 20, sender * 1_000_000 + seq),
                )
                if r.status_code in (200, 202):
                    stored["alerts"] += 5
                else:
                    stored["errors"] += 1

    with tempfile.TemporaryDirectory() as tmp, SlackStandin() as slack:
        slack.set_delay(args.slack_delay)
        work = Path(tmp)
        (work / "ai-incident.yml").write_text(
            (ROOT / "examples" / "ai-incident.example.yml").read_text()
        )
        bot = BotProcess(
            database_url=f"sqlite:///{work / 'bench.db'}",
            workdir=work,
            env={
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": slack.url,
                "AI_INCIDENT_WEBHOOK_TOKEN": BENCH_TOKEN,
                "AI_INCIDENT_LOG_LEVEL": "WARNING",
            },
        ).start()
        try:
            senders = [
                threading.Thread(target=storm, args=(i, bot.url), daemon=True)
                for i in range(args.storm_senders)
            ]
            for t in senders:
                t.start()
            time.sleep(2.0)  # incidents open, the worker is busy with Slack
            latencies: list[float] = []
            statuses: dict[int, int] = {}
            deadline = time.monotonic() + args.seconds
            n = 0
            with httpx.Client(timeout=10) as http:
                while time.monotonic() < deadline:
                    n += 1
                    text = COMMANDS[n % len(COMMANDS)].format(n=1 + n % 20)
                    body = urlencode(
                        {
                            "command": "/ai-incident",
                            "text": text,
                            "user_id": "U0ALICE001",
                            "channel_id": "C0SUMMARY01",
                            "team_id": "T0001",
                            "response_url": slack.response_url(f"B{n}"),
                            "trigger_id": "1.2.3",
                        }
                    )
                    started = time.perf_counter()
                    r = http.post(
                        f"{bot.url}/slack/events", content=body, headers=signed_headers(body)
                    )
                    latencies.append((time.perf_counter() - started) * 1000)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    time.sleep(0.05)
            stop.set()
            for t in senders:
                t.join(timeout=15)
        finally:
            bot.stop()
        answered = sum(1 for r in slack.responses() if r.get("text"))
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"slash commands: {len(latencies)} sent during a storm of {stored['alerts']} alerts "
        f"(webhook errors {stored['errors']}), Slack answering after {args.slack_delay:.2f} s"
    )
    print(f"HTTP statuses: {json.dumps(statuses)}; answers delivered to response_url: {answered}")
    print(f"ack latency ms: p50 {p50:.1f}  p99 {p99:.1f}  max {max(latencies):.1f}")
    ok = p99 < TARGET_P99_MS and statuses.get(200, 0) == len(latencies)
    print(("PASS" if ok else "FAIL") + f": ack p99 < {TARGET_P99_MS:.0f} ms, every command 200")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
