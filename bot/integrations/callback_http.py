"""Post signed decision callbacks to agents with httpx; errors become RetryLater or GiveUp."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from bot.handoffs.domain import SIGNATURE_HEADER, sign
from bot.integrations.callback_targets import (
    CallbackGuard,
    HostNotFound,
    RefusedTarget,
    ResolutionFailed,
    VettedTarget,
)
from bot.integrations.ports import GiveUp, RetryLater

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

    The target is vetted against the callback policy right before each attempt and the
    connection goes to an address that was checked, with the URL's host kept for the Host
    header and TLS (SNI and certificate). A target the policy refuses is given up on. 2xx is
    delivered. 410 Gone means the agent will never take it: give up. Everything else —
    connection errors, timeouts, DNS failures, 429 (honouring Retry-After), 5xx, other 4xx
    while the agent's endpoint is being fixed — is retried with backoff.
    """

    def __init__(
        self,
        *,
        guard: CallbackGuard,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._guard = guard
        self._client = httpx.Client(
            timeout=timeout,
            transport=transport,
            verify=verify,
            follow_redirects=False,
            # a proxy from the environment would resolve the name again, unchecked
            trust_env=False,
            # a pooled connection is keyed by address: never reuse one made for another host
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._wall = wall

    def _vet(self, url: str, source: str) -> VettedTarget:
        try:
            return self._guard.vet(url, source=source)
        except RefusedTarget as exc:
            raise GiveUp(f"callback to {url} refused: {exc}") from exc
        except (HostNotFound, ResolutionFailed) as exc:
            raise RetryLater(f"callback to {url}: {exc}") from exc

    def _send(self, target: VettedTarget, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST to the checked addresses in turn until one accepts the connection."""
        headers = {**headers, "Host": target.url.netloc.decode("ascii")}
        extensions = {"sni_hostname": target.host} if target.named else {}
        failed: httpx.TransportError | None = None
        for address in target.addresses:
            request = self._client.build_request(
                "POST",
                target.pinned(address),
                content=body,
                headers=headers,
                extensions=extensions,
            )
            try:
                return self._client.send(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failed = exc  # nothing was sent: the next address may answer
        assert failed is not None
        raise failed

    def post(self, *, url: str, body: bytes, secret: str, idempotency_key: str, source: str) -> int:
        """POST `body` to `url` for `source`; return the HTTP status of a delivered callback."""
        target = self._vet(url, source)
        now = self._wall()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": idempotency_key,
            SIGNATURE_HEADER: sign(secret, body, int(now)),
        }
        try:
            response = self._send(target, body, headers)
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
