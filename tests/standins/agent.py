"""An AI agent's callback endpoint on a loopback port: records every delivery, can be down.

    with AgentStandin() as agent:
        ...  # hand `agent.url` over as a handoff's callback_url
        agent.stop()      # down: connections are refused
        agent.start()     # back, on the same port
        agent.fail_next(503, times=2)   # or answering errors

`requests` keeps each request as it arrived (raw body and headers) with the status it was
answered with; `delivered()` are those answered 2xx, the ones the agent acted on.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["AgentStandin", "Delivery"]


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    status: int
    at: float


class AgentStandin:
    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Delivery] = []
        self._failures: deque[tuple[int, dict[str, str]]] = deque()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/decisions"

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            status, headers = self._failures.popleft() if self._failures else (200, {})
            self.requests.append(
                Delivery(
                    body=body,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    status=status,
                    at=time.time(),
                )
            )
        return JSONResponse({"ok": status < 300}, status_code=status, headers=headers)

    def fail_next(self, status: int, *, times: int = 1, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._failures.extend([(status, headers)] * times)

    def delivered(self) -> list[Delivery]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def start(self, timeout: float = 10.0) -> AgentStandin:
        """Serve (again, on the same port after the first start)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = int(sock.getsockname()[1])
        self._socket = sock
        self._server = uvicorn.Server(
            uvicorn.Config(
                Starlette(routes=[Route("/decisions", self._receive, methods=["POST"])]),
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                http="h11",
                loop="asyncio",
                timeout_graceful_shutdown=1,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="agent-standin", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the agent stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving: connections to the port are refused until `start`."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> AgentStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
