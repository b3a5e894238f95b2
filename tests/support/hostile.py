"""Hostile text for property tests, and the checks every outgoing payload must pass (§7).

`hostile_texts()` mixes secrets (some hidden by invisible characters or percent-encoding), live
Slack mentions and links, Jira and Markdown markup, bidi controls and long padding that puts a
secret where a renderer clips. `Leaks` remembers the secrets drawn and checks a payload for them,
for live mentions and links of the sender's, and for anything a secret pattern still finds.

Every mention and link the input carries names `EVIL` or `evil.example`, and every mention the
bot makes itself names ids it knows, so a live one from the input is told apart.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from random import Random
from typing import Any
from urllib.parse import unquote

from hypothesis import strategies as st

__all__ = ["MARKUP", "Leaks", "Secret", "hostile_texts", "secrets", "walk_strings"]

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
DIGITS = "0123456789"

# What senders put in text to reach people or trick them.
MARKUP = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "@here",
    "@channel",
    "@everyone",
    "\uff20here",
    "<@U0EVIL001>",
    "<#C0EVIL001>",
    "<!subteam^S0EVIL01>",
    "<https://evil.example|click me>",
    "<mailto:evil@evil.example|mail me>",
    "<https://evil.example>",
    "[~admin]",
    "[~accountid:EVIL0001]",
    "[click here|https://evil.example]",
    "[https://evil.example]",
    "!https://evil.example/x.png!",
    "{html}<b>EVIL</b>{html}",
    "{panel:title=EVIL}x{panel}",
    "{code}EVIL{code}",
    "[link](https://evil.example)",
    "![img](https://evil.example/x.png)",
    "<img src=https://evil.example/x.png>",
    "*bold* _italic_ ~strike~ `code` ```block```",
    "h1. EVIL heading",
    "# EVIL heading",
    "> quoted",
    "| cell | cell |",
    "&amp; &lt;!channel&gt;",
    "\u202eevil\u202c",
    "\u2066EVIL\u2069",
    "\\",
    "\n",
]

_ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
_BIDI = ["\u202a", "\u202b", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068"]


@dataclass(frozen=True)
class Secret:
    """A secret as placed in the input, and the part of it nobody may ever see."""

    shown: str
    value: str


def _random(alphabet: str, size: int) -> st.SearchStrategy[str]:
    # from a drawn seed, so that even the smallest example is a random-looking key and not
    # "000…", whose runs turn up in ids of the bot's own
    return st.integers(0, 2**32).map(lambda seed: "".join(Random(seed).choices(alphabet, k=size)))


def _aws_secret() -> st.SearchStrategy[Secret]:
    # 40 characters with upper and lower case and a digit, as AWS issues them
    return st.builds(lambda r: r + "Qz7", _random(ALNUM, 37)).map(lambda v: Secret(v, v))


def secrets() -> st.SearchStrategy[Secret]:
    """One secret or personal datum of the kinds the redactor knows, as a sender writes it."""
    return st.one_of(
        _random(ALNUM, 40).map(lambda r: Secret("sk-" + "proj-" + r, r)),
        _random(ALNUM, 48).map(lambda r: Secret("sk-" + "ant-api03-" + r, r)),
        st.tuples(_random(DIGITS, 12), _random(DIGITS, 13), _random(ALNUM, 24)).map(
            lambda t: Secret("xox" + "b-" + "-".join(t), t[2])
        ),
        _random(UPPER_DIGITS, 16).map(lambda r: Secret("AKIA" + r, r)),
        _aws_secret(),
        _random(ALNUM, 36).map(lambda r: Secret("ghp_" + r, r)),
        _random(ALNUM, 30).map(lambda r: Secret("Bearer " + r + "9", r)),
        _random(ALNUM, 24).map(lambda r: Secret(f"https://svc:{r}@db.example.com/x", r)),
        _random(ALNUM, 24).map(lambda r: Secret(f"api_key={r}", r)),
        _random(ALNUM, 20).map(lambda r: Secret(f"password: {r}", r)),
        _random("abcdefghijklmnopqrstuvwxyz0123456789", 16).map(
            lambda r: Secret(f"{r}@example.com", r)
        ),
    )


@st.composite
def _disguised(draw: st.DrawFn, secret: Secret) -> str:
    """The secret as written, split by invisible characters, percent-encoded, or with bidi."""
    how = draw(st.sampled_from(["plain", "plain", "zero-width", "encoded", "bidi"]))
    text = secret.shown
    if how == "plain" or len(text) < 4:
        return text
    cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1), min_size=1, max_size=3)))
    parts = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    if how == "zero-width":
        return "".join(
            part + (draw(st.sampled_from(_ZERO_WIDTH)) if i < len(parts) - 1 else "")
            for i, part in enumerate(parts)
        )
    if how == "bidi":
        return draw(st.sampled_from(_BIDI)).join(parts)
    # percent-encode the characters at the cuts, as a URL or a log line may carry them
    return "".join(
        f"%{ord(ch):02X}" if i in cuts and ch.isascii() else ch for i, ch in enumerate(text)
    )


@dataclass
class Leaks:
    """The secrets drawn for one example, and the checks of what the bot sent."""

    drawn: list[Secret] = field(default_factory=list)
    _index: dict[str, Secret] = field(default_factory=dict, repr=False)
    _seen: int = field(default=-1, repr=False)

    # -- checks -----------------------------------------------------------------------------

    def check_plain(self, where: str, text: str) -> None:
        """A payload without markup (JSON, pagers, console): no secret, no bidi control."""
        for control in [*_BIDI, "\u202c", "\u2069"]:
            assert control not in text, f"{where}: a bidi control went out"
        self._check_secrets(where, _readable(text))

    def check_slack(self, where: str, text: str) -> None:
        """Slack mrkdwn (blocks and a message's text): no live mention or link of the input's."""
        self.check_plain(where, text)
        for live in ("<!channel>", "<!here>", "<!everyone>"):
            assert live not in text, f"{where}: {live} is live"
        for token in re.findall(r"<[^<>]*>", text):
            assert "evil" not in token.lower(), f"{where}: {token} is live"
        bare = re.search(r"[@\uff20\ufe6b](?=(?i:channel|here|everyone)\b)", text)
        assert bare is None, f"{where}: a bare mention is live: {text[bare.start() :][:30]!r}"

    def check_slack_plain(self, where: str, text: str) -> None:
        """A Slack plain_text object (a header): nothing even looks like markup."""
        self.check_plain(where, text)
        assert "<" not in text and ">" not in text, f"{where}: brackets in plain text"

    def check_jira(self, where: str, text: str) -> None:
        """Jira wiki markup: no mention, link, image or macro of the input's."""
        self.check_plain(where, text)
        assert not re.search(r"(?<!\\)\[~", text), f"{where}: a Jira mention is live"
        for link in re.findall(r"(?<!\\)\[((?:[^\]\\]|\\.)*)\]", text):
            # a link's own text is shown as it is; where it leads is what must be the bot's
            target = re.split(r"(?<!\\)\|", link)[-1]
            assert "evil" not in target.lower(), f"{where}: a link [{link}] is live"
        assert not re.search(r"(?<!\\)!https?://", text), f"{where}: an image is live"
        macro = re.search(r"(?<!\\)\{(html|panel|code|noformat)", text)
        assert macro is None, f"{where}: a {{{macro and macro[1]}}} macro is live"

    def check_markdown(self, where: str, text: str) -> None:
        """Markdown: no link, image, HTML or mention of the input's."""
        self.check_plain(where, text)
        assert not re.search(r"(?<!\\)<", text), f"{where}: unescaped HTML or autolink"
        link = re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", text)
        assert link is None, f"{where}: a link is live: {text[link.start() :][:60]!r}"
        bare = re.search(r"[@\uff20\ufe6b](?=\w)", text)
        assert bare is None, f"{where}: a mention is live"

    def check_blocks(self, where: str, value: Any) -> None:
        """Block Kit (or a modal view): each text object by its type."""
        for path, obj in _text_objects(value):
            kind = obj.get("type")
            if kind == "mrkdwn":
                self.check_slack(f"{where} {path}", str(obj.get("text", "")))
            elif kind == "plain_text":
                self.check_plain(f"{where} {path}", str(obj.get("text", "")))
        for path, text in walk_strings(value):
            self.check_plain(f"{where} {path}", text)

    def _check_secrets(self, where: str, readable: str) -> None:
        windows = self._windows()
        for at in range(len(readable) - WINDOW + 1):
            if readable[at : at + WINDOW] in windows:
                secret = windows[readable[at : at + WINDOW]]
                raise AssertionError(
                    f"{where}: part of a secret went out: {secret.shown!r} as "
                    f"{readable[max(at - 30, 0) : at + 40]!r}"
                )
        found = _KEY_FORMATS.search(readable)
        assert found is None, f"{where}: a key went out: {readable[found.start() :][:60]!r}"

    def _windows(self) -> dict[str, Secret]:
        """Every run of `WINDOW` characters of every secret drawn so far."""
        if self._seen != len(self.drawn):
            self._index = {
                secret.value[i : i + WINDOW]: secret
                for secret in self.drawn
                for i in range(max(len(secret.value) - WINDOW + 1, 1))
            }
            self._seen = len(self.drawn)
        return self._index


# no run this long of a random secret is in anything the bot writes by chance
WINDOW = 12

# Keys that name themselves, written independently of the redactor's own patterns.
_KEY_FORMATS = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-[A-Za-z0-9_\-]{20,}|xox[abeprs]-[A-Za-z0-9\-]{10,}"
    r"|AKIA[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36}|eyJ[A-Za-z0-9_\-]{8,}\.eyJ"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY)"
)


