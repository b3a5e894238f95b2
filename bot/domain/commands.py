"""The `/ai-incident` grammar of §10: a pure parser from slash-command text to typed commands.

`parse_command` never does I/O and never raises anything but `CommandError`; unknown or empty input
becomes `Help`. An omitted incident id is `incident=None`: the caller resolves it to the channel's
only open incident. Free text (titles, notes, reasons, summaries) has Slack's `&amp;`/`&lt;`/`&gt;`
escapes decoded; rendering must escape it again before it goes back out (§7).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from bot.domain.incidents import InvalidIncidentId, parse_incident_id
from bot.domain.severity import Severity, parse_duration

__all__ = [
    "HELP_TEXT",
    "USAGE",
    "Ack",
    "Changes",
    "Claim",
    "Command",
    "CommandError",
    "Declare",
    "DeclareModal",
    "Digest",
    "Handoffs",
    "Help",
    "ListIncidents",
    "Mitigate",
    "Note",
    "OnCall",
    "OnCallOverride",
    "Page",
    "Pause",
    "Postmortem",
    "Resolve",
    "Resume",
    "RootCause",
    "SetSeverity",
    "Status",
    "Timeline",
    "Watch",
    "parse_command",
]

_P = "/ai-incident"

USAGE: dict[str, str] = {
    "help": f"{_P} help [subcommand]",
    "declare": f"{_P} declare <title> [P1|P2|P3] [workflow]",
    "list": f"{_P} list",
    "status": f"{_P} status [INC-7]",
    "ack": f"{_P} ack [INC-7]",
    "sev": f"{_P} sev [INC-7] <P1|P2|P3> <reason>",
    "note": f"{_P} note [INC-7] <text>",
    "rootcause": f"{_P} rootcause [INC-7] <text>",
    "mitigate": f"{_P} mitigate [INC-7]",
    "resolve": f"{_P} resolve [INC-7] [summary]",
    "page": f"{_P} page <@user|oncall> [INC-7]",
    "oncall": f"{_P} oncall",
    "oncall override": f"{_P} oncall override @user <duration | start end> [schedule]",
    "handoffs": f"{_P} handoffs",
    "claim": f"{_P} claim <HO-12>",
    "pause": f"{_P} pause <workflow> [reason]",
    "resume": f"{_P} resume <workflow>",
    "digest": f"{_P} digest",
    "watch": f"{_P} watch [workflow] [chart]",
    "changes": f"{_P} changes [workflow]",
    "timeline": f"{_P} timeline [INC-7]",
    "postmortem": f"{_P} postmortem [INC-7]",
}

_SUMMARY: Mapping[str, str] = {
    "help": "this help, or one subcommand's",
    "declare": "open an incident (no arguments: a form)",
    "list": "open incidents",
    "status": "an incident's state, severity and reasons",
    "ack": "acknowledge and become commander",
    "sev": "change severity, with a reason",
    "note": "add a note to the journal",
    "rootcause": "record the root cause",
    "mitigate": "mark mitigated",
    "resolve": "resolve, with an optional summary",
    "page": "page someone, or whoever is on call",
    "oncall": "who is on call",
    "oncall override": "put someone on call for 2h, or from start to end (ISO); all schedules or one",
    "handoffs": "the handoff review queue",
    "claim": "claim a handoff for review",
    "pause": "pause a workflow (kill switch)",
    "resume": "resume a paused workflow",
    "digest": "preview the weekly digest",
    "watch": "workflows' runs, errors, latency, spend; `chart`: last 7 days",
    "changes": "models and prompt versions workflows changed to, last 30 days",
    "timeline": "an incident's timeline",
    "postmortem": "a postmortem draft",
}

_WIDTH = max(len(u) for u in USAGE.values())
HELP_TEXT = "\n".join(
    [
        "Usage (INC-7 may be left out where the channel has one open incident):",
        *(f"{USAGE[k].ljust(_WIDTH)}  {_SUMMARY[k]}" for k in USAGE),
    ]
)


class CommandError(ValueError):
    """Input a Slack user must correct: a one-sentence `message` and the subcommand's `usage`."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


