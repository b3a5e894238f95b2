"""One JSON POST to a paging provider, its failures translated for the delivery worker."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from bot.integrations.ports import GiveUp, RetryLater

__all__ = ["HttpFactory", "default_http", "post_json", "retry_after"]

HttpFactory = Callable[[], httpx.Client]
TIMEOUT_S = 10.0


def default_http() -> httpx.Client:
    """Return a client for one delivery attempt (a page is rare; no pool to keep alive)."""
    return httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)


def retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Read Retry-After: seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _why(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("message", "status") if body.get(k)]
        errors = body.get("errors")
        if errors:
            parts.append(json.dumps(errors, ensure_ascii=False)[:300])
        if parts:
            return ": ".join(parts)
    return json.dumps(body, ensure_ascii=False)[:300]


def post_json(
    http: HttpFactory,
    url: str,
    body: Mapping[str, Any] | bytes,
    *,
    what: str,
    headers: Mapping[str, str] | None = None,
    ok_statuses: frozenset[int] = frozenset(),
) -> httpx.Response:
    """POST `body` (JSON, or bytes already encoded); return a 2xx response.

    429, 408 and 5xx become RetryLater (with the receiver's Retry-After), network errors too;
    any other status becomes GiveUp with the receiver's reason. `ok_statuses` are accepted as
    they are (e.g. 404 on acknowledging an alert that is already gone).
    """
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    try:
        with http() as client:
            response = client.post(url, content=content, headers=sent)
    except httpx.TimeoutException as exc:
        raise RetryLater(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise RetryLater(f"{what}: {type(exc).__name__}: {exc}") from exc
    status = response.status_code
    if 200 <= status < 300 or status in ok_statuses:
        return response
    reason = f"{what}: HTTP {status} {_why(response)}"
    if status in (408, 429) or status >= 500:
        raise RetryLater(reason, retry_after(response.headers.get("Retry-After")))
    raise GiveUp(reason)
