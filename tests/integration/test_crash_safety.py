"""Crash safety (§14): SIGKILL while alerts stream in and outbox rows are pending.

The real `ai-incident serve` runs against the Slack stand-in, which answers slowly (half of each
call's delay before it takes effect, half after) so the outbox backs up. The bot is killed with
SIGKILL at a moment a `chat.postMessage` has reached "Slack" but its answer has not reached the bot,
restarted on the same database, and fed the rest of the stream. Afterwards every alert that got a
2xx is stored, and every side effect recorded in the outbox is visible in Slack exactly once.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.standins.slack import SlackStandin, metadata_keys
from tests.support.databases import database
from tests.support.process import ROOT, WEBHOOK_TOKEN, BotProcess

pytestmark = pytest.mark.slow

EXAMPLE_POLICY = ROOT / "examples" / "ai-incident.example.yml"
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
SLACK_DELAY = 0.15  # before and again after each call takes effect: 0.3 s per Slack call
GENERIC_KEYS = 10
# resolve on source resolve (email-summarizer), stays open (support-chatbot), another channel
# (weekly-report), a workflow the policy does not know (filed under `unassigned`)
WORKFLOWS = ["email-summarizer", "support-chatbot", "weekly-report", "not-in-the-policy"]
AM_GROUPS = ["SummarizerErrorRate", "ChatbotRefusals", "ReportLatency"]
ACCEPTED_BEFORE_KILL = 25
PHASE_ONE = 200  # more than is sent before the kill
PHASE_TWO = 40


# -- the stream ------------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    status: int | None = None  # HTTP status; None when no answer came (the bot was killed)
    answer: dict[str, Any] | None = None

    @property
    def alerts(self) -> list[tuple[str, str]]:
        """(fingerprint, status) of each alert the request carries."""
        if self.path.endswith("/alerts"):
            return [(self.body["dedup_key"], self.body["status"])]
        return [(a["fingerprint"], a["status"]) for a in self.body["alerts"]]

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def fingerprint(group: str, n: int) -> str:
    return hashlib.sha1(f"{group}/{n}".encode()).hexdigest()[:16]


def build_stream(count: int, seed: int) -> list[Request]:
    """Generic alerts flipping between firing and resolved over a few dedup keys, and Alertmanager
    notifications whose groups gain a new fingerprint each time (sent with all earlier ones)."""
    rng = random.Random(seed)
    status = {f"g{i}": "resolved" for i in range(GENERIC_KEYS)}
    members: dict[str, list[str]] = {g: [] for g in AM_GROUPS}
    stream: list[Request] = []
    for i in range(count):
        if i % 4 == 3:
            group = rng.choice(AM_GROUPS)
            members[group].append(fingerprint(group, len(members[group])))
            workflow = WORKFLOWS[AM_GROUPS.index(group)]
            alerts = [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": group,
                        "workflow": workflow,
                        "severity": "warning",
                        "instance": f"worker-{n}",
                    },
                    "annotations": {"summary": f"{group} on worker-{n}"},
                    "startsAt": "2026-11-20T08:24:38.326Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.local:9090/graph?g0.expr=up",
                    "fingerprint": fp,
                }
                for n, fp in enumerate(members[group])
            ]
            body = {
                "version": "4",
                "groupKey": f'{{}}:{{alertname="{group}"}}',
                "truncatedAlerts": 0,
                "status": "firing",
                "receiver": "ai-incident",
                "groupLabels": {"alertname": group},
                "commonLabels": {"alertname": group, "workflow": workflow},
                "commonAnnotations": {},
                "externalURL": "http://alertmanager.local:9093",
                "alerts": alerts,
            }
            stream.append(Request("/webhooks/alertmanager", body))
            continue
        n = rng.randrange(GENERIC_KEYS)
        key = f"g{n}"
        if rng.random() < 0.6:
            status[key] = "firing" if status[key] == "resolved" else "resolved"
        body = {
            "dedup_key": key,
            "status": status[key],
            "title": f"Generic alert {key}",
            "description": f"request {i} for {key}",
            "workflow": WORKFLOWS[n % len(WORKFLOWS)],
            "source": "crash-test",
        }
        stream.append(Request("/webhooks/alerts", body))
    return stream


class Sender(threading.Thread):
    """Post requests one after another to the bot until told to stop; record each answer."""

    def __init__(self, url: str, requests: list[Request], pace: float) -> None:
        super().__init__(name="alert-sender", daemon=True)
        self.url = url
        self.requests = requests
        self.pace = pace
        self.sent: list[Request] = []
        self.halt = threading.Event()
        self.error: BaseException | None = None

    @property
    def accepted(self) -> int:
        return sum(1 for r in list(self.sent) if r.accepted)

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, headers=AUTH, timeout=15) as client:
                for request in self.requests:
                    if self.halt.is_set():
                        return
                    try:
                        answer = client.post(request.path, json=request.body)
                    except httpx.HTTPError:
                        request.status = None  # no answer: the bot died under it
                    else:
                        request.status = answer.status_code
                        request.answer = answer.json()
                    self.sent.append(request)
                    self.halt.wait(self.pace)
        except BaseException as exc:  # surfaced by finish(); a thread must not raise
            self.error = exc

    def finish(self) -> list[Request]:
        self.halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the sender did not stop"
        if self.error is not None:
            raise self.error
        return self.sent


# -- looking at the database and Slack --------------------------------------------------------


class Database:
    """Read the bot's tables directly (short transactions; never holds SQLite's write lock)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def rows(self, sql: str) -> list[sa.Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))

    def open_outbox(self) -> Counter[str]:
        rows = self.rows(
            "SELECT status, count(*) FROM outbox WHERE status IN ('pending', 'in_flight') "
            "GROUP BY status"
        )
        return Counter({r[0]: int(r[1]) for r in rows})

    def close(self) -> None:
        self.engine.dispose()


