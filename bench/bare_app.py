"""The baseline of the ingest benchmark: a bare ASGI endpoint that parses the body and answers 202.

It is a plain ASGI callable (no framework), served by the same uvicorn with the same arguments
`ai-incident serve` passes (`bot/cli.py`): one process, default loop and HTTP implementation
(uvloop and httptools when installed), log level info, no access log. Whatever it reaches is
the ceiling for this machine, this uvicorn and this load generator; the bot is measured
against it in the same run.

    .venv/bin/python bench/bare_app.py --port 8099

Every POST: read the whole body, `json.loads` it (422 when that fails), answer 202 with a small
JSON body. GET /readyz and /healthz answer 200 so the benchmark can wait for it like for the bot.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ACCEPTED = b'{"status":"accepted"}'
_INVALID = b'{"error":"body is not valid JSON"}'
_READY = b'{"status":"ready"}'


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the body, parse it as JSON, answer 202."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["method"] != "POST":
        await _answer(send, 200, _READY)
        return
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    try:
        json.loads(b"".join(chunks))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        await _answer(send, 422, _INVALID)
        return
    await _answer(send, 202, _ACCEPTED)


def main() -> None:
    """Serve `app` exactly as `ai-incident serve` serves the bot."""
    import uvicorn

    from bot.logs import uvicorn_log_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    # the same call as bot/cli.py `_serve` (access_log=False is `serve` without --access-log)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=uvicorn_log_config(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