# -- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Help:
    """Answer with help; `unknown` is the unrecognised word (None for empty input)."""

    subcommand: ClassVar[str] = "help"
    unknown: str | None = None
    topic: str | None = None  # a known subcommand after `help`, e.g. `help sev`


@dataclass(frozen=True, slots=True, kw_only=True)
class Declare:
    subcommand: ClassVar[str] = "declare"
    title: str
    severity: Severity | None = None
    workflow: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclareModal:
    subcommand: ClassVar[str] = "declare"


@dataclass(frozen=True, slots=True, kw_only=True)
class ListIncidents:
    subcommand: ClassVar[str] = "list"


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    subcommand: ClassVar[str] = "status"
    incident: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    subcommand: ClassVar[str] = "ack"
    incident: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetSeverity:
    subcommand: ClassVar[str] = "sev"
    incident: int | None = None
    severity: Severity
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    subcommand: ClassVar[str] = "note"
    incident: int | None = None
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RootCause:
    subcommand: ClassVar[str] = "rootcause"
    incident: int | None = None
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Mitigate:
    subcommand: ClassVar[str] = "mitigate"
    incident: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolve:
    subcommand: ClassVar[str] = "resolve"
    incident: int | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """Page a user (by Slack id, or by plain `@name`) or, with `oncall=True`, whoever is on call."""

    subcommand: ClassVar[str] = "page"
    incident: int | None = None
    user_id: str | None = None
    user_name: str | None = None
    oncall: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class OnCall:
    subcommand: ClassVar[str] = "oncall"


@dataclass(frozen=True, slots=True, kw_only=True)
class OnCallOverride:
    """Either `duration` (from now) or `start`/`end` is set; naive datetimes mean team time.

    `schedule` limits the override to one schedule (None: every schedule).
    """

    subcommand: ClassVar[str] = "oncall override"
    user_id: str | None = None
    user_name: str | None = None
    duration: timedelta | None = None
    start: datetime | None = None
    end: datetime | None = None
    schedule: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Handoffs:
    subcommand: ClassVar[str] = "handoffs"


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    subcommand: ClassVar[str] = "claim"
    handoff: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    subcommand: ClassVar[str] = "pause"
    workflow: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    subcommand: ClassVar[str] = "resume"
    workflow: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Digest:
    subcommand: ClassVar[str] = "digest"


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """Summarise watched workflows (all, or `workflow`); `chart` posts its last 7 days."""

    subcommand: ClassVar[str] = "watch"
    workflow: str | None = None
    chart: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Changes:
    """List the changes of model or prompt version of every workflow, or of `workflow`."""

    subcommand: ClassVar[str] = "changes"
    workflow: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    subcommand: ClassVar[str] = "timeline"
    incident: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Postmortem:
    subcommand: ClassVar[str] = "postmortem"
    incident: int | None = None


Command = (
    Help
    | Declare
    | DeclareModal
    | ListIncidents
    | Status
    | Ack
    | SetSeverity
    | Note
    | RootCause
    | Mitigate
    | Resolve
    | Page
    | OnCall
    | OnCallOverride
    | Handoffs
    | Claim
    | Pause
    | Resume
    | Digest
    | Watch
    | Changes
    | Timeline
    | Postmortem
)


# -- tokens ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\S+")
_INC_TOKEN = re.compile(r"INC-[0-9]+", re.IGNORECASE)
_BARE_INC = re.compile(r"#?[0-9]+")
_HANDOFF = re.compile(r"HO-([0-9]{1,9})", re.IGNORECASE)
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|([^<>|]*))?>", re.IGNORECASE)
_PLAIN_USER = re.compile(r"@([^\s@<>|]+)")
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u201e": "\u201c"}