def _readable(text: str) -> str:
    """What a reader sees: entities decoded, escapes and invisible characters gone."""
    text = unquote(html.unescape(text)).replace("\\", "").replace("\u29f5", "")
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON-like value (keys too), with where it sits."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, bytes):
        yield path, value.decode("utf-8", "replace")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", str(k)
            yield from walk_strings(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{path}[{i}]")


def _text_objects(value: Any, path: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text") and "text" in value:
            yield path, value
        for k, v in value.items():
            yield from _text_objects(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _text_objects(v, f"{path}[{i}]")


@st.composite
def _hostile(draw: st.DrawFn, leaks: Leaks, padding: int, limit: int) -> str:
    pieces: list[str] = []
    size = 0
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["secret", "secret", "markup", "markup", "filler"]))
        if kind == "secret":
            secret = draw(secrets())
            piece = draw(_disguised(secret))
        else:
            secret = None
            piece = draw(st.sampled_from(MARKUP) if kind == "markup" else st.text(max_size=12))
        if size + len(piece) + 1 > limit:
            break  # a piece is never cut: a cut secret is not a secret any more
        if secret is not None:
            leaks.drawn.append(secret)
        pieces.append(piece)
        size += len(piece) + 1
    # a long run first moves the secrets across every place a renderer clips
    room = [
        p for p in (0, 0, 1, 40, 60, 72, 140, 290, 490, 1490, 1990, padding) if p + size <= limit
    ]
    pad = draw(st.sampled_from(room))
    return "x" * pad + (" " if pad else "") + " ".join(pieces)


def hostile_texts(
    leaks: Leaks, *, padding: int = 2600, limit: int = 10_000
) -> st.SearchStrategy[str]:
    """Strings to put where a sender's text goes: secrets, markup and filler, sometimes after a
    long run, at most `limit` characters; the secrets drawn are noted in `leaks`."""
    return _hostile(leaks, padding, limit)
