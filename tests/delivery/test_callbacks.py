"""The callback adapter and handler: signing, what is retried, Retry-After, the secret used, and
the target checked again right before each attempt, connecting only to an address it checked."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from bot.config import Policy, Source
from bot.domain.redaction import Redactor, SafeText
from bot.handoffs.callback_delivery import callback_secret, decision_body, encode
from bot.integrations.callback_http import HttpCallbacks
from bot.integrations.callback_targets import CallbackGuard
from bot.integrations.ports import GiveUp, RetryLater
from tests.support.handoffs import readme_verifier
from tests.support.resolver import PUBLIC, FakeResolver

NOW = 1_795_428_000.0  # 2026-11-23 10:00 UTC
URL = "https://agent.example.com/decisions"
BODY = encode({"idempotency_key": "handoff-decision:HO-1", "decision": "approved"})


def guard(
    resolver: FakeResolver | None = None, policy: Policy | None = None, *, local: bool = False
) -> CallbackGuard:
    return CallbackGuard(
        policy=policy or Policy(),
        resolver=resolver or FakeResolver({"agent.example.com": [PUBLIC]}),
        local_mode=local,
    )


def sender(
    answer: Any,
    seen: list[httpx.Request] | None = None,
    *,
    checks: CallbackGuard | None = None,
) -> HttpCallbacks:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        response: httpx.Response = answer
        return response

    return HttpCallbacks(
        guard=checks or guard(), transport=httpx.MockTransport(handle), wall=lambda: NOW
    )


def post(callbacks: HttpCallbacks, url: str = URL, source: str = "agents") -> int:
    return callbacks.post(url=url, body=BODY, secret="s3cret", idempotency_key="k", source=source)


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


# -- the target, checked again at connect time -------------------------------------------------


def test_the_connection_goes_to_the_checked_address_with_the_name_kept() -> None:
    seen: list[httpx.Request] = []
    resolver = FakeResolver({"agent.example.com": [PUBLIC]})
    assert post(sender(httpx.Response(200), seen, checks=guard(resolver))) == 200
    [request] = seen
    assert request.url.host == PUBLIC  # connect to what was checked, never resolve again
    assert request.url.path == "/decisions"
    assert request.headers["host"] == "agent.example.com"
    assert request.extensions["sni_hostname"] == "agent.example.com"  # TLS checks the name
    assert resolver.lookups == [("agent.example.com", 443)]


def test_credentials_and_port_of_the_url_are_kept() -> None:
    seen: list[httpx.Request] = []
    url = "https://hook:pa55@agent.example.com:8443/decisions?x=1"
    assert post(sender(httpx.Response(200), seen), url) == 200
    [request] = seen
    assert (request.url.host, request.url.port, request.url.raw_path) == (
        PUBLIC,
        8443,
        b"/decisions?x=1",
    )
    assert request.headers["host"] == "agent.example.com:8443"
    assert request.headers["authorization"] == httpx.BasicAuth("hook", "pa55")._auth_header


def test_dns_rebinding_to_a_private_address_is_refused_before_connecting() -> None:
    seen: list[httpx.Request] = []
    resolver = FakeResolver({"agent.example.com": [PUBLIC]})
    callbacks = sender(httpx.Response(200), seen, checks=guard(resolver))
    assert post(callbacks) == 200
    for rebound in (["127.0.0.1"], [PUBLIC, "169.254.169.254"], ["::ffff:10.0.0.1"]):
        resolver.answer("agent.example.com", rebound)
        with pytest.raises(GiveUp, match="refused"):
            post(callbacks)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/decisions",
        "https://2130706433/decisions",
        "https://0x7f.1/decisions",
        "https://[::1]/decisions",
        "https://0.0.0.0/decisions",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:127.0.0.1]/",
        "https://localhost/decisions",
        "http://agent.example.com/decisions",
    ],
)
def test_a_target_the_policy_refuses_is_never_contacted(url: str) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(GiveUp, match="refused"):
        post(sender(httpx.Response(200), seen), url)
    assert seen == []


def test_dns_failures_are_retried() -> None:
    resolver = FakeResolver({"agent.example.com": [PUBLIC]})
    resolver.failing.add("agent.example.com")
    with pytest.raises(RetryLater, match="temporary failure"):
        post(sender(httpx.Response(200), checks=guard(resolver)))
    with pytest.raises(RetryLater, match="does not resolve"):
        post(sender(httpx.Response(200)), "https://gone.example.com/decisions")


def test_an_address_that_refuses_the_connection_hands_over_to_the_next_checked_one() -> None:
    second = "2606:2800:220:1:248:1893:25c8:1946"
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == PUBLIC:
            raise httpx.ConnectError("refused")
        return httpx.Response(200)

    resolver = FakeResolver({"agent.example.com": [PUBLIC, second]})
    callbacks = HttpCallbacks(guard=guard(resolver), transport=httpx.MockTransport(handle))
    assert post(callbacks) == 200
    assert [r.url.host for r in seen] == [PUBLIC, second]
    assert {r.headers["host"] for r in seen} == {"agent.example.com"}


def test_allowed_private_targets_per_source_and_policy_wide() -> None:
    resolver = FakeResolver({"hooks.internal.example": ["10.2.3.4"], "agent.corp": ["192.168.5.5"]})
    policy = Policy(
        handoffs={"callback_allow": ["hooks.internal.example"]},  # type: ignore[arg-type]
        sources={
            "agents": Source(kind="agent", callback_allow=["192.168.0.0/16"]),
            "other": Source(kind="agent"),
        },
    )
    seen: list[httpx.Request] = []
    callbacks = sender(httpx.Response(200), seen, checks=guard(resolver, policy))
    assert post(callbacks, "http://hooks.internal.example/d", "agents") == 200
    assert post(callbacks, "http://hooks.internal.example/d", "other") == 200
    assert post(callbacks, "http://agent.corp:8080/d", "agents") == 200
    with pytest.raises(GiveUp, match=re.escape("192.168.5.5")):
        post(callbacks, "http://agent.corp:8080/d", "other")
    assert [(r.url.host, r.headers["host"]) for r in seen] == [
        ("10.2.3.4", "hooks.internal.example"),
        ("10.2.3.4", "hooks.internal.example"),
        ("192.168.5.5", "agent.corp:8080"),
    ]


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
