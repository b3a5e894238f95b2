"""Slack Web API adapter for posting cards and thread replies."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.integrations.ports import GiveUp, PostedMessage, RetryLater

__all__ = ["METADATA_EVENT", "SlackChat"]

log = logging.getLogger(__name__)

METADATA_EVENT = "ai_incident_post"
MAX_FIND_PAGES = 50
# ok:false codes where a later attempt can succeed
RETRYABLE_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)


def _translate(exc: Exception, method: str) -> Exception:
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        error = str(exc.response.get("error", "unknown_error"))
        if status == 429:
            retry_after = exc.response.headers.get("Retry-After") or exc.response.headers.get(
                "retry-after"
            )
            return RetryLater(f"{method}: rate limited", float(retry_after) if retry_after else 1.0)
        if status >= 500 or error in RETRYABLE_ERRORS:
            return RetryLater(f"{method}: {error} (HTTP {status})")
        log.error("Slack %s failed: %s", method, error)
        return GiveUp(f"{method}: {error}")
    return RetryLater(f"{method}: {type(exc).__name__}: {exc}")


class SlackChat:
    """A ChatNotifier on slack_sdk's WebClient; base URL from SLACK_API_URL."""

    def __init__(
        self,
        client: WebClient,
        *,
        per_channel_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._interval = per_channel_interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_post: dict[str, float] = {}

    def _pace(self, channel: str) -> None:
        """Keep to about one message per second per channel, as Slack asks, before it says 429."""
        wait = self._next_post.get(channel, 0.0) - self._monotonic()
        if wait > 0:
            self._sleep(wait)

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        key: str,
        thread_ts: str | None = None,
    ) -> PostedMessage:
        self._pace(channel)
        try:
            resp = self._client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            raise _translate(exc, "chat.postMessage") from exc
        finally:
            # counted from the answer, so the gap Slack sees between two posts is never shorter
            self._next_post[channel] = self._monotonic() + self._interval
        return PostedMessage(channel=str(resp["channel"]), ts=str(resp["ts"]))

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None
    ) -> None:
        try:
            self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except (SlackApiError, SlackClientError, OSError) as exc:
            raise _translate(exc, "chat.update") from exc

    def upload(
        self,
        *,
        channel: str,
        filename: str,
        content: bytes,
        title: str,
        thread_ts: str | None = None,
    ) -> str:
        # Slack's current flow: files.getUploadURLExternal, the bytes to the URL it gives,
        # then files.completeUploadExternal to share the file in the channel
        try:
            resp = self._client.files_upload_v2(
                channel=channel,
                filename=filename,
                content=content,
                title=title,
                thread_ts=thread_ts,
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            raise _translate(exc, "files.upload") from exc
        file = resp.get("file") or {}
        return str(file.get("id", ""))

    def permalink(self, *, channel: str, ts: str) -> str | None:
        try:
            resp = self._client.chat_getPermalink(channel=channel, message_ts=ts)
        except (SlackApiError, SlackClientError, OSError) as exc:
            raise _translate(exc, "chat.getPermalink") from exc
        link = resp.get("permalink")
        return str(link) if link else None

    def find(self, *, channel: str, key: str, thread_ts: str | None = None) -> str | None:
        cursor: str | None = None
        for _ in range(MAX_FIND_PAGES):
            try:
                if thread_ts is None:
                    resp = self._client.conversations_history(
                        channel=channel, include_all_metadata=True, limit=200, cursor=cursor
                    )
                else:
                    resp = self._client.conversations_replies(
                        channel=channel,
                        ts=thread_ts,
                        include_all_metadata=True,
                        limit=200,
                        cursor=cursor,
                    )
            except (SlackApiError, SlackClientError, OSError) as exc:
                raise _translate(exc, "conversations.history") from exc
            messages: list[dict[str, Any]] = resp.get("messages", [])
            for message in messages:
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == METADATA_EVENT and payload.get("key") == key:
                    return str(message["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        log.warning("gave up looking for %s after %d pages; posting again", key, MAX_FIND_PAGES)
        return None
