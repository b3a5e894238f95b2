"""Slack's requests are dispatched on threads of their own: a busy default pool delays no ack."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from handlers.http import create_app
from tests.conftest import Bot
from tests.handlers.test_slack_commands import command_body
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import signed

# more than the default pool ever has on any machine the tests run on
BLOCKERS = 64


def test_a_slack_ack_does_not_wait_for_the_default_thread_pool(
    sbot: Bot, slack: SlackStandin
) -> None:
    released = threading.Event()
    # free the pool after a while whatever happens, so a failing run cannot hang
    timer = threading.Timer(8.0, released.set)
    timer.start()

    def occupy() -> None:
        # every thread of the default pool waits, as database writes waiting for the lock do
        loop = asyncio.get_running_loop()
        for _ in range(BLOCKERS):
            loop.run_in_executor(None, released.wait)

    try:
        sbot.client.portal.call(occupy)  # type: ignore[union-attr]
        body = command_body(slack, "help")
        started = time.monotonic()
        r = sbot.client.post("/slack/events", content=body, headers=signed(body))
        elapsed = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert elapsed < 3.0, f"the ack took {elapsed:.1f} s"  # Slack's ack deadline
    finally:
        released.set()
        timer.cancel()


def test_the_slack_threads_stop_with_the_app(sbot: Bot) -> None:
    # a second app over the same container, its workers left alone
    app = create_app(sbot.container, manage_lifecycle=False)
    executor = app.state.slack_executor
    assert isinstance(executor, ThreadPoolExecutor)
    with TestClient(app):
        executor.submit(print).result(timeout=5)
    try:
        executor.submit(print)
    except RuntimeError as refused:
        assert "shutdown" in str(refused)
    else:
        raise AssertionError("the Slack executor still takes work after the app stopped")
