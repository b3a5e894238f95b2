"""Post signed decision callbacks to agents with httpx; errors become RetryLater or GiveUp."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from bot.delivery.worker import GiveUp, RetryLater
from bot.domain.handoffs import SIGNATURE_HEADER, sign

__all__ = ["MAX_RETRY_AFTER_S", "HttpCallbacks"]

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 3600.0
USER_AGENT = "ai-incident-bot (handoff callbacks)"


def _retry_after(value: str | None, now: float) -> float | None:
    """Read Retry-After in seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(
        max((when - datetime.fromtimestamp(now, UTC)).total_seconds(), 0.0), MAX_RETRY_AFTER_S
    )


class HttpCallbacks:
    """Sends one callback: the JSON body, signed at the moment it leaves (wall-clock time).

    2xx is delivered. 410 Gone means the agent will never take it: give up. Everything else —
    connection errors, timeouts, 429 (honouring Retry-After), 5xx, other 4xx while the agent's
    endpoint is being fixed — is retried with backoff.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        self._wall = wall

    def post(self, *, url: str, body: bytes, secret: str, idempotency_key: str) -> int:
        """POST `body` to `url`; return the HTTP status of a delivered callback."""
        now = self._wall()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": idempotency_key,
            SIGNATURE_HEADER: sign(secret, body, int(now)),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RetryLater(f"callback to {url} timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise RetryLater(f"callback to {url} failed: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return status
        if status == 410:
            raise GiveUp(f"callback to {url}: 410 Gone, the agent will not take it")
        wait = _retry_after(response.headers.get("retry-after"), self._wall())
        if status == 429:
            raise RetryLater(
                f"callback to {url}: 429 rate limited", wait if wait is not None else 1.0
            )
        log.warning("callback to %s answered HTTP %d; retrying", url, status)
        raise RetryLater(f"callback to {url}: HTTP {status}", wait)

    def close(self) -> None:
        self._client.close()
