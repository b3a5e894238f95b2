"""A PostgreSQL that stalls (connections stay open, answers never come) turns alert webhooks into
503 within 10 s, and ingest carries on by itself once the database answers again, with every
alert that was answered 2xx stored."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from storage.db import create_db_engine
from storage.models import AlertRow
from tests.conftest import Bot, make_bot, payload, without_tickets
from tests.support.databases import postgres_database
from tests.support.tcp_proxy import FreezableProxy

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ANSWER_WITHIN_S = 10.0


@pytest.fixture
def stalling() -> Iterator[tuple[str, FreezableProxy]]:
    """A fresh database (its direct URL) and a proxy in front of the server."""
    with postgres_database() as url:
        direct = make_url(url)
        assert direct.host is not None and direct.port is not None
        with FreezableProxy((direct.host, direct.port)) as proxy:
            yield url, proxy


def generic(key: str) -> dict[str, Any]:
    return {"dedup_key": key, "status": "firing", "title": f"alert {key}", "workflow": "unassigned"}


def alertmanager(group: str) -> dict[str, Any]:
    body = copy.deepcopy(payload("alertmanager_v4_firing.json"))
    body["groupKey"] = group
    for i, alert in enumerate(body["alerts"]):
        alert["fingerprint"] = f"{group}-{i}"
    return body


class Sender(threading.Thread):
    """One webhook request in a thread of its own, timed."""

    def __init__(self, bot: Bot, path: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.bot, self.path, self.body = bot, path, body
        self.status: int | None = None
        self.text = ""
        self.took = 0.0

    def run(self) -> None:
        started = time.monotonic()
        r = self.bot.post(self.path, self.body)
        self.took = time.monotonic() - started
        self.status, self.text = r.status_code, r.text


def stored_fingerprints(url: str) -> list[str]:
    """Every stored alert's fingerprint, read past the proxy."""
    engine = create_db_engine(url)
    try:
        with Session(engine) as s:
            return list(s.exec(select(AlertRow.fingerprint)).all())
    finally:
        engine.dispose()


def test_a_stalled_database_is_503_within_10s_and_ingest_recovers_when_it_answers_again(
    stalling: tuple[str, FreezableProxy],
) -> None:
    url, proxy = stalling
    through_proxy = make_url(url).set(port=proxy.port).render_as_string(hide_password=False)
    bot = make_bot(through_proxy, policy=without_tickets())
    accepted: set[str] = set()  # fingerprints of alerts answered 2xx
    with bot.client:
        bot.container.stop_delivery()  # only the ingest path is under test
        assert bot.post("/webhooks/alerts", generic("before")).status_code == 202
        accepted.add("before")

        proxy.freeze()
        try:
            senders = [
                Sender(bot, "/webhooks/alerts", generic("frozen-1")),
                Sender(bot, "/webhooks/alertmanager", alertmanager("frozen-2")),
                Sender(bot, "/webhooks/alerts", generic("frozen-3")),
            ]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(timeout=ANSWER_WITHIN_S + 5)
            for sender in senders:
                assert not sender.is_alive(), f"{sender.path} still waiting on the database"
                assert sender.status == 503, sender.text
                assert "storage unavailable" in sender.text
                assert sender.took < ANSWER_WITHIN_S, sender.took
        finally:
            proxy.thaw()

        # the database answers again: the writer carries on by itself, no restart
        after = [
            ("/webhooks/alerts", generic("after-1"), {"after-1"}),
            ("/webhooks/alertmanager", alertmanager("after-2"), {"after-2-0", "after-2-1"}),
        ]
        for path, body, fingerprints in after:
            r = bot.post(path, body)
            assert r.status_code == 202, r.text
            accepted |= fingerprints
        # a sender retries what got 503: it is stored once, however the stalled attempt ended
        r = bot.post("/webhooks/alerts", generic("frozen-1"))
        assert r.status_code in (200, 202), r.text
        accepted.add("frozen-1")
    bot.container.engine.dispose()
    stored = stored_fingerprints(url)
    assert accepted <= set(stored)
    assert stored.count("frozen-1") == 1
