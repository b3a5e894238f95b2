"""The `/ai-incident` grammar (§10): every subcommand, id, mention, quoting and error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.commands import (
    HELP_TEXT,
    USAGE,
    Ack,
    Claim,
    Command,
    CommandError,
    Declare,
    DeclareModal,
    Digest,
    Handoffs,
    Help,
    ListIncidents,
    Mitigate,
    Note,
    OnCall,
    OnCallOverride,
    Page,
    Pause,
    Postmortem,
    Resolve,
    Resume,
    RootCause,
    SetSeverity,
    Status,
    Timeline,
    Watch,
    parse_command,
)
from bot.domain.severity import Severity

WORKFLOWS = ("support-chatbot", "Invoice-Agent")

P1, P2, P3 = Severity.P1, Severity.P2, Severity.P3

PARSED: list[tuple[str, Command]] = [
    # help and unknown input
    ("", Help()),
    ("   \n\t ", Help()),
    ("help", Help()),
    ("HELP", Help()),
    ("help sev", Help(topic="sev")),
    ("help oncall override", Help(topic="oncall override")),
    ("help frobnicate", Help(unknown="frobnicate")),
    ("frobnicate INC-7", Help(unknown="frobnicate")),
    ("Bogus", Help(unknown="Bogus")),
    # declare
    ("declare", DeclareModal()),
    ("declare   ", DeclareModal()),
    ("declare Bot leaks PII", Declare(title="Bot leaks PII")),
    ("declare Bot leaks PII P1", Declare(title="Bot leaks PII", severity=P1)),
    ("declare Bot leaks PII p2", Declare(title="Bot leaks PII", severity=P2)),
    (
        "declare Bot leaks PII P1 support-chatbot",
        Declare(title="Bot leaks PII", severity=P1, workflow="support-chatbot"),
    ),
    (
        "declare Bot leaks PII support-chatbot P3",
        Declare(title="Bot leaks PII", severity=P3, workflow="support-chatbot"),
    ),
    (
        "declare Bot leaks PII support-chatbot",
        Declare(title="Bot leaks PII", workflow="support-chatbot"),
    ),
    (
        'declare "Bot leaks PII" P1 support-chatbot',
        Declare(title="Bot leaks PII", severity=P1, workflow="support-chatbot"),
    ),
    ("declare 'Refusals up'  P2", Declare(title="Refusals up", severity=P2)),
    ("declare \u201cSmart quotes\u201d P2", Declare(title="Smart quotes", severity=P2)),
    # quoting protects a title that ends in a severity or a workflow name
    ('declare "Outage P1"', Declare(title="Outage P1")),
    ('declare "support-chatbot" P2', Declare(title="support-chatbot", severity=P2)),
    # only one of each is peeled off, and only from the end
    ("declare P1 outage", Declare(title="P1 outage")),
    ("declare Outage P2 P1", Declare(title="Outage P2", severity=P1)),
    (
        "declare invoice-agent down INVOICE-AGENT",
        Declare(title="invoice-agent down", workflow="Invoice-Agent"),
    ),
    ("declare Unknown-flow broken other-flow", Declare(title="Unknown-flow broken other-flow")),
    ("declare  Bot \n leaks\tPII ", Declare(title="Bot leaks PII")),
    ("declare A &amp; B &lt;down&gt;", Declare(title="A & B <down>")),
    ("DECLARE Outage P1", Declare(title="Outage", severity=P1)),
    # list, oncall, handoffs, digest
    ("list", ListIncidents()),
    ("  LIST  ", ListIncidents()),
    ("oncall", OnCall()),
    ("handoffs", Handoffs()),
    ("digest", Digest()),
    # watch: every workflow, one (configured spelling when known), or one's chart
    ("watch", Watch()),
    ("watch support-chatbot", Watch(workflow="support-chatbot")),
    ("WATCH Invoice-agent", Watch(workflow="Invoice-Agent")),
    ("watch ticket-triage", Watch(workflow="ticket-triage")),
    ("watch support-chatbot chart", Watch(workflow="support-chatbot", chart=True)),
    ("watch support-chatbot CHART", Watch(workflow="support-chatbot", chart=True)),
    # commands whose only argument is an incident id
    ("status", Status()),
    ("status INC-7", Status(incident=7)),
    ("status inc-7", Status(incident=7)),
    ("status 7", Status(incident=7)),
    ("status #7", Status(incident=7)),
    ("ack", Ack()),
    ("ack Inc-12", Ack(incident=12)),
    ("mitigate", Mitigate()),
    ("mitigate INC-3", Mitigate(incident=3)),
    ("timeline", Timeline()),
    ("timeline INC-3", Timeline(incident=3)),
    ("postmortem", Postmortem()),
    ("postmortem INC-3 ", Postmortem(incident=3)),
    # sev
    (
        "sev INC-7 P2 customer emails are wrong",
        SetSeverity(incident=7, severity=P2, reason="customer emails are wrong"),
    ),
    ("sev p1 delivered to a customer", SetSeverity(severity=P1, reason="delivered to a customer")),
    ("SEV inc-7 p3   only internal", SetSeverity(incident=7, severity=P3, reason="only internal")),
    # note, rootcause: the text is kept as typed, with newlines
    ("note INC-7 rolled back prompt v12", Note(incident=7, text="rolled back prompt v12")),
    ("note rolled back", Note(text="rolled back")),
    ("note 7 users affected", Note(text="7 users affected")),
    ("note INC-7 line one\nline  two", Note(incident=7, text="line one\nline  two")),
    ('note it\'s "quoted"', Note(text='it\'s "quoted"')),
    ("note x &gt; y &amp;&amp; z", Note(text="x > y && z")),
    ("note INC-7 INC-8 was a duplicate", Note(incident=7, text="INC-8 was a duplicate")),
    ("rootcause INC-7 model update", RootCause(incident=7, text="model update")),
    ("rootcause model update", RootCause(text="model update")),
    # resolve
    ("resolve", Resolve()),
    ("resolve INC-7", Resolve(incident=7)),
    ("resolve INC-7 rolled back", Resolve(incident=7, summary="rolled back")),
    ("resolve rolled back", Resolve(summary="rolled back")),
    # page: Slack mentions, plain names, oncall, either order
    ("page <@U024BE7LH>", Page(user_id="U024BE7LH")),
    ("page <@U024BE7LH|alex> INC-7", Page(incident=7, user_id="U024BE7LH", user_name="alex")),
    ("page <@W0123ABC|@alex>", Page(user_id="W0123ABC", user_name="alex")),
    ("page @alex", Page(user_name="alex")),
    ("page @alex.smith INC-7", Page(incident=7, user_name="alex.smith")),
    ("page INC-7 @alex", Page(incident=7, user_name="alex")),
    ("page oncall", Page(oncall=True)),
    ("page OnCall INC-9", Page(incident=9, oncall=True)),
    # oncall override
    (
        "oncall override <@U1|alex> 2h",
        OnCallOverride(user_id="U1", user_name="alex", duration=timedelta(hours=2)),
    ),
    (
        "oncall override @alex 1h30m",
        OnCallOverride(user_name="alex", duration=timedelta(hours=1, minutes=30)),
    ),
    (
        "ONCALL Override @alex 1h 30m",
        OnCallOverride(user_name="alex", duration=timedelta(hours=1, minutes=30)),
    ),
    (
        "oncall override @alex 2025-03-01T09:00 2025-03-02T09:00",
        OnCallOverride(
            user_name="alex", start=datetime(2025, 3, 1, 9), end=datetime(2025, 3, 2, 9)
        ),
    ),
    (
        "oncall override <@U1> 2025-03-01T09:00+01:00 2025-03-01T10:00Z",
        OnCallOverride(
            user_id="U1",
            start=datetime(2025, 3, 1, 9, tzinfo=timezone(timedelta(hours=1))),
            end=datetime(2025, 3, 1, 10, tzinfo=UTC),
        ),
    ),
    # claim
    ("claim HO-12", Claim(handoff=12)),
    ("claim ho-3", Claim(handoff=3)),
    # pause, resume: known names get their configured spelling, others are kept
    ("pause support-chatbot", Pause(workflow="support-chatbot")),
    (
        "pause Support-Chatbot leaking PII &amp; more",
        Pause(workflow="support-chatbot", reason="leaking PII & more"),
    ),
    ("pause new-flow", Pause(workflow="new-flow")),
    ("resume invoice-agent", Resume(workflow="Invoice-Agent")),
    ("resume new-flow", Resume(workflow="new-flow")),
]


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[repr(t) for t, _ in PARSED])
def test_parse(text: str, expected: Command) -> None:
    assert parse_command(text, known_workflows=WORKFLOWS) == expected


def test_declare_without_known_workflows_keeps_the_word_in_the_title() -> None:
    assert parse_command("declare Bot down support-chatbot P1") == Declare(
        title="Bot down support-chatbot", severity=P1
    )


ERRORS: list[tuple[str, str, str]] = [
    # (text, usage key, exact message)
    (
        "declare P1",
        "declare",
        '`declare` needs a title: /ai-incident declare "Bot leaks PII" P1 support-chatbot',
    ),
    (
        "declare support-chatbot P1",
        "declare",
        '`declare` needs a title: /ai-incident declare "Bot leaks PII" P1 support-chatbot',
    ),
    (
        'declare "" P1',
        "declare",
        '`declare` needs a title: /ai-incident declare "Bot leaks PII" P1 support-chatbot',
    ),
    ("list all", "list", "`list` takes no arguments: /ai-incident list"),
    ("handoffs mine", "handoffs", "`handoffs` takes no arguments: /ai-incident handoffs"),
    ("digest --preview", "digest", "`digest` takes no arguments: /ai-incident digest"),
    (
        "watch chart",
        "watch",
        "`watch chart` needs a workflow: /ai-incident watch support-chatbot chart",
    ),
    (
        "watch support-chatbot graph",
        "watch",
        "`watch` takes a workflow and, after it, `chart`: /ai-incident watch support-chatbot, "
        "or /ai-incident watch support-chatbot chart",
    ),
    (
        "watch a b chart",
        "watch",
        "`watch` takes a workflow and, after it, `chart`: /ai-incident watch support-chatbot, "
        "or /ai-incident watch support-chatbot chart",
    ),
    (
        "status foo",
        "status",
        "`status` takes only an incident id: /ai-incident status INC-7, or /ai-incident status",
    ),
    (
        "ack INC-7 INC-8",
        "ack",
        "`ack` takes only an incident id: /ai-incident ack INC-7, or /ai-incident ack",
    ),
    (
        "mitigate INC-x",
        "mitigate",
        "`mitigate` takes only an incident id: /ai-incident mitigate INC-7, or /ai-incident mitigate",
    ),
    ("timeline INC-1234567890", "timeline", "INC-1234567890 is not an incident id like INC-7."),
    ("postmortem 12345678901", "postmortem", "12345678901 is not an incident id like INC-7."),
    ("sev INC-7", "sev", "`sev` needs a severity and a reason: /ai-incident sev INC-7 P2 <reason>"),
    ("sev", "sev", "`sev` needs a severity and a reason: /ai-incident sev INC-7 P2 <reason>"),
    (
        "sev INC-7 P2",
        "sev",
        "`sev` needs a reason: /ai-incident sev INC-7 P2 customer emails are wrong",
    ),
    (
        "sev P1  ",
        "sev",
        "`sev` needs a reason: /ai-incident sev INC-7 P1 customer emails are wrong",
    ),
    (
        "sev INC-7 P4 because",
        "sev",
        "`P4` is not a severity; use P1, P2 or P3: /ai-incident sev INC-7 P2 <reason>",
    ),
    (
        "sev INC-7 high because",
        "sev",
        "`high` is not a severity; use P1, P2 or P3: /ai-incident sev INC-7 P2 <reason>",
    ),
    ("sev INC-99999999999 P1 x", "sev", "INC-99999999999 is not an incident id like INC-7."),
    ("note", "note", "`note` needs text: /ai-incident note INC-7 rolled back the prompt to v12"),
    (
        "note INC-7   ",
        "note",
        "`note` needs text: /ai-incident note INC-7 rolled back the prompt to v12",
    ),
    (
        "rootcause INC-7",
        "rootcause",
        "`rootcause` needs text: /ai-incident rootcause INC-7 the model update changed refusal behaviour",
    ),
    (
        "page",
        "page",
        "`page` needs someone to page: /ai-incident page @alex INC-7, or /ai-incident page oncall",
    ),
    (
        "page INC-7",
        "page",
        "`page` needs someone to page: /ai-incident page @alex INC-7, or /ai-incident page oncall",
    ),
    (
        "page @alex @sam",
        "page",
        "`page` takes one person (or oncall) and an incident: /ai-incident page @alex INC-7, "
        "or /ai-incident page oncall",
    ),
    (
        "page alex",
        "page",
        "`alex` is not a @mention or oncall: /ai-incident page @alex INC-7, "
        "or /ai-incident page oncall",
    ),
    (
        "oncall now",
        "oncall override",
        "`oncall` takes nothing or `override`: /ai-incident oncall override @alex 2h",
    ),
    (
        "oncall override",
        "oncall override",
        "`oncall override` needs a @mention and a duration: /ai-incident oncall override @alex 2h",
    ),
    (
        "oncall override alex 2h",
        "oncall override",
        "`oncall override` needs a @mention and a duration: /ai-incident oncall override @alex 2h",
    ),
    (
        "oncall override @alex",
        "oncall override",
        "`oncall override` needs a duration: /ai-incident oncall override @alex 2h",
    ),
    (
        "oncall override @alex soon",
        "oncall override",
        "`soon` is not a duration like 2h or 1h30m (or give start and end): "
        "/ai-incident oncall override @alex 2h",
    ),
    (
        "oncall override @alex 0",
        "oncall override",
        "The override must last longer than 0: /ai-incident oncall override @alex 2h",
    ),
    (
        "oncall override @alex 2025-13-01T09:00 2025-03-02T09:00",
        "oncall override",
        "`2025-13-01T09:00` is not an ISO date and time like 2025-03-01T09:00+01:00.",
    ),
    (
        "oncall override @alex 2025-03-02T09:00 2025-03-01T09:00",
        "oncall override",
        "The override must end after it starts (2025-03-02T09:00 to 2025-03-01T09:00).",
    ),
    (
        "oncall override @alex 2025-03-01T09:00Z 2025-03-02T09:00",
        "oncall override",
        "Give both times with a UTC offset, or neither.",
    ),
    ("claim", "claim", "`claim` needs a handoff id: /ai-incident claim HO-12"),
    ("claim 12", "claim", "`claim` needs a handoff id: /ai-incident claim HO-12"),
    ("claim HO-1 HO-2", "claim", "`claim` needs a handoff id: /ai-incident claim HO-12"),
    ("pause", "pause", "`pause` needs a workflow: /ai-incident pause support-chatbot <reason>"),
    ("resume", "resume", "`resume` needs one workflow: /ai-incident resume support-chatbot"),
    (
        "resume support-chatbot now",
        "resume",
        "`resume` needs one workflow: /ai-incident resume support-chatbot",
    ),
]


@pytest.mark.parametrize(("text", "key", "message"), ERRORS, ids=[repr(t) for t, _, _ in ERRORS])
def test_errors(text: str, key: str, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(text, known_workflows=WORKFLOWS)
    assert caught.value.message == message
    assert str(caught.value) == message
    assert caught.value.usage == USAGE[key]
    assert "\n" not in caught.value.message


def test_every_subcommand_has_a_usage_line_in_the_help() -> None:
    subcommands = {
        "help", "declare", "list", "status", "ack", "sev", "note", "rootcause", "mitigate",
        "resolve", "page", "oncall", "oncall override", "handoffs", "claim", "pause", "resume",
        "digest", "watch", "changes", "timeline", "postmortem",
    }  # fmt: skip
    assert set(USAGE) == subcommands
    for key, usage in USAGE.items():
        assert usage.startswith(f"/ai-incident {key}")
        assert usage in HELP_TEXT
    assert len(HELP_TEXT.splitlines()) == len(USAGE) + 1


def test_help_topics_are_usage_keys() -> None:
    for key in USAGE:
        command = parse_command(f"help {key}")
        assert command == Help(topic=key)


def test_commands_are_frozen_and_name_their_subcommand() -> None:
    command = parse_command("sev INC-7 P2 why")
    assert isinstance(command, SetSeverity)
    with pytest.raises(AttributeError):
        command.reason = "other"  # type: ignore[misc]
    assert command.subcommand == "sev"
    assert OnCallOverride.subcommand in USAGE


_WORDS = st.sampled_from(
    [
        "help", "declare", "list", "status", "ack", "sev", "note", "rootcause", "mitigate",
        "resolve", "page", "oncall", "override", "handoffs", "claim", "pause", "resume", "digest",
        "watch", "chart", "timeline", "postmortem", "INC-7", "inc-0", "INC-", "INC-99999999999", "#3", "7", "P1",
        "p2", "P4", "HO-3", "ho-", "<@U1>", "<@U1|alex>", "<@>", "@", "@alex", "oncall", "2h",
        "0", "1h30m", "99999999999999999999w", "2025-03-01T09:00", "2025-03-01T09:00Z",
        "2025-02-30", '"', "'", "\u201c", "&amp;", "&lt;", "support-chatbot", "", " ", "\n",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(
        st.text(),
        st.lists(_WORDS | st.text(max_size=8)).map(" ".join),
    ),
    known=st.lists(st.text(max_size=12), max_size=3),
)
def test_parse_never_raises_anything_but_command_error(text: str, known: list[str]) -> None:
    try:
        command = parse_command(text, known_workflows=known)
    except CommandError as error:
        assert error.message
        assert error.usage in USAGE.values()
    else:
        assert command.subcommand in USAGE


@settings(max_examples=200, deadline=None)
@given(
    title=st.text(
        st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), exclude_characters="&"),
        min_size=1,
    ),
    severity=st.sampled_from(list(Severity)),
)
def test_declare_quoted_title_round_trips(title: str, severity: Severity) -> None:
    command = parse_command(f'declare "{title}" {severity}', known_workflows=WORKFLOWS)
    assert isinstance(command, Declare)
    assert command == Declare(title=title, severity=severity)
