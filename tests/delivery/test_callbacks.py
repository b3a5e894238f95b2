"""The callback adapter and handler: signing, what is retried, Retry-After, the secret used."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from bot.config import Policy, Source
from bot.delivery.callbacks import callback_secret, decision_body, encode
from bot.delivery.worker import GiveUp, RetryLater
from bot.domain.redaction import Redactor, SafeText
from bot.integrations.callback_http import HttpCallbacks
from tests.support.handoffs import readme_verifier

NOW = 1_795_428_000.0  # 2026-11-23 10:00 UTC
URL = "https://agent.example.com/decisions"
BODY = encode({"idempotency_key": "handoff-decision:HO-1", "decision": "approved"})


def sender(answer: Any, seen: list[httpx.Request] | None = None) -> HttpCallbacks:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        response: httpx.Response = answer
        return response

    return HttpCallbacks(transport=httpx.MockTransport(handle), wall=lambda: NOW)


def post(callbacks: HttpCallbacks) -> int:
    return callbacks.post(url=URL, body=BODY, secret="s3cret", idempotency_key="k")


def test_a_delivered_callback_is_signed_as_the_readme_says() -> None:
    seen: list[httpx.Request] = []
    assert post(sender(httpx.Response(204), seen)) == 204
    [request] = seen
    assert request.content == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "k"
    header = request.headers["x-ai-incident-signature"]
    assert header.startswith(f"t={int(NOW)},v1=")
    # the README's snippet checks against the wall clock; this signature is from NOW
    verify = readme_verifier()
    assert verify("s3cret", BODY, header, tolerance=10**9)
    assert not verify("other", BODY, header, tolerance=10**9)
    assert not verify("s3cret", BODY, header)  # stale for the snippet's own clock


@pytest.mark.parametrize(
    ("response", "retry_after"),
    [
        (httpx.Response(429, headers={"Retry-After": "30"}), 30.0),
        (httpx.Response(429), 1.0),
        (
            httpx.Response(
                503,
                headers={
                    "Retry-After": format_datetime(
                        datetime.fromtimestamp(NOW + 90, UTC), usegmt=True
                    )
                },
            ),
            90.0,
        ),
        (httpx.Response(500), None),
        (httpx.Response(404), None),
        (httpx.Response(401), None),
        (httpx.Response(429, headers={"Retry-After": "999999"}), 3600.0),
    ],
)
def test_failures_are_retried_honouring_retry_after(
    response: httpx.Response, retry_after: float | None
) -> None:
    with pytest.raises(RetryLater) as raised:
        post(sender(response))
    assert raised.value.retry_after == retry_after


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut")],
)
def test_network_errors_are_retried(error: Exception) -> None:
    with pytest.raises(RetryLater):
        post(sender(error))


def test_gone_stops_the_retries() -> None:
    with pytest.raises(GiveUp):
        post(sender(httpx.Response(410)))


def test_which_secret_signs_a_sources_callbacks() -> None:
    policy = Policy(
        sources={
            "agents": Source(kind="agent", hmac_secret="hmac"),
            "scripts": Source(kind="generic", token="tok"),
        }
    )
    assert callback_secret(policy, "agents", "global") == "hmac"
    assert callback_secret(policy, "scripts", "global") == "tok"
    assert callback_secret(policy, "default", "global") == "global"
    assert callback_secret(policy, "default", None) is None


def test_the_body_is_compact_sorted_json() -> None:
    assert json.loads(BODY) == {"idempotency_key": "handoff-decision:HO-1", "decision": "approved"}
    assert BODY == b'{"decision":"approved","idempotency_key":"handoff-decision:HO-1"}'


def test_the_decision_carries_what_the_reviewer_saw_redacted() -> None:
    key = "sk-" + "proj-" + "Ab3dEfGhXq3vN8kLm2Pw7RtY9aBc4DeF6gHj1KsT0u"
    body = {
        "idempotency_key": "handoff-decision:HO-1",
        "handoff_idempotency_key": "refund-1234",
        "decision": "approved",
        "output": f"Your key is {key}",
        "edited_output": None,
        "reason": None,
        "proposed_action": {"name": "refund", "args": {"note": key, "token": "abc", "n": 2}},
    }
    sent = decision_body(body, SafeText(Redactor()))
    assert sent["output"] == "Your key is [REDACTED:openai_api_key]"
    assert sent["proposed_action"] == {
        "name": "refund",
        "args": {"note": "[REDACTED:openai_api_key]", "token": "[REDACTED:token]", "n": 2},
    }
    assert sent["edited_output"] is None and sent["reason"] is None
    assert sent["handoff_idempotency_key"] == "refund-1234"  # the agent's own key, as sent
    assert key in body["output"]  # the stored decision is left as it is