class _Args:
    """The words after the subcommand, with the raw text from any word on (for free text)."""

    def __init__(self, text: str, start: int) -> None:
        self._text = text
        self._spans = [(m.start(), m.end()) for m in _TOKEN.finditer(text, start)]
        self._pos = 0

    @property
    def left(self) -> list[str]:
        return [self._text[a:b] for a, b in self._spans[self._pos :]]

    def peek(self) -> str | None:
        if self._pos >= len(self._spans):
            return None
        a, b = self._spans[self._pos]
        return self._text[a:b]

    def take(self) -> str:
        word = self.peek()
        assert word is not None
        self._pos += 1
        return word

    def rest(self) -> str:
        """Return the raw text from the next word to the end, and consume it all."""
        if self._pos >= len(self._spans):
            return ""
        raw = self._text[self._spans[self._pos][0] : self._spans[-1][1]]
        self._pos = len(self._spans)
        return raw


_Parser = Callable[[_Args, Collection[str]], Command]


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _fail(name: str, message: str) -> CommandError:
    return CommandError(message, USAGE[name])


def _incident_number(name: str, word: str) -> int:
    try:
        return parse_incident_id(word.removeprefix("#"))
    except InvalidIncidentId:
        raise _fail(name, f"{word} is not an incident id like INC-7.") from None


def _optional_incident(name: str, args: _Args) -> int | None:
    """Take a leading `INC-7` if there is one."""
    word = args.peek()
    if word is None or not _INC_TOKEN.fullmatch(word):
        return None
    return _incident_number(name, args.take())


def _only_incident(name: str, args: _Args) -> int | None:
    """The whole argument is an optional incident id (`INC-7`, `7` or `#7`)."""
    words = args.left
    if not words:
        return None
    word = words[0]
    if len(words) > 1 or not (_INC_TOKEN.fullmatch(word) or _BARE_INC.fullmatch(word)):
        raise _fail(name, f"`{name}` takes only an incident id: {_P} {name} INC-7, or {_P} {name}")
    return _incident_number(name, word)


def _bare(name: str, make: Callable[[], Command]) -> _Parser:
    def parse(args: _Args, known: Collection[str]) -> Command:
        if args.left:
            raise _fail(name, f"`{name}` takes no arguments: {_P} {name}")
        return make()

    return parse


def _user(word: str) -> tuple[str | None, str | None] | None:
    """Return (user_id, user_name) from `<@U1>`, `<@U1|name>` or `@name`; None otherwise."""
    mention = _MENTION.fullmatch(word)
    if mention is not None:
        label = (mention.group(2) or "").strip().removeprefix("@") or None
        return mention.group(1).upper(), label
    plain = _PLAIN_USER.fullmatch(word)
    if plain is not None:
        return None, plain.group(1)
    return None


def _severity(word: str) -> Severity | None:
    if word.upper() in ("P1", "P2", "P3"):
        return Severity(word.upper())
    return None


def _workflow(word: str, known: Collection[str]) -> str | None:
    folded = word.casefold()
    return next((w for w in known if w.casefold() == folded), None)


def _unquote(text: str) -> str:
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        return text[1:-1].strip()
    return text


# -- subcommands -------------------------------------------------------------------------------


def _declare(args: _Args, known: Collection[str]) -> Declare | DeclareModal:
    if not args.left:
        return DeclareModal()
    words = args.left
    severity: Severity | None = None
    workflow: str | None = None
    while words:
        last = words[-1]
        if severity is None and (found := _severity(last)) is not None:
            severity = found
        elif workflow is None and (wf := _workflow(last, known)) is not None:
            workflow = wf
        else:
            break
        words.pop()
    title = _unquote(_unescape(" ".join(words)))
    if not title:
        raise _fail(
            "declare",
            f'`declare` needs a title: {_P} declare "Bot leaks PII" P1 support-chatbot',
        )
    return Declare(title=title, severity=severity, workflow=workflow)


def _sev(args: _Args) -> SetSeverity:
    incident = _optional_incident("sev", args)
    word = args.peek()
    if word is None:
        raise _fail("sev", f"`sev` needs a severity and a reason: {_P} sev INC-7 P2 <reason>")
    severity = _severity(word)
    if severity is None:
        raise _fail(
            "sev", f"`{word}` is not a severity; use P1, P2 or P3: {_P} sev INC-7 P2 <reason>"
        )
    args.take()
    reason = _unescape(args.rest())
    if not reason:
        raise _fail(
            "sev", f"`sev` needs a reason: {_P} sev INC-7 {severity} customer emails are wrong"
        )
    return SetSeverity(incident=incident, severity=severity, reason=reason)


