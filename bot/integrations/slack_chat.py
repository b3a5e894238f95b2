"""Slack Web API adapter for posting cards and thread replies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.integrations.ports import GiveUp, NotYet, PostedMessage, RetryLater

__all__ = ["METADATA_EVENT", "ChannelPace", "SlackChat"]

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


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ChannelPace:
    """When each channel takes its next post: about one a second, as Slack asks, before a 429.

    Never waits: a post to a channel that is not due raises NotYet with the time it is, and the
    delivery worker defers that row alone, so one busy channel holds up no other channel and no
    direct message. Every lane posting through the adapter shares this state under one lock.
    """

    # forget channels not posted to for this long (their time is long past)
    FORGET_AFTER = timedelta(minutes=10)

    def __init__(self, interval: timedelta, clock: Callable[[], datetime]) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next: dict[str, datetime] = {}
        self._sending: set[str] = set()

    @contextmanager
    def turn(self, channel: str) -> Iterator[None]:
        """Hold the channel's turn while one post is on its way, or raise NotYet."""
        if self._interval <= timedelta(0):
            yield
            return
        with self._lock:
            now = self._clock()
            due = self._next.get(channel, now)
            if channel in self._sending:
                # another lane's post is on its way: its answer sets the next time
                due = max(due, now + self._interval)
            if due > now:
                raise NotYet(f"{channel} takes its next post at {due.isoformat()}", due)
            self._sending.add(channel)
        try:
            yield
        finally:
            with self._lock:
                self._sending.discard(channel)
                # counted from the answer, so the gap Slack sees between two posts is never shorter
                now = self._clock()
                self._next[channel] = now + self._interval
                if len(self._next) > 1000:
                    self._next = {
                        c: t for c, t in self._next.items() if t > now - self.FORGET_AFTER
                    }


class SlackChat:
    """A ChatNotifier on slack_sdk's WebClient; base URL from SLACK_API_URL.

    Posts to one channel are paced on `clock` (`ChannelPace`); `per_channel_interval=0` lifts
    the pacing, for a receiver that does not limit the rate.
    """

    def __init__(
        self,
        client: WebClient,
        *,
        per_channel_interval: float = 1.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._client = client
        self._pace = ChannelPace(timedelta(seconds=per_channel_interval), clock)

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        key: str,
        thread_ts: str | None = None,
    ) -> PostedMessage:
        with self._pace.turn(channel):
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
