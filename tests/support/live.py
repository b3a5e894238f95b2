"""Serve an ASGI app on an ephemeral loopback port in a thread, for clients that need a socket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.standins.server import LoopbackServer


@contextmanager
def serving(app: Any, *, timeout: float = 10.0) -> Iterator[str]:
    """Run `app` with its lifespan (the bot's workers) and yield its base URL; stop it after."""
    server = LoopbackServer(app, name="app", lifespan="on", timeout_graceful_shutdown=2)
    port = server.start(timeout)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
