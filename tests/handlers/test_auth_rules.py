"""The one authentication decision, as plain values: which credential may do what."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import Policy, Source
from bot.handoffs.domain import sign
from handlers.auth import (
    Caller,
    Scope,
    Unauthorized,
    authenticate,
    authenticate_jira,
    grafana_signature,
    verify_slack,
)

NOW = 1_790_000_000.0
GLOBAL = "operator-global-token"
BODY = json.dumps({"receiver": "x"}).encode()
POLICY = Policy(
    sources={
        "am": Source(kind="alertmanager", token="am-token"),
        "graf": Source(kind="grafana", hmac_secret="graf-secret"),
        "strict": Source(kind="grafana", hmac_secret="strict-secret", require_timestamp=True),
        "tok-agent": Source(kind="agent", token="agent-token"),
        "sig-agent": Source(kind="agent", hmac_secret="agent-secret"),
        "both-agent": Source(kind="agent", token="both-token", hmac_secret="both-secret"),
        "otel": Source(kind="telemetry", token="otel-token"),
    }
)


def auth(scope: Scope, headers: dict[str, str], *, hint: str | None = None) -> Caller:
    return authenticate(
        scope=scope,
        headers={k.lower(): v for k, v in headers.items()},
        body=BODY,
        policy=POLICY,
        global_token=GLOBAL,
        source_hint=hint,
        now=NOW,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def grafana(secret: str, stamp: str | None = str(int(NOW))) -> dict[str, str]:
    headers = {"X-Grafana-Alerting-Signature": grafana_signature(secret, BODY, stamp)}
    if stamp is not None:
        headers["X-Grafana-Alerting-Signature-Timestamp"] = stamp
    return headers


def agent(secret: str) -> dict[str, str]:
    return {"X-AI-Incident-Signature": sign(secret, BODY, int(NOW))}


ALL = list(Scope)
AGENT = [Scope.HANDOFFS, Scope.HANDOFF_READ, Scope.FLAGS, Scope.TELEMETRY]
# OTLP exporters cannot sign: runs and metrics take a bearer token
READS = [Scope.HANDOFF_READ, Scope.FLAGS, Scope.TELEMETRY]

# (credential, the scopes it opens, the source it is) — every other scope is refused
CASES = [
    ("global token", bearer(GLOBAL), ALL, "default"),
    ("alert source token", bearer("am-token"), [Scope.ALERTS], "am"),
    ("grafana signature", grafana("graf-secret"), [Scope.ALERTS], "graf"),
    ("agent token", bearer("agent-token"), AGENT, "tok-agent"),
    ("telemetry token", bearer("otel-token"), [Scope.TELEMETRY], "otel"),
    ("agent signature", agent("agent-secret"), AGENT, "sig-agent"),
    # a source that signs must sign what it posts; its token still reads
    ("signing agent's token", bearer("both-token"), READS, "both-agent"),
    ("signing agent's signature", agent("both-secret"), AGENT, "both-agent"),
    # a secret only proves what its own kind signs
    ("grafana secret as agent signature", agent("graf-secret"), [], ""),
    ("agent secret as grafana signature", grafana("agent-secret"), [], ""),
    ("unknown token", bearer("nobody"), [], ""),
    ("nothing", {}, [], ""),
]


@pytest.mark.parametrize(("name", "headers", "opens", "source"), CASES, ids=[c[0] for c in CASES])
def test_each_credential_opens_only_what_its_source_may_do(
    name: str, headers: dict[str, str], opens: list[Scope], source: str
) -> None:
    for scope in Scope:
        if scope in opens:
            caller = auth(scope, headers)
            assert caller.source == source, (name, scope)
            assert caller.operator is (source == "default")
        else:
            with pytest.raises(Unauthorized):
                auth(scope, headers)


def test_only_the_operator_and_the_owner_see_a_sources_handoffs() -> None:
    assert Caller("default", operator=True).owns("tok-agent")
    assert Caller("tok-agent").owns("tok-agent")
    assert not Caller("sig-agent").owns("tok-agent")
    assert not Caller("default").owns("tok-agent")


def test_a_pinned_source_must_be_of_a_kind_that_may_do_it() -> None:
    with pytest.raises(Unauthorized, match="'am' is an alert source and cannot post handoffs"):
        auth(Scope.HANDOFFS, bearer(GLOBAL), hint="am")
    with pytest.raises(Unauthorized, match="'tok-agent' is an agent source and cannot post alerts"):
        auth(Scope.ALERTS, bearer("agent-token"), hint="tok-agent")
    with pytest.raises(Unauthorized, match="unknown source"):
        auth(Scope.ALERTS, bearer(GLOBAL), hint="nosuch")
    assert auth(Scope.HANDOFFS, agent("agent-secret"), hint="sig-agent") == Caller("sig-agent")
    assert auth(Scope.ALERTS, grafana("graf-secret"), hint="graf") == Caller("graf")


def test_an_alert_sources_token_says_why_it_cannot_post_handoffs() -> None:
    with pytest.raises(Unauthorized, match="'am' is an alert source and cannot post handoffs"):
        auth(Scope.HANDOFFS, bearer("am-token"))
    with pytest.raises(Unauthorized, match="cannot read kill-switch flags"):
        auth(Scope.FLAGS, bearer("am-token"))


@pytest.mark.parametrize(
    "stamp", ["nan", "NaN", "inf", "-Infinity", "1e999", "", "soon", "\u0661\u0662"]
)
def test_a_grafana_timestamp_must_be_a_finite_unix_time(stamp: str) -> None:
    with pytest.raises(Unauthorized, match="not a unix time"):
        auth(Scope.ALERTS, grafana("graf-secret", stamp))


def test_a_grafana_timestamp_outside_five_minutes_is_refused() -> None:
    with pytest.raises(Unauthorized, match="away from now"):
        auth(Scope.ALERTS, grafana("graf-secret", str(int(NOW) - 301)))
    assert auth(Scope.ALERTS, grafana("graf-secret", str(int(NOW) - 299))) == Caller("graf")


def test_require_timestamp_refuses_the_untimed_grafana_signature() -> None:
    assert auth(Scope.ALERTS, grafana("graf-secret", None)) == Caller("graf")
    with pytest.raises(Unauthorized, match="require_timestamp"):
        auth(Scope.ALERTS, grafana("strict-secret", None))
    with pytest.raises(Unauthorized, match="require_timestamp"):
        auth(Scope.ALERTS, grafana("strict-secret", None), hint="strict")
    assert auth(Scope.ALERTS, grafana("strict-secret")) == Caller("strict")


header_text = st.text(max_size=80)
credential_headers = st.dictionaries(
    st.sampled_from(
        [
            "authorization",
            "x-grafana-alerting-signature",
            "x-grafana-alerting-signature-timestamp",
            "x-ai-incident-signature",
            "x-hub-signature",
        ]
    ),
    st.one_of(header_text, header_text.map(lambda t: "Bearer " + t)),
)


# unicode text is slow to set up on a busy machine; the checks themselves take microseconds
PROPERTIES = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTIES
@given(headers=credential_headers, scope=st.sampled_from(list(Scope)))
def test_any_header_text_is_a_caller_or_unauthorized_never_an_error(
    headers: dict[str, str], scope: Scope
) -> None:
    with contextlib.suppress(Unauthorized):
        authenticate(
            scope=scope, headers=headers, body=BODY, policy=POLICY, global_token=GLOBAL, now=NOW
        )
    with contextlib.suppress(Unauthorized):
        authenticate_jira(headers=headers, query=headers, body=BODY, secret="jira-secret")


@PROPERTIES
@given(stamp=header_text, signature=header_text)
def test_any_slack_header_text_is_verified_or_unauthorized(stamp: str, signature: str) -> None:
    headers = {"x-slack-request-timestamp": stamp, "x-slack-signature": signature}
    with pytest.raises(Unauthorized):
        verify_slack(signing_secret="slack-secret", headers=headers, body=BODY, now=NOW)


def test_a_well_signed_slack_request_passes() -> None:
    stamp = str(int(NOW))
    digest = hmac.new(b"slack-secret", f"v0:{stamp}:".encode() + BODY, hashlib.sha256).hexdigest()
    headers = {"x-slack-request-timestamp": stamp, "x-slack-signature": f"v0={digest}"}
    verify_slack(signing_secret="slack-secret", headers=headers, body=BODY, now=NOW)
    with pytest.raises(Unauthorized, match="away from now"):
        verify_slack(signing_secret="slack-secret", headers=headers, body=BODY, now=NOW + 301)
