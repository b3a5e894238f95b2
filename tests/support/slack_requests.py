"""Requests built the way Slack builds them: v0 signatures over the exact body."""

from __future__ import annotations

import hashlib
import hmac
import time

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALICE = "U0ALICE001"  # a responder in the example policy
CAROL = "U0CAROL003"  # not a responder
SUMMARY_CHANNEL = "C0SUMMARY01"


def signed(body: str, *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    """Return Slack's signature headers for a form body (set Content-Type for JSON)."""
    stamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