def _text(name: str, example: str, args: _Args) -> tuple[int | None, str]:
    incident = _optional_incident(name, args)
    text = _unescape(args.rest())
    if not text:
        raise _fail(name, f"`{name}` needs text: {_P} {name} INC-7 {example}")
    return incident, text


def _note(args: _Args) -> Note:
    incident, text = _text("note", "rolled back the prompt to v12", args)
    return Note(incident=incident, text=text)


def _rootcause(args: _Args) -> RootCause:
    incident, text = _text("rootcause", "the model update changed refusal behaviour", args)
    return RootCause(incident=incident, text=text)


def _resolve(args: _Args) -> Resolve:
    incident = _optional_incident("resolve", args)
    summary = _unescape(args.rest()) or None
    return Resolve(incident=incident, summary=summary)


def _page(args: _Args) -> Page:
    words = args.left
    example = f"{_P} page @alex INC-7, or {_P} page oncall"
    incident: int | None = None
    targets: list[str] = []
    for word in words:
        if incident is None and _INC_TOKEN.fullmatch(word):
            incident = _incident_number("page", word)
        else:
            targets.append(word)
    if not targets:
        raise _fail("page", f"`page` needs someone to page: {example}")
    if len(targets) > 1:
        raise _fail("page", f"`page` takes one person (or oncall) and an incident: {example}")
    target = targets[0]
    if target.lower() in ("oncall", "on-call", "@oncall"):
        return Page(incident=incident, oncall=True)
    user = _user(target)
    if user is None:
        raise _fail("page", f"`{target}` is not a @mention or oncall: {example}")
    return Page(incident=incident, user_id=user[0], user_name=user[1])


def _oncall(args: _Args) -> OnCall | OnCallOverride:
    if not args.left:
        return OnCall()
    word = args.take()
    if word.lower() != "override":
        raise _fail(
            "oncall override",
            f"`oncall` takes nothing or `override`: {_P} oncall override @alex 2h",
        )
    return _override(args)


def _override(args: _Args) -> OnCallOverride:
    name = "oncall override"
    example = f"{_P} oncall override @alex 2h"
    word = args.peek()
    user = None if word is None else _user(word)
    if user is None:
        raise _fail(name, f"`oncall override` needs a @mention and a duration: {example}")
    args.take()
    user_id, user_name = user
    words = args.left
    if not words:
        raise _fail(name, f"`oncall override` needs a duration: {example}")
    schedule = None
    if len(words) > 1 and _is_schedule_name(words[-1]):
        schedule = words.pop()
    if len(words) == 2 and all(_looks_like_date(w) for w in words):
        start, end = (_datetime(name, w) for w in words)
        if (start.tzinfo is None) != (end.tzinfo is None):
            raise _fail(name, "Give both times with a UTC offset, or neither.")
        if end <= start:
            raise _fail(name, f"The override must end after it starts ({words[0]} to {words[1]}).")
        return OnCallOverride(
            user_id=user_id, user_name=user_name, start=start, end=end, schedule=schedule
        )
    raw = " ".join(words)
    try:
        duration = parse_duration(raw)
    except (ValueError, OverflowError):
        raise _fail(
            name,
            f"`{raw}` is not a duration like 2h or 1h30m (or give start and end): {example}",
        ) from None
    if duration <= timedelta(0):
        raise _fail(name, f"The override must last longer than 0: {example}")
    return OnCallOverride(
        user_id=user_id, user_name=user_name, duration=duration, schedule=schedule
    )


_DATE_START = re.compile(r"[0-9]{4}-")
_SCHEDULE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def _is_schedule_name(word: str) -> bool:
    """A trailing word that is a name, not a date or a duration, names a schedule."""
    if not _SCHEDULE_NAME.fullmatch(word) or _looks_like_date(word):
        return False
    try:
        parse_duration(word)
    except (ValueError, OverflowError):
        return True
    return False


def _looks_like_date(word: str) -> bool:
    return _DATE_START.match(word) is not None