def wait_until(check: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what()}")
        time.sleep(0.02)


def answer_pending_after_post(slack: SlackStandin) -> bool:
    """A chat.postMessage has taken effect in Slack but the bot has not got the answer yet."""
    return any(
        c.method == "chat.postMessage" and c.status == 200 and c.in_progress for c in slack.calls()
    )


def is_top_level(message: dict[str, Any]) -> bool:
    return message.get("thread_ts") in (None, message["ts"])


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    shutil.copy(EXAMPLE_POLICY, tmp_path / "ai-incident.yml")
    yield tmp_path


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sigkill_while_alerts_stream_in_loses_and_duplicates_nothing(
    backend: str, workdir: Path
) -> None:
    stream = build_stream(PHASE_ONE + PHASE_TWO, seed=20261123)
    with (
        database(backend, workdir) as url,
        SlackStandin() as slack,
        closing(Database(url)) as db,
    ):
        env = {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_API_URL": slack.url,
            "AI_INCIDENT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        }
        slack.set_delay(SLACK_DELAY)
        slack.add_usergroup("S0RESPOND1", ["U0BOB00002"])  # paged by customer-facing P1s
        slack.set_delay(SLACK_DELAY, after_effect=True)

        # phase one: stream, then SIGKILL while a post has reached Slack but not the bot
        first = BotProcess(database_url=url, workdir=workdir, env=env).start()
        sender = Sender(first.url, stream[:PHASE_ONE], pace=0.03)
        try:
            sender.start()
            wait_until(
                lambda: (
                    sender.accepted >= ACCEPTED_BEFORE_KILL and answer_pending_after_post(slack)
                ),
                timeout=60,
                what=lambda: (
                    f"{ACCEPTED_BEFORE_KILL} accepted alerts (have {sender.accepted}) and a "
                    f"chat.postMessage answer in flight; Slack calls: {len(slack.calls())}"
                ),
            )
            first.kill()
        finally:
            first.kill()
            sent = sender.finish()
        at_kill = db.open_outbox()
        posts_at_kill = len(slack.calls("chat.postMessage"))
        assert at_kill["pending"] + at_kill["in_flight"] > 0, f"nothing pending at kill: {at_kill}"
        assert at_kill["in_flight"] > 0, "the kill did not interrupt a delivery"

        # phase two: restart on the same database, send the rest, let the outbox drain
        slack.set_delay(0)
        slack.set_delay(0, after_effect=True)
        second = BotProcess(database_url=url, workdir=workdir, env=env).start()
        try:
            rest = Sender(second.url, stream[len(sent) : len(sent) + PHASE_TWO], pace=0.01)
            rest.start()
            rest.join(timeout=120)
            sent += rest.finish()
            # in-flight rows wait out their lease (60 s) before another attempt
            wait_until(
                lambda: not db.open_outbox(),
                timeout=240,
                what=lambda: f"the outbox to drain: {dict(db.open_outbox())}",
            )
        finally:
            second.stop()
        assert not db.open_outbox(), "new outbox rows after the drain"
        logs = first.output() + second.output()

        # every alert whose request got a 2xx is stored, in the state the last answered request set
        accepted = [r for r in sent if r.accepted]
        assert len(accepted) >= ACCEPTED_BEFORE_KILL + PHASE_TWO
        assert all(r.status in (200, 202) for r in sent if r.status is not None)
        stored = {
            (int(r.incident_id), str(r.fingerprint)): str(r.status)
            for r in db.rows("SELECT incident_id, fingerprint, status FROM alert")
        }
        last: dict[tuple[int, str], tuple[int, str]] = {}  # -> (request index, status sent)
        unanswered: dict[str, int] = {}  # fingerprint -> index of the last request with no answer
        for index, request in enumerate(sent):
            incident = (request.answer or {}).get("incident")
            for fp, status in request.alerts:
                if request.status is None:
                    unanswered[fp] = index
                elif incident is not None:
                    number = int(incident.removeprefix("INC-"))
                    assert (number, fp) in stored, f"accepted alert {fp} of {incident} not stored"
                    last[(number, fp)] = (index, status)
        for (number, fp), (index, status) in last.items():
            if index > unanswered.get(fp, -1):  # else a request that may have landed came later
                assert stored[(number, fp)] == status, f"{fp} of INC-{number}: {stored}"

        # every side effect was delivered, none failed
        outbox = db.rows("SELECT kind, idempotency_key, status, result FROM outbox ORDER BY id")
        assert outbox and all(r.status == "done" for r in outbox), [
            (r.idempotency_key, r.status) for r in outbox if r.status != "done"
        ]
        failed_calls = [(c.method, c.status, c.response) for c in slack.calls() if not c.ok]
        assert failed_calls == [], failed_calls

        # no message was posted twice: each carries its own idempotency key
        messages = slack.messages()
        keys = metadata_keys(messages)
        assert len(keys) == len(messages), "a message without the bot's metadata key"
        duplicates = [k for k, n in Counter(keys).items() if n > 1]
        assert duplicates == [], f"posted more than once: {duplicates}"

        # one card per incident, top level, where the incident says it is, showing its state
        incidents = db.rows("SELECT id, state, slack_channel, slack_ts FROM incident ORDER BY id")
        assert len(incidents) >= len(AM_GROUPS)
        for inc in incidents:
            cards = [m for m in messages if metadata_keys([m]) == [f"card:{inc.id}"]]
            assert len(cards) == 1, f"INC-{inc.id} has {len(cards)} cards"
            card = cards[0]
            assert is_top_level(card)
            assert (card["channel"], card["ts"]) == (inc.slack_channel, inc.slack_ts)
            assert inc.state in card["text"].lower(), f"INC-{inc.id} card is stale: {card['text']}"
        assert sum(1 for k in keys if k.startswith("card:")) == len(incidents)

        # every journal post is a reply in its incident's thread, exactly once
        replies = {m["ts"]: m for m in messages if not is_top_level(m)}
        thread_of = {inc.id: inc.slack_ts for inc in incidents}
        for row in outbox:
            if row.kind != "chat.journal":
                continue
            posted = [m for m in replies.values() if metadata_keys([m]) == [row.idempotency_key]]
            result = json.loads(row.result) if isinstance(row.result, str) else row.result
            if "skipped" in result:
                assert posted == []
                continue
            assert len(posted) == 1, f"{row.idempotency_key} posted {len(posted)} times"
            assert posted[0]["ts"] == result.get("ts")
        # replies are journal posts, and paging's mentions of the AI lead (`…:thread`)
        assert len(replies) == sum(
            1 for k in keys if k.startswith("journal:") or k.endswith(":thread")
        )

        # every journal entry was posted, in its own incident's thread
        entries = db.rows("SELECT id, incident_id, slack_ts FROM journal_entry ORDER BY id")
        assert entries
        unposted = [e.id for e in entries if e.slack_ts is None]
        assert unposted == [], f"journal entries never posted: {unposted}"
        for entry in entries:
            reply = replies.get(entry.slack_ts)
            assert reply is not None, f"journal entry {entry.id} points at no reply"
            assert reply["thread_ts"] == thread_of[entry.incident_id]

        # the restart looked before re-posting what the kill left uncertain
        lookups = [
            c
            for c in slack.calls()
            if c.method in ("conversations.history", "conversations.replies")
        ]
        assert lookups, "no lookup after the restart"
        assert all(str(c.params.get("include_all_metadata")) in ("1", "true") for c in lookups)
        assert "Traceback" not in logs, logs[-5000:]
        print(
            f"\n{backend}: {len(sent)} requests ({len(accepted)} accepted); at the kill "
            f"{dict(at_kill)} open outbox rows after {posts_at_kill} posts; "
            f"{len(incidents)} incidents, {len(outbox)} outbox rows, {len(messages)} messages, "
            f"{len(lookups)} lookups"
        )
        slack.assert_no_violations()


def test_answer_lost_after_the_post_took_effect_duplicates_nothing(workdir: Path) -> None:
    """Slack posts the card but the answer is a 503 (as after a timeout): the retry must not
    post it again. The same uncertainty as a crash between the post and recording its ts."""
    url = f"sqlite:///{workdir / 'bot.db'}"
    with SlackStandin() as slack, closing(Database(url)) as db:
        slack.fail_next("chat.postMessage", status=503, effect=True)
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": slack.url}
        bot = BotProcess(database_url=url, workdir=workdir, env=env).start()
        try:
            body = {"dedup_key": "lost", "status": "firing", "title": "Lost answer"}
            answer = httpx.post(f"{bot.url}/webhooks/alerts", json=body, headers=AUTH, timeout=15)
            assert answer.status_code == 202
            wait_until(
                lambda: bool(db.rows("SELECT id FROM outbox")) and not db.open_outbox(),
                timeout=60,
                what=lambda: f"the outbox to drain: {dict(db.open_outbox())}",
            )
        finally:
            bot.stop()
        assert [c.status for c in slack.calls("chat.postMessage")][:1] == [503]
        keys = metadata_keys(slack.messages())
        assert sorted(keys) == sorted(set(keys)), f"posted more than once: {keys}"
        slack.assert_no_violations()
