"""The ticket a reviewer reads: every field of the description, as filed on the Jira stand-in.

An Alertmanager incident and a generic one go through the whole bot (webhook, severity, storage,
delivery); the description Jira received is then read line by line. Secrets and emails never reach
Jira; untrusted text cannot form Jira markup, mentions or links.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Bot, payload
from tests.standins.jira import JiraStandin
from tests.standins.slack import SlackStandin
from tests.support.jira_bot import jira_bot, sections, settle

SECRET_KEY = "sk-proj-4fG7hK2mN9pQ1rS5tU8vW3xY6zA0bC"


def filed(bot: Bot, jira: JiraStandin, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = bot.post(path, body)
    assert r.status_code == 202, r.text
    settle(bot)
    [issue] = jira.issues()
    return issue


def test_an_alertmanager_incident_ticket_field_by_field(
    db_url: str, slack: SlackStandin, cloud: JiraStandin
) -> None:
    with jira_bot(db_url, slack, cloud) as bot:
        issue = filed(bot, cloud, "/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
    description = issue["fields"]["description"]
    parts = sections(description)
    head = parts["INC-1: email-summarizer error rate above 20%"]
    assert head[:6] == [
        "*Severity:* P1",
        "*State:* triggered",
        "*Workflow:* email-summarizer (internal)",
        "*Source:* default",  # the global webhook token's sender
        "*Commander:* none yet",
        "*Detected:* 2026-11-20 07:24:41 UTC",  # the earliest startsAt, its +01:00 applied
    ]
    assert head[6].startswith(
        "*Slack thread:* [INC-1 in Slack|https://ai-incident-test.slack.com/archives/C0SUMMARY01/p"
    )
    assert len(head) == 7
    assert parts["Why P1"] == [
        "* severity label 'critical' maps to P1 (no rule applies) (rule label)"
    ]
    assert parts["AI context"] == ["None carried by the alerts."]
    alerts = parts["Alerts (2, 2 firing)"]
    starts = [i for i, line in enumerate(alerts) if line.startswith("h4. ")]
    assert starts[0] == 0 and len(starts) == 2
    first = alerts[: starts[1]]
    assert first == [
        "h4. email-summarizer error rate above 20% (firing)",
        "*Fingerprint:* f404ecabc8dd5cd7",
        "*Started:* 2026-11-20 08:24:38 UTC   *Ended:* —",
        "23% of model calls failed over 10m (baseline 1.4%)",
        "||Label||Value||",
        "|alertname|SummarizerErrorRate|",
        "|instance|worker-1|",
        "|severity|critical|",
        "|workflow|email-summarizer|",
        "||Annotation||Value||",
        "|description|23% of model calls failed over 10m (baseline 1.4%)|",
        "|runbook_url|https://wiki.example.com/runbooks/summarizer|",
        "|summary|email-summarizer error rate above 20%|",
        "*Links:*",
        "* [source|http://prometheus.local:9090/graph?g0.expr=...]",
        "* [runbook|https://wiki.example.com/runbooks/summarizer]",
    ]
    second = alerts[len(first) :]
    assert second[:4] == [
        "h4. email-summarizer error rate above 20% (firing)",
        "*Fingerprint:* f8f08d4e32c61a9d",
        "*Started:* 2026-11-20 07:24:41 UTC   *Ended:* —",
        "21% of model calls failed over 10m",
    ]
    assert "|instance|worker-2|" in second
    assert "*Links:*" not in second  # an empty generatorURL is no link


def generic_alert() -> dict[str, Any]:
    return {
        "dedup_key": "chatbot-refusals-7",
        "status": "firing",
        "title": "Support bot refuses [~admin] {code}x{code} @here",
        "description": (
            f"Customer jane.doe@customer.example saw it; the key {SECRET_KEY} was in the log. "
            "Try [click|javascript:alert(1)] too."
        ),
        "workflow": "support-chatbot",
        "source": "llm-observability",
        "signal": {"kind": "refusals", "value": 0.62, "baseline": 0.05, "window": "30m"},
        "customer_facing": True,
        "links": [
            {"title": "trace | view", "url": "https://langfuse.example.com/trace/abc?x=[1]"},
            {"title": "creds", "url": "https://user:hunter2@grafana.example.com/d/1"},
            "javascript:alert(1)",
        ],
        "request_id": "req-8812",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "agent": {"id": "support-bot", "version": "2.4.1"},
        "prompt_version": "refund-policy-v12",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1812,
        "gen_ai.usage.output_tokens": 96,
        "cost_usd": 0.0231,
        "latency_ms": 2140,
        "confidence": 0.41,
    }


def test_a_generic_incident_ticket_with_ai_context_redacted_and_escaped(
    db_url: str, slack: SlackStandin, cloud: JiraStandin
) -> None:
    with jira_bot(db_url, slack, cloud) as bot:
        issue = filed(bot, cloud, "/webhooks/alerts", generic_alert())
    f = issue["fields"]
    assert issue["key"] == "SUP-1"  # the support-chatbot workflow's project
    assert f["summary"] == "[P2] INC-1: Support bot refuses [~admin] {code}x{code} @here"
    assert f["labels"][:4] == ["ai-incident", "support-chatbot", "customer-facing", "P2"]
    assert f["priority"]["name"] == "High"
    description = f["description"]
    # redaction: the key, the email and the URL password never reach Jira
    for leaked in (SECRET_KEY, "jane.doe@customer.example", "hunter2"):
        assert leaked not in description and leaked not in f["summary"]
    assert "[REDACTED:" in description
    parts = sections(description)
    [title] = [name for name in parts if name.startswith("INC-1: ")]
    # escaping: no mention, no macro, no link can form from the alert's text
    assert title == "INC-1: Support bot refuses \\[\\~admin\\] \\{code\\}x\\{code\\} @here"
    assert "[~admin]" not in description and "{code}" not in description
    assert "[click|javascript" not in description
    head = parts[title]
    assert head[:5] == [
        "*Severity:* P2",
        "*State:* triggered",
        "*Workflow:* support-chatbot (customer-facing)",
        "*Source:* default",
        "*Commander:* none yet",
    ]
    assert parts["Why P2"] == [
        "* refusals 0.62 >= 0.50 (P2 threshold): consistently degraded output (rule refusals)"
    ]
    assert parts["AI context"] == [
        "||Field||Value||",
        "|request|req-8812|",
        "|trace|4bf92f3577b34da6a3ce929d0e0e4736|",
        "|agent|support-bot|",
        "|agent version|2.4.1|",
        "|prompt|refund-policy-v12|",
        "|provider|openai|",
        "|model requested|gpt-4o|",
        "|model used|gpt-4o-2024-08-06|",
        "|input tokens|1812|",
        "|output tokens|96|",
        "|cost (USD)|0.0231|",
        "|latency (ms)|2140.0|",
        "|confidence|0.41|",
    ]
    [alert_section] = [v for k, v in parts.items() if k.startswith("Alerts (")]
    assert "*Signal:* refusals, value 0.62, baseline 0.05, window 1800 s" in alert_section
    assert "|source|llm-observability|" in alert_section
    assert (
        "Customer \\[REDACTED:email\\] saw it; the key \\[REDACTED:openai_api_key\\] was in the "
        "log. Try \\[click\\|javascript:alert(1)\\] too."
    ) in alert_section
    links = alert_section[alert_section.index("*Links:*") + 1 :]
    assert links[0] == "* [trace / view|https://langfuse.example.com/trace/abc?x=%5B1%5D]"
    assert links[1] == "* [creds|https://user:%5BREDACTED:password%5D@grafana.example.com/d/1]"
    assert links[2] == "* link (javascript:alert(1))"
