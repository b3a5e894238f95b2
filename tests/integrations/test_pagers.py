"""The paging adapters against the stand-ins: request shapes, answers, failures translated."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block

from bot.domain.redaction import RedactionPolicy, Redactor, SafeText
from bot.integrations.ports import GiveUp, RetryLater
from bot.integrations.slack_dm import SlackDirect
from bot.paging.escalation import Contact
from bot.paging.providers.http import retry_after
from bot.paging.providers.opsgenie import OpsgenieAlerts
from bot.paging.providers.pagerduty import PagerDutyEvents
from bot.paging.providers.ports import PageMessage
from bot.paging.providers.webhook import SignedWebhook
from tests.standins.paging import OpsgenieStandin, PagerDutyStandin, WebhookReceiver
from tests.standins.slack import SlackStandin

KEY = "R0UTINGKEY0000000000000000000001"
ALICE = Contact(
    person="alice",
    name="Alice Example",
    slack_id="U0ALICE001",
    email="alice@example.com",
    phone="+49 30 1234567",
)
SAFE = SafeText(Redactor(RedactionPolicy()))


def message(**overrides: object) -> PageMessage:
    fields: dict[str, object] = {
        "incident_id": 7,
        "public_id": "INC-7",
        "title": "Chatbot sent a wrong refund policy",
        "severity": "P1",
        "workflow": "support-chatbot",
        "category": "customer-facing",
        "state": "triggered",
        "reason": "escalation step 1 of 2 of policy customer-facing",
        "person": ALICE,
        "slack_channel": "C0SUPPORT01",
        "slack_ts": "1700000000.000100",
        "severity_reasons": ("harmful AI output delivered externally (P1)",),
        "details": {"prompt_version": "refunds-v7"},
    }
    fields.update(overrides)
    return PageMessage(**fields)  # type: ignore[arg-type]


@pytest.fixture
def pd() -> Iterator[PagerDutyStandin]:
    with PagerDutyStandin(routing_keys={KEY}) as standin:
        yield standin
    standin.assert_no_violations()


@pytest.fixture
def og() -> Iterator[OpsgenieStandin]:
    with OpsgenieStandin(api_keys={"og-key"}) as standin:
        yield standin
    standin.assert_no_violations()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- PagerDuty --------------------------------------------------------------------------------


def test_pagerduty_trigger_acknowledge_resolve_with_the_incident_id(pd: PagerDutyStandin) -> None:
    pager = PagerDutyEvents(url=pd.url, routing_key=KEY)
    assert pager.page(message(), key="k1", uncertain=False) == {
        "action": "trigger",
        "dedup_key": "INC-7",
    }
    pager.acknowledge(message(state="acknowledged"), key="k2")
    pager.resolve(message(state="resolved"), key="k3")
    trigger, ack, resolve = pd.events()
    assert trigger["routing_key"] == KEY and trigger["dedup_key"] == "INC-7"
    payload = trigger["payload"]
    assert payload["summary"] == "INC-7 [P1] Chatbot sent a wrong refund policy"
    assert (
        payload["severity"] == "critical" and payload["source"] == "ai-incident-bot/support-chatbot"
    )
    assert payload["custom_details"]["paged"] == "Alice Example"
    assert payload["custom_details"]["prompt_version"] == "refunds-v7"
    assert ack == {"routing_key": KEY, "event_action": "acknowledge", "dedup_key": "INC-7"}
    assert resolve["event_action"] == "resolve"
    assert pd.alerts["INC-7"].status == "resolved"


def test_pagerduty_severity_and_summary_limits(pd: PagerDutyStandin) -> None:
    pager = PagerDutyEvents(url=pd.url, routing_key=KEY)
    for sev, expected in (("P1", "critical"), ("P2", "error"), ("P3", "warning")):
        pager.page(message(severity=sev, title="x" * 3000), key=sev, uncertain=False)
        sent = pd.events("trigger")[-1]["payload"]
        assert sent["severity"] == expected
        assert len(sent["summary"]) == 1024 and sent["summary"].endswith("…")


def test_pagerduty_failures_are_translated(pd: PagerDutyStandin) -> None:
    bad_key = PagerDutyEvents(url=pd.url, routing_key="X" * 32)
    with pytest.raises(GiveUp, match=r"HTTP 400 .*Invalid routing key"):
        bad_key.page(message(), key="k", uncertain=False)
    pager = PagerDutyEvents(url=pd.url, routing_key=KEY)
    pd.fail_next(status=429, retry_after=7)
    with pytest.raises(RetryLater) as limited:
        pager.page(message(), key="k", uncertain=False)
    assert limited.value.retry_after == 7.0 and "429" in str(limited.value)
    pd.fail_next(status=503)
    with pytest.raises(RetryLater) as down:
        pager.page(message(), key="k", uncertain=False)
    assert down.value.retry_after is None and "503" in str(down.value)
    unreachable = PagerDutyEvents(
        url=f"http://127.0.0.1:{closed_port()}/v2/enqueue", routing_key=KEY
    )
    with pytest.raises(RetryLater, match="PagerDuty trigger: ConnectError"):
        unreachable.page(message(), key="k", uncertain=False)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("12") == 12.0
    assert retry_after(None) is None and retry_after("soon") is None
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= (retry_after(format_datetime(later, usegmt=True)) or 0) <= 31


# -- Opsgenie ---------------------------------------------------------------------------------


def test_opsgenie_creates_by_alias_adds_responders_and_mirrors(og: OpsgenieStandin) -> None:
    pager = OpsgenieAlerts(base_url=og.base_url, api_key="og-key")
    pager.page(message(title="t" * 500), key="k1", uncertain=False)
    create = og.requests()[0]
    assert create.headers["authorization"] == "GenieKey og-key"
    assert create.json["alias"] == "INC-7" and create.json["priority"] == "P1"
    assert len(create.json["message"]) == 130
    assert create.json["responders"] == [{"type": "user", "username": "alice@example.com"}]
    bob = Contact(person="bob", name="Bob", email="bob@example.com")
    pager.page(message(person=bob, follow_up=True), key="k2", uncertain=False)
    alert = og.alert("INC-7")
    assert alert is not None and alert.count == 2
    assert {"type": "user", "username": "bob@example.com"} in alert.responders
    assert og.requests()[-1].query == {"identifierType": "alias"}
    pager.acknowledge(message(state="acknowledged"), key="k3")
    assert alert.acknowledged
    pager.resolve(message(state="resolved"), key="k4")
    assert alert.status == "closed"
    assert [r.path for r in og.requests()] == [
        "/v2/alerts",
        "/v2/alerts",
        "/v2/alerts/INC-7/responders",
        "/v2/alerts/INC-7/acknowledge",
        "/v2/alerts/INC-7/close",
    ]


def test_opsgenie_without_email_pages_the_alert_without_responders(og: OpsgenieStandin) -> None:
    pager = OpsgenieAlerts(base_url=og.base_url, api_key="og-key")
    pager.page(
        message(person=Contact(person="U0X000001", slack_id="U0X000001")), key="k", uncertain=False
    )
    assert "responders" not in og.requests()[0].json


def test_opsgenie_failures_are_translated(og: OpsgenieStandin) -> None:
    wrong = OpsgenieAlerts(base_url=og.base_url, api_key="wrong")
    with pytest.raises(GiveUp, match="HTTP 401 Could not authenticate"):
        wrong.page(message(), key="k", uncertain=False)
    og.violations.clear()  # the 401 above is the point of this request
    pager = OpsgenieAlerts(base_url=og.base_url, api_key="og-key")
    og.fail_next(status=429, retry_after=4)
    with pytest.raises(RetryLater) as limited:
        pager.page(message(), key="k", uncertain=False)
    assert limited.value.retry_after == 4.0
    og.fail_next(status=500)
    with pytest.raises(RetryLater):
        pager.acknowledge(message(), key="k")


# -- the webhook ------------------------------------------------------------------------------


def test_webhook_is_signed_and_carries_incident_and_person() -> None:
    with WebhookReceiver(secret="page-secret") as hook:
        pager = SignedWebhook(url=hook.url, secret="page-secret")
        pager.page(message(), key="page:7:1.0.0:alice:webhook", uncertain=False)
        pager.acknowledge(message(state="acknowledged", person=None), key="sync:7")
        hook.assert_no_violations()
        page, ack = hook.received
        assert page["event"] == "page" and page["idempotency_key"] == "page:7:1.0.0:alice:webhook"
        assert page["incident"]["id"] == "INC-7" and page["incident"]["severity"] == "P1"
        assert page["person"] == {
            "id": "alice",
            "name": "Alice Example",
            "slack_id": "U0ALICE001",
            "email": "alice@example.com",
            "phone": "+49 30 1234567",
        }
        assert ack["event"] == "acknowledge" and ack["person"] is None
        assert (
            hook.requests()[0].headers["x-ai-incident-idempotency-key"] == page["idempotency_key"]
        )
        # a wrong secret is refused by the receiver, and that is permanent
        wrong = SignedWebhook(url=hook.url, secret="other")
        with pytest.raises(GiveUp, match="HTTP 401"):
            wrong.page(message(), key="k", uncertain=False)
        hook.fail_next(status=503)
        with pytest.raises(RetryLater):
            pager.page(message(), key="k", uncertain=False)


def test_webhook_without_secret_sends_no_signature() -> None:
    with WebhookReceiver(secret=None) as hook:
        SignedWebhook(url=hook.url, secret=None).page(message(), key="k", uncertain=False)
        assert "x-ai-incident-signature" not in hook.requests()[0].headers
        assert len(hook.received) == 1


# -- Slack DM ---------------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin(tokens={"xoxb-test"}) as standin:
        yield standin
    standin.assert_no_violations()


def test_slack_dm_opens_the_conversation_and_posts_with_an_ack_button(slack: SlackStandin) -> None:
    pager = SlackDirect(WebClient(token="xoxb-test", base_url=slack.url), SAFE)
    result = pager.page(message(title="<!channel> refunds"), key="page:7:a", uncertain=False)
    [opened] = slack.calls("conversations.open")
    assert opened.params["users"] == "U0ALICE001"
    [dm] = slack.dm_messages("U0ALICE001")
    assert result == {"channel": dm["channel"], "ts": dm["ts"]} and dm["channel"].startswith("D")
    assert "INC-7 [P1]" in dm["text"] and "<!channel>" not in dm["text"]
    for block in dm["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    button = dm["blocks"][-1]["elements"][0]
    assert button["action_id"] == "incident_ack" and button["value"] == "7"
    assert dm["metadata"]["event_payload"]["key"] == "page:7:a"


def test_slack_dm_retry_after_a_lost_answer_does_not_post_twice(slack: SlackStandin) -> None:
    pager = SlackDirect(WebClient(token="xoxb-test", base_url=slack.url), SAFE)
    slack.fail_next("chat.postMessage", status=500, effect=True)
    with pytest.raises(RetryLater):
        pager.page(message(), key="page:7:b", uncertain=False)
    pager.page(message(), key="page:7:b", uncertain=True)
    assert len(slack.dm_messages("U0ALICE001")) == 1
    assert len(slack.calls("conversations.history")) == 1


def test_slack_dm_without_a_slack_id_gives_up(slack: SlackStandin) -> None:
    pager = SlackDirect(WebClient(token="xoxb-test", base_url=slack.url), SAFE)
    with pytest.raises(GiveUp, match="no Slack id"):
        pager.page(message(person=Contact(person="dan")), key="k", uncertain=False)
    assert slack.calls() == []


# -- the registry builds each provider's adapter, or the console stand-in saying why -----------


def test_every_registered_provider_is_built_where_configured_and_printed_where_not() -> None:
    from bot.paging.channels import PROVIDERS
    from bot.paging.policy import PagingProviders
    from bot.paging.providers.console import ConsolePager
    from bot.paging.providers.registry import provider_pagers
    from bot.settings import Settings

    settings = Settings(pagerduty_events_url="http://127.0.0.1:9/pd")
    unset = provider_pagers(settings, PagingProviders(), io.StringIO())
    assert list(unset) == [p.name for p in PROVIDERS]
    assert all(isinstance(p, ConsolePager) for p in unset.values())
    console = io.StringIO()
    provider_pagers(settings, PagingProviders(), console)["pagerduty"].page(
        message(), key="k", uncertain=False
    )
    assert "[page via PagerDuty (paging.pagerduty_routing_key is not set)]" in console.getvalue()

    paging = PagingProviders(
        pagerduty_routing_key=KEY,
        opsgenie_api_key="og-key",
        webhook_url="http://127.0.0.1:9/hook",
        webhook_secret="a-long-enough-page-secret",
    )
    built = provider_pagers(settings, paging)
    assert isinstance(built["pagerduty"], PagerDutyEvents)
    assert isinstance(built["opsgenie"], OpsgenieAlerts)
    assert isinstance(built["webhook"], SignedWebhook)
    assert [built[p.name].name for p in PROVIDERS] == [p.label for p in PROVIDERS]
