"""Run the real `ai-incident serve` in a child process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

# outside local mode `serve` refuses placeholder and short secrets: the bot's processes get real ones
WEBHOOK_TOKEN = "webhook-token-for-tests-7c1d0e"
EXAMPLE_SECRETS = {
    "ALERTMANAGER_WEBHOOK_TOKEN": "alertmanager-token-for-tests-52b9",
    "GRAFANA_WEBHOOK_SECRET": "grafana-signing-key-for-tests-a41e",
    "LLM_OBS_WEBHOOK_TOKEN": "llm-obs-token-for-tests-9d03",
    "AGENT_WEBHOOK_SECRET": "agent-signing-key-for-tests-e7c2",
    "OTEL_WEBHOOK_TOKEN": "otel-token-for-tests-4b8e",
    "JIRA_WEBHOOK_SECRET": "jira-webhook-key-for-tests-3f6a",
}


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortTaken(RuntimeError):
    """Another process bound the port between picking it and the child binding it."""


class BotProcess:
    """The bot as a user runs it: `python -m bot.cli serve`, stdout captured to a file."""

    def __init__(
        self,
        *,
        database_url: str,
        workdir: Path,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / f"bot-{self.port}.log"
        self.args = list(args)
        self.env = {
            **os.environ,
            **EXAMPLE_SECRETS,
            "DATABASE_URL": database_url,
            "AI_INCIDENT_CONFIG": str(workdir / "ai-incident.yml"),
            "AI_INCIDENT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, attempts: int = 3) -> BotProcess:
        """Start and wait until /readyz answers 200.

        The free port is only free when it was picked: a parallel test may bind it first, so a
        start that finds it taken starts again on another one.
        """
        for _ in range(attempts - 1):
            try:
                return self._start(timeout)
            except PortTaken:
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                self.log_path = self.workdir / f"bot-{self.port}.log"
        return self._start(timeout)

    def _start(self, timeout: float) -> BotProcess:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--port", str(self.port), *self.args],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "address already in use" in self.output().lower():
                    raise PortTaken(self.port)
                raise RuntimeError(f"bot exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)  # not listening yet
                continue
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"bot not ready in {timeout}s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush, like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait, like an orderly shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        """Return everything the process printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
