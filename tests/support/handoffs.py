"""Handoff bodies, agent signatures, and the README's callback verification snippet."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.handoffs.domain import sign

README = Path(__file__).resolve().parents[2] / "README.md"
AGENT_SECRET = "change-me-agents"  # the example policy's `agents` source, env unset
BOB = "U0BOB00002"  # a reviewer in the example policy
REVIEW_CHANNEL = "C0REVIEWS01"


def handoff_body(key: str = "ticket-1", **overrides: Any) -> dict[str, Any]:
    """A low-confidence handoff of the support chatbot, as §8 describes it."""
    body: dict[str, Any] = {
        "idempotency_key": key,
        "workflow": "support-chatbot",
        "agent": {"id": "support-bot", "version": "2.3.1"},
        "reason": "low_confidence",
        "confidence": 0.62,
        "request": {
            "summary": "Customer asks for a refund of order 1234",
            "text": "Hi, I was charged twice for order 1234, can I get my money back?",
            "user": "customer-881",
            "channel": "web-chat",
        },
        "attempted_response": "I have refunded both charges; you will see them in 3 days.",
        "suggested_actions": ["check the order in billing", "refund one charge only"],
        "proposed_action": {"name": "refund", "args": {"order": "1234", "amount_eur": 49.0}},
        "context": {"order_total_eur": 49.0, "charges": 2},
        "request_id": "req-77",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "prompt_version": "refunds-v7",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 812,
        "cost_usd": 0.0123,
    }
    body.update(overrides)
    return body


def agent_headers(
    raw: bytes, *, secret: str = AGENT_SECRET, at: int | None = None
) -> dict[str, str]:
    """Headers of a handoff signed the way an agent of the `agents` source signs it."""
    stamp = int(time.time()) if at is None else at
    return {"Content-Type": "application/json", "X-AI-Incident-Signature": sign(secret, raw, stamp)}


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def readme_verifier() -> Callable[[str, bytes, str], bool]:
    """Return `verify_signature` exactly as the README shows it, executed from the README."""
    text = README.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- callback-verify:start -->\s*```python\n(.*?)```\s*<!-- callback-verify:end -->",
        text,
        re.S,
    )
    assert found is not None, "the README lost its callback verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), "README.md", "exec"), namespace)
    verifier: Callable[[str, bytes, str], bool] = namespace["verify_signature"]
    return verifier
