"""Outbox handler on the callback lane: the decision goes back to the agent, signed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.config import Policy
from bot.delivery.worker import Attempt
from bot.domain.redaction import SafeText
from bot.integrations.ports import GiveUp
from storage.db import session_scope
from storage.models import HandoffRow

__all__ = ["CallbackDelivery", "CallbackSender", "callback_secret", "decision_body"]


class CallbackSender(Protocol):
    def post(
        self, *, url: str, body: bytes, secret: str, idempotency_key: str, source: str
    ) -> int: ...


def callback_secret(policy: Policy, source: str, global_token: str | None) -> str | None:
    """Return the secret a source's callbacks are signed with.

    The source's `hmac_secret` (the one it signs its handoffs with), else its own bearer
    token, else the global webhook token (senders that use it are the `default` source).
    """
    configured = policy.sources.get(source)
    if configured is not None:
        if configured.hmac_secret:
            return configured.hmac_secret
        if configured.token:
            return configured.token
    return global_token


# what people and the agent wrote; ids, keys and times are the bot's own and go as they are
_TEXT_FIELDS = ("output", "edited_output", "reason")


def decision_body(body: Mapping[str, Any], safe: SafeText) -> dict[str, Any]:
    """Return the decision as the agent receives it: its texts redacted as the reviewer saw them.

    The reviewer approved the response as the card showed it, redacted; the agent gets that,
    never a secret nobody saw.
    """
    out = dict(body)
    for name in _TEXT_FIELDS:
        if out.get(name) is not None:
            out[name] = safe.plain(str(out[name]))
    if out.get("proposed_action") is not None:
        out["proposed_action"] = safe.data(out["proposed_action"])
    return out


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


class CallbackDelivery:
    """Delivers `handoff.callback` rows; retries are the lane's (backoff, Retry-After)."""

    def __init__(
        self,
        *,
        engine: Engine,
        sender: CallbackSender,
        secret_for: Callable[[str], str | None],
        safe: SafeText,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._sender = sender
        self._secret_for = secret_for
        self._safe = safe
        self._clock = clock

    def deliver(self, attempt: Attempt) -> dict[str, Any]:
        """POST the decision; an earlier attempt that may have arrived is simply sent again.

        The body's `idempotency_key` is the same on every attempt, so the agent drops repeats.
        """
        payload = attempt.payload
        source = str(payload.get("source") or "")
        secret = self._secret_for(source)
        if not secret:
            raise GiveUp(f"no secret to sign callbacks of source {source!r} with")
        body = decision_body(payload["body"], self._safe)
        status = self._sender.post(
            url=str(payload["url"]),
            body=encode(body),
            secret=secret,
            idempotency_key=str(body["idempotency_key"]),
            source=source,
        )
        with session_scope(self._engine) as session:
            session.execute(
                sa.update(HandoffRow)
                .where(sa.column("id") == int(payload["handoff_id"]))
                .values(callback_delivered_at=self._clock())
            )
        return {"status": status}