def _datetime(name: str, word: str) -> datetime:
    try:
        return datetime.fromisoformat(word)
    except ValueError:
        raise _fail(
            name, f"`{word}` is not an ISO date and time like 2025-03-01T09:00+01:00."
        ) from None


def _claim(args: _Args) -> Claim:
    words = args.left
    match = _HANDOFF.fullmatch(words[0]) if len(words) == 1 else None
    if match is None:
        raise _fail("claim", f"`claim` needs a handoff id: {_P} claim HO-12")
    return Claim(handoff=int(match.group(1)))


def _pause(args: _Args, known: Collection[str]) -> Pause:
    word = args.peek()
    if word is None:
        raise _fail("pause", f"`pause` needs a workflow: {_P} pause support-chatbot <reason>")
    args.take()
    reason = _unescape(args.rest()) or None
    return Pause(workflow=_workflow(word, known) or word, reason=reason)


def _resume(args: _Args, known: Collection[str]) -> Resume:
    words = args.left
    if len(words) != 1:
        raise _fail("resume", f"`resume` needs one workflow: {_P} resume support-chatbot")
    return Resume(workflow=_workflow(words[0], known) or words[0])


def _watch(args: _Args, known: Collection[str]) -> Watch:
    words = args.left
    example = f"{_P} watch support-chatbot, or {_P} watch support-chatbot chart"
    if not words:
        return Watch()
    if words[0].lower() == "chart":
        raise _fail("watch", f"`watch chart` needs a workflow: {_P} watch support-chatbot chart")
    if len(words) > 2 or (len(words) == 2 and words[1].lower() != "chart"):
        raise _fail("watch", f"`watch` takes a workflow and, after it, `chart`: {example}")
    return Watch(workflow=_workflow(words[0], known) or words[0], chart=len(words) == 2)


def _changes(args: _Args, known: Collection[str]) -> Changes:
    words = args.left
    if not words:
        return Changes()
    if len(words) > 1:
        raise _fail("changes", f"`changes` takes one workflow: {_P} changes support-chatbot")
    return Changes(workflow=_workflow(words[0], known) or words[0])


def _help(args: _Args) -> Help:
    word = args.peek()
    if word is None:
        return Help()
    topic = word.lower()
    if topic == "oncall" and len(args.left) > 1 and args.left[1].lower() == "override":
        topic = "oncall override"
    return Help(topic=topic) if topic in USAGE else Help(unknown=word)


_PARSERS: Mapping[str, _Parser] = {
    "help": lambda a, k: _help(a),
    "declare": _declare,
    "list": _bare("list", ListIncidents),
    "status": lambda a, k: Status(incident=_only_incident("status", a)),
    "ack": lambda a, k: Ack(incident=_only_incident("ack", a)),
    "sev": lambda a, k: _sev(a),
    "note": lambda a, k: _note(a),
    "rootcause": lambda a, k: _rootcause(a),
    "mitigate": lambda a, k: Mitigate(incident=_only_incident("mitigate", a)),
    "resolve": lambda a, k: _resolve(a),
    "page": lambda a, k: _page(a),
    "oncall": lambda a, k: _oncall(a),
    "handoffs": _bare("handoffs", Handoffs),
    "claim": lambda a, k: _claim(a),
    "pause": _pause,
    "resume": _resume,
    "digest": _bare("digest", Digest),
    "watch": _watch,
    "changes": _changes,
    "timeline": lambda a, k: Timeline(incident=_only_incident("timeline", a)),
    "postmortem": lambda a, k: Postmortem(incident=_only_incident("postmortem", a)),
}


def parse_command(text: str, *, known_workflows: Collection[str] = ()) -> Command:
    """Parse the text after `/ai-incident`; raise CommandError on input the user must fix.

    `known_workflows` lets `declare` peel a trailing workflow name off the title, and gives
    workflow names their configured spelling.
    """
    first = _TOKEN.search(text)
    if first is None:
        return Help()
    word = first.group()
    parser = _PARSERS.get(word.lower())
    if parser is None:
        return Help(unknown=word)
    return parser(_Args(text, first.end()), known_workflows)
