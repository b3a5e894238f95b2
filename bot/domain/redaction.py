"""Redaction of secrets and PII, and escaping for Slack, Jira and Markdown (§7).

Everything that leaves the bot (Slack blocks and text, DMs, Jira, pagers, callbacks, the console,
exports) takes untrusted text through `SafeText`, and only through it: first `Redactor.redact` (so
a secret is recognised in its raw form, before escaping splits it), then clipping to the room the
destination has (so a clip never cuts a secret in half and hides it from the patterns), then the
escaper of the target markup, which only inserts escapes and never joins text, so it cannot
re-form a secret or a mention.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Self
from urllib.parse import unquote

import pydantic

__all__ = [
    "DEFAULT_POLICY",
    "JIRA_BACKSLASH",
    "WORD_JOINER",
    "RedactionPattern",
    "RedactionPolicy",
    "Redactor",
    "SafeText",
    "escape_jira_wiki",
    "escape_markdown",
    "escape_slack_mrkdwn",
]

_MARK = "[REDACTED:{}]"


def _mark(label: str) -> str:
    return _MARK.format(label)


# -- policy ------------------------------------------------------------------------------------


class RedactionPattern(pydantic.BaseModel, frozen=True, extra="forbid"):
    """A custom pattern from the policy file (`redaction.patterns`); its replacement is literal."""

    name: str = pydantic.Field(min_length=1)
    regex: str
    replacement: str = "[REDACTED:{name}]"

    @pydantic.field_validator("regex")
    @classmethod
    def _compiles(cls, value: str, info: pydantic.ValidationInfo) -> str:
        """Reject a regex that does not compile or that matches the empty string."""
        where = f"redaction pattern {info.data.get('name', '?')!r}"
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"{where}: regex {value!r} does not compile: {exc}") from exc
        if compiled.fullmatch("") is not None:
            raise ValueError(f"{where}: regex {value!r} matches the empty string")
        return value

    @pydantic.model_validator(mode="after")
    def _stable(self) -> Self:
        """Reject a regex that matches its own replacement (redaction would not be idempotent)."""
        if re.search(self.regex, self.rendered_replacement):
            raise ValueError(
                f"redaction pattern {self.name!r}: regex {self.regex!r} matches its own "
                f"replacement {self.rendered_replacement!r}"
            )
        return self

    @property
    def rendered_replacement(self) -> str:
        """Return the replacement with `{name}` substituted."""
        return self.replacement.replace("{name}", self.name)


class RedactionPolicy(pydantic.BaseModel, frozen=True, extra="forbid"):
    """What to redact (policy-file section `redaction:`)."""

    secrets: bool = True
    emails: bool = True
    phone_numbers: bool = True
    card_numbers: bool = True
    ibans: bool = True
    ssns: bool = True
    patterns: tuple[RedactionPattern, ...] = ()


DEFAULT_POLICY = RedactionPolicy()


# -- rules -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    regex: re.Pattern[str]
    replace: Callable[[re.Match[str]], str]


def _constant(label: str) -> Callable[[re.Match[str]], str]:
    text = _mark(label)
    return lambda _m: text


def _keep(group: str, label: str) -> Callable[[re.Match[str]], str]:
    """Return a replacer that keeps the named prefix group and redacts the rest."""
    text = _mark(label)
    return lambda m: m[group] + text


_NOT_MARK = r"(?!\[REDACTED)"
# Start tokens only where a run of token characters starts: `\b` would also try after every "-"
# or "." inside a long run, which is quadratic.
_TOKEN_START = r"(?<![A-Za-z0-9_\-.])"
_B64URL = r"[A-Za-z0-9_\-]"

# Specific key formats first: a generic rule must not split a recognisable key.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"
    r"(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[\s\S]*)"
)
_URL_PASSWORD = re.compile(
    rf"(?P<keep>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\[\]<>|]*:){_NOT_MARK}"
    # Greedy up to the last "@" before the host: unencoded "@" in passwords happens.
    r"[^\s/?#]+@(?=[^\s/?#@])"
)
_SLACK_WEBHOOK = re.compile(
    r"(?P<keep>\bhttps://hooks\.slack\.com/(?:services|workflows|triggers)/)"
    rf"{_NOT_MARK}[A-Za-z0-9/_\-]+"
)
_AUTH_SCHEMES = r"(?:bearer|basic|token|digest|negotiate|ntlm|apikey)"
_AUTHORIZATION = re.compile(
    r"(?P<keep>\b(?:proxy-)?authorization[\"']?[ \t]*+[:=][ \t]*+[\"']?"
    rf"(?:{_AUTH_SCHEMES}[ \t]+)?)"
    rf"(?!\[REDACTED|{_AUTH_SCHEMES}\b)[^\s\"',;]+",
    re.IGNORECASE,
)
_COOKIE = re.compile(
    rf"(?P<keep>\b(?:set-)?cookie[\"']?[ \t]*+[:=][ \t]*+[\"']?){_NOT_MARK}[^\r\n\"']+",
    re.IGNORECASE,
)
_BEARER = re.compile(
    r"(?P<keep>\b(?i:bearer)[ \t]+)"
    # A short all-letter word after "Bearer" is prose ("Bearer token expired"), not a token.
    rf"{_NOT_MARK}(?![A-Za-z]{{1,19}}(?![A-Za-z0-9\-._~+/=]))"
    r"[A-Za-z0-9\-._~+/]+=*"
)
_JWT = re.compile(rf"{_TOKEN_START}eyJ{_B64URL}{{8,}}\.eyJ{_B64URL}{{8,}}\.{_B64URL}*")
_ANTHROPIC = re.compile(rf"{_TOKEN_START}sk-ant-{_B64URL}{{20,}}")
# A project, service-account or admin key is one whatever it holds; otherwise a digit or a
# lower-to-upper change tells a random key from a hyphenated slug ("sk-learn-pipeline-config").
_OPENAI = re.compile(
    rf"{_TOKEN_START}sk-(?:(?:proj|svcacct|admin)-{_B64URL}{{20,}}"
    rf"|(?={_B64URL}*(?:[0-9]|[a-z][A-Z])){_B64URL}{{20,}})"
)
_AWS = re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA)[A-Z0-9]{16}\b")
# A secret access key is 40 characters of base64 on its own; requiring upper and lower case and a
# digit keeps git hashes (lower-case hex) and constant names out, at most three "/" keeps paths out.
_AWS_SECRET_CHARS = r"[A-Za-z0-9/+]"
_AWS_SECRET = re.compile(
    rf"(?<![A-Za-z0-9/+_\-])"
    rf"(?={_AWS_SECRET_CHARS}{{0,39}}[0-9])(?={_AWS_SECRET_CHARS}{{0,39}}[a-z])"
    rf"(?={_AWS_SECRET_CHARS}{{0,39}}[A-Z])"
    rf"{_AWS_SECRET_CHARS}{{40}}(?![A-Za-z0-9/+=_\-])"
)
_GITHUB = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")
_SLACK_TOKEN = re.compile(rf"{_TOKEN_START}(?:xox[abeprs]-|xapp-)[A-Za-z0-9\-]{{10,}}")
_GOOGLE = re.compile(rf"\bAIza{_B64URL}{{35}}(?!{_B64URL})")
_STRIPE = re.compile(r"\b(?:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}|whsec_[0-9A-Za-z]{24,})\b")
_KV_NAMES = (
    r"(?:api[_.\-]?key|apikey|access[_.\-]?key|secret[_.\-]?key|private[_.\-]?key"
    r"|signing[_.\-]?key|encryption[_.\-]?key|auth[_.\-]?key|client[_.\-]?secret|secret"
    r"|token|passw(?:or)?d|passphrase|credentials?)"
)
_KEY_VALUE = re.compile(
    # The key ends at the separator, so `input_tokens: 12` or `token_count=3` never match.
    rf"(?P<key>{_TOKEN_START}[A-Za-z0-9_.\-]*?{_KV_NAMES})"
    r"(?P<sep>[\"']?[ \t]*+(?>=>|:=|[:=])[ \t]*+)"
    r"(?:(?P<dq>\")|(?P<sq>'))?"
    r"(?!\[REDACTED|(?:null|none|nil|true|false)\b)"
    r"(?(dq)(?:[^\"\\\r\n]|\\.)+|(?(sq)[^'\r\n]+|"
    # "&" ends an unquoted value only where a query string goes on with `&name=`.
    r"(?:[^\s\"',;&]|&(?![A-Za-z0-9_.\-]+=))+))",
    re.IGNORECASE,
)


def _secret_label(key: str) -> str:
    lowered = key.lower()
    if "pass" in lowered:
        return "password"
    if "token" in lowered:
        return "token"
    if "api" in lowered and "key" in lowered:
        return "api_key"
    return "secret"


def _replace_key_value(m: re.Match[str]) -> str:
    quote = m["dq"] or m["sq"] or ""
    return f"{m['key']}{m['sep']}{quote}{_mark(_secret_label(m['key']))}"


_SECRET_RULES: tuple[_Rule, ...] = (
    _Rule("private_key", _PRIVATE_KEY, _constant("private_key")),
    _Rule("url_password", _URL_PASSWORD, lambda m: m["keep"] + _mark("password") + "@"),
    _Rule("slack_webhook", _SLACK_WEBHOOK, _keep("keep", "slack_webhook")),
    _Rule("authorization", _AUTHORIZATION, _keep("keep", "authorization")),
    _Rule("cookie", _COOKIE, _keep("keep", "cookie")),
    _Rule("bearer_token", _BEARER, _keep("keep", "bearer_token")),
    _Rule("jwt", _JWT, _constant("jwt")),
    _Rule("anthropic_api_key", _ANTHROPIC, _constant("anthropic_api_key")),
    _Rule("openai_api_key", _OPENAI, _constant("openai_api_key")),
    _Rule("aws_access_key_id", _AWS, _constant("aws_access_key_id")),
    _Rule(
        "aws_secret_access_key",
        _AWS_SECRET,
        lambda m: m[0] if m[0].count("/") > 3 else _mark("aws_secret_access_key"),
    ),
    _Rule("github_token", _GITHUB, _constant("github_token")),
    _Rule("slack_token", _SLACK_TOKEN, _constant("slack_token")),
    _Rule("google_api_key", _GOOGLE, _constant("google_api_key")),
    _Rule("stripe_key", _STRIPE, _constant("stripe_key")),
    _Rule("key_value", _KEY_VALUE, _replace_key_value),
)

_EMAIL = re.compile(
    # Not after "/": `scheme://user@host` is a URL's user, not an address.
    r"(?<![\w.+\-/%])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
    r"(?![\w\-])"
)

# Digits glued to these are versions, dates, times, IPs, ids, decimals or paths, not PII.
_NUM_BEFORE = r"(?<![\w.+\-/,])(?<![0-9]:)"
_NUM_AFTER = r"(?![\w\-/]|[.,:][0-9])"

_CARD = re.compile(rf"{_NUM_BEFORE}(?:[0-9][ \-]?){{12,18}}[0-9]{_NUM_AFTER}")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _replace_card(m: re.Match[str]) -> str:
    text = m[0]
    groups = re.split(r"[ \-]", text)
    digits = "".join(groups)
    seps = set(re.findall(r"[ \-]", text))
    plausible = (
        13 <= len(digits) <= 19
        # Issuer prefixes 2-6 (Mastercard, Amex/Diners/JCB, Visa, Mastercard, Discover/UnionPay):
        # this keeps epoch milliseconds and nanoseconds (17...) out.
        and digits[0] in "23456"
        and len(seps) <= 1
        and all(len(g) >= 3 for g in groups)
    )
    return _mark("card_number") if plausible and _luhn_ok(digits) else text


# Countries that issue IBANs (ISO 13616 registry).
_IBAN_COUNTRY_CODES = (
    "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI GL "
    "GR GT HN HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO "
    "OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE"
)
_IBAN_COUNTRIES = frozenset(_IBAN_COUNTRY_CODES.split())
# Country, check digits, then the account in optional groups of four; the replacer finds where
# the IBAN really ends, since a word after it may look like one more group.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")


def _iban_ok(compact: str) -> bool:
    if not 15 <= len(compact) <= 34 or compact[:2] not in _IBAN_COUNTRIES:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _replace_iban(m: re.Match[str]) -> str:
    text = m[0]
    ends = [i + 1 for i, ch in enumerate(text) if ch != " " and text[i + 1 : i + 2] in ("", " ")]
    for end in reversed(ends):
        if _iban_ok(text[:end].replace(" ", "")):
            return _mark("iban") + text[end:]
    return text


# Area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
_SSN = re.compile(
    rf"{_NUM_BEFORE}(?!000|666|9)[0-9]{{3}}(?P<sep>[ \-])(?!00)[0-9]{{2}}(?P=sep)"
    rf"(?!0000)[0-9]{{4}}{_NUM_AFTER}"
)

_PHONE_INTL = re.compile(
    # A digit may precede "+" ("...0100+49 30 1234567" is two numbers) but not "00".
    r"(?:(?<![A-Za-z_+.\-])\+|(?<![\w+.\-])00)(?=[1-9])"
    r"[0-9]++(?:[ .\-]?\([0-9]{1,4}\)[ .\-]?[0-9]++|[ .\-][0-9]++)*"
    r"(?![\w])"
)
_PHONE_NANP = re.compile(
    rf"{_NUM_BEFORE}(?:1[ .\-]?)?(?:\([2-9][0-9]{{2}}\)[ .\-]?|[2-9][0-9]{{2}}[ .\-])"
    rf"[2-9][0-9]{{2}}[ .\-][0-9]{{4}}{_NUM_AFTER}"
)
_PHONE_NATIONAL = re.compile(
    rf"{_NUM_BEFORE}(?:0[1-9][0-9]*+|\(0[1-9][0-9]*+\))"
    r"(?:(?:[ /\-]|(?<=\)))[0-9]++)+"
    rf"{_NUM_AFTER}"
)
_DIGIT_GROUP = re.compile(r"[0-9]+")


def _phone_end(text: str, low: int, *, one_sep: bool) -> int:
    """Return where the phone number at the start of `text` ends, or 0 if it is not one."""
    digits = end = 0
    seps: set[str] = set()
    for i, group in enumerate(_DIGIT_GROUP.finditer(text)):
        if i and len(group[0]) > 10:
            return 0  # no subscriber number is that long: an id such as a numeric UUID
        if group.start() > 0 and text[group.start() - 1] in " ./-":
            seps.add(text[group.start() - 1])
            if one_sep and len(seps) > 1:
                break
        digits += len(group[0])
        end = group.end()
    # No upper bound: more digits than one number holds are several numbers, or one with digits
    # after it, and redacting all of them beats leaking the second half.
    return end if digits >= low else 0


def _phone_replacer(low: int, *, one_sep: bool) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        text = m[0]
        international = text.startswith(("+", "00"))
        body = text[2:] if text.startswith("00") else text
        end = _phone_end(body, low, one_sep=one_sep)
        if end == 0:
            return text
        end += len(text) - len(body)
        # Without separators only "+" marks a phone number, and only a long one: "+1000000" is not.
        solid = international and text[:end].lstrip("+").isdigit()
        if solid and (text.startswith("00") or end - 1 < 10):
            return text
        return _mark("phone") + text[end:]

    return replace


_PII_EMAIL = _Rule("email", _EMAIL, _constant("email"))
_PII_IBAN = _Rule("iban", _IBAN, _replace_iban)
_PII_CARD = _Rule("card_number", _CARD, _replace_card)
_PII_SSN = _Rule("ssn", _SSN, _constant("ssn"))
_PII_PHONES = (
    # 8 digits at least: "+1 234 567" is more likely a signed count than a phone number.
    _Rule("phone", _PHONE_INTL, _phone_replacer(8, one_sep=False)),
    _Rule("phone", _PHONE_NANP, _phone_replacer(10, one_sep=False)),
    # Mixed separators ("01-02-2024 10 30") are dates and times, not phone numbers.
    _Rule("phone", _PHONE_NATIONAL, _phone_replacer(9, one_sep=True)),
)


def _custom_rule(pattern: RedactionPattern) -> _Rule:
    text = pattern.rendered_replacement

    def replace(m: re.Match[str]) -> str:
        return text if m[0] else m[0]

    return _Rule(pattern.name, re.compile(pattern.regex), replace)


# -- hidden text -------------------------------------------------------------------------------

# Embeddings, overrides and isolates: they reorder what a reader sees ("Trojan source").
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Characters that show nothing: soft hyphen, grapheme joiner, Arabic letter mark, Hangul fillers,
# Khmer and Mongolian invisibles, zero-width space/non-joiner/joiner, LRM/RLM, word joiner and
# invisible operators, deprecated format characters, variation selectors, zero-width no-break
# space, tags. Any of them can split a secret so that no pattern sees it whole.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u2060-\u2064\u206a-\u206f\ufe00-\ufe0f\ufeff\U000e0000-\U000e007f]+"
)
# After a character outside ASCII these carry meaning (emoji sequences, Persian and Indic
# joining, direction marks in right-to-left text), and no secret is written there.
_MEANINGFUL_AFTER_NON_ASCII = re.compile(
    "[\u200c\u200d\u200e\u200f\u061c\ufe00-\ufe0f\U000e0000-\U000e007f]"
)


def _unhide(m: re.Match[str]) -> str:
    before = m.string[m.start() - 1] if m.start() else ""
    if before and not before.isascii():
        return "".join(_MEANINGFUL_AFTER_NON_ASCII.findall(m[0]))
    # a word joiner after "@" goes too ("a@\u2060b.example" hides an address): escaping comes
    # after redaction and puts back the ones that keep mentions inert
    return ""


def _visible(text: str) -> str:
    """Drop bidi controls, and invisible characters wherever they could hide a secret."""
    return _INVISIBLE.sub(_unhide, _BIDI_CONTROLS.sub("", text))


def _decoded(text: str, times: int) -> str:
    """Percent-decode `text` until nothing changes (at most `times` rounds)."""
    for _ in range(times):
        once = unquote(text)
        if once == text:
            break
        text = once
    return text


# -- redactor ----------------------------------------------------------------------------------

_SENSITIVE_KEY = re.compile(
    r"(?:^|_)(?:password|passwd|passphrase|secret|token|bearer|api_?key|access_?key|secret_?key"
    r"|private_?key|signing_?key|authorization|credentials?|cookie)$"
    r"|^auth$"
)


def _sensitive_key(key: str) -> bool:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()
    return _SENSITIVE_KEY.search(re.sub(r"[\s.\-]+", "_", snake)) is not None


class Redactor:
    """Redact secrets, PII and custom patterns from text and JSON-like values."""

    # Replacing a match changes its neighbours' context ("7+49 30 1234567" becomes
    # "]+49 30 1234567"), which can expose text a lookaround held back, so passes repeat until
    # nothing changes. Built-in rules always shrink the unredacted text, so this ends; the cap
    # only bounds custom patterns that rewrite each other's replacements.
    _MAX_PASSES = 32
    # "%2525…" is decoded this many times at most
    _MAX_DECODES = 8

    def __init__(self, policy: RedactionPolicy = DEFAULT_POLICY) -> None:
        """Compile the rules the policy enables."""
        self.policy = policy
        rules: list[_Rule] = []
        if policy.secrets:
            rules.extend(_SECRET_RULES)
        rules.extend(_custom_rule(p) for p in policy.patterns)
        if policy.emails:
            rules.append(_PII_EMAIL)
        if policy.ibans:
            rules.append(_PII_IBAN)
        if policy.card_numbers:
            rules.append(_PII_CARD)
        if policy.ssns:
            rules.append(_PII_SSN)
        if policy.phone_numbers:
            rules.extend(_PII_PHONES)
        self._rules = tuple(rules)

    def redact(self, text: str) -> str:
        """Return `text` with every secret, PII match and custom pattern replaced.

        Bidi controls go first (they make text read differently from what it holds), then
        invisible characters (they split a secret so no pattern sees it whole). Percent-encoding
        hides a secret too: when the decoded text holds anything to redact, the redacted decoded
        text is returned (the rest of it shows decoded as well).
        """
        text = _visible(text)
        if "%" in text:
            decoded = _visible(_decoded(text, self._MAX_DECODES))
            if decoded != text:
                redacted = self._passes(decoded)
                if redacted != decoded:
                    return redacted
        return self._passes(text)

    def _passes(self, text: str) -> str:
        for _ in range(self._MAX_PASSES):
            result = text
            for rule in self._rules:
                result = rule.regex.sub(rule.replace, result)
            if result == text:
                break
            text = result
        return text

    def redact_obj(self, value: object) -> object:
        """Return a copy of a JSON-like value with strings redacted and secret-named keys blanked."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            # keys are text too ("labels": {"<a key>": ...}), and are redacted like values
            return {
                self.redact(k) if isinstance(k, str) else k: (
                    self._redact_item(k, v) if isinstance(k, str) else self.redact_obj(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.redact_obj(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.redact_obj(v) for v in value)
        if isinstance(value, set | frozenset):
            return type(value)(self.redact_obj(v) for v in value)
        return value

    def _redact_item(self, key: str, value: object) -> object:
        # None, "" and booleans carry no secret; keeping them keeps "token: null" informative.
        if (
            _sensitive_key(key)
            and value is not None
            and value != ""
            and not isinstance(value, bool)
        ):
            return _mark(_secret_label(key))
        return self.redact_obj(value)


# -- escaping ----------------------------------------------------------------------------------

# U+2060 WORD JOINER: invisible, unlike U+200B it adds no line-break opportunity, and unlike
# U+200D it has no emoji-joining meaning. After "@" it stops Slack (parse=full, link_names)
# from turning "@channel", "@here", "@everyone" or "@name" into a mention.
WORD_JOINER = "\u2060"
_AT = "[@\uff20\ufe6b]"  # ASCII, fullwidth and small commercial at
_SLACK_MENTION = re.compile(
    rf"{_AT}(?=(?i:channel|here|everyone))|(?<!\w){_AT}(?=\w)",
)


def escape_slack_mrkdwn(text: str) -> str:
    """Escape `&`, `<`, `>` and break bare mentions so the text is inert in Slack mrkdwn."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SLACK_MENTION.sub(lambda m: m[0] + WORD_JOINER, text)


# Jira cannot escape a backslash ("\\" is a line break, "\x" escapes x): U+29F5 REVERSE SOLIDUS
# OPERATOR looks the same and means nothing to the renderer.
JIRA_BACKSLASH = "\u29f5"
_JIRA_ALWAYS = frozenset("[]{}|!^~")
# Jira only reads these as effects when not inside a word, so "INC-42" or "snake_case" stay bare.
_JIRA_EFFECTS = frozenset("*_-+")
_JIRA_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")
_JIRA_BLOCK_START = re.compile(r"^([ \t]*(?:h[1-6]|bq))\.(?=\s|$)", re.MULTILINE)


def escape_jira_wiki(text: str) -> str:
    """Backslash-escape Jira wiki markup so the text renders literally."""
    text = text.replace("\\", JIRA_BACKSLASH)
    out: list[str] = []
    line_start = True
    last = len(text) - 1
    for i, ch in enumerate(text):
        prev = text[i - 1] if i > 0 else ""
        nxt = text[i + 1] if i < last else ""
        if (
            ch in _JIRA_ALWAYS
            or (ch in _JIRA_EFFECTS and not (prev.isalnum() and nxt.isalnum()))
            or (ch == "?" and "?" in (prev, nxt))
            or (ch == "#" and line_start)
            or (ch == "&" and _JIRA_ENTITY.match(text, i))
        ):
            out.append("\\")
        out.append(ch)
        if ch == "\n":
            line_start = True
        elif ch not in " \t":
            line_start = False
    return _JIRA_BLOCK_START.sub(r"\1\\.", "".join(out))


# Markdown (CommonMark and GitHub's): characters that start emphasis, code, links, images, HTML,
# tables, headings, strikethrough; "@" gets a word joiner so "@team" is no mention.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~!#])")
_AT_WORD = re.compile(rf"{_AT}(?=\w)")


def escape_markdown(text: str) -> str:
    """Backslash-escape Markdown markup and break mentions so the text renders literally."""
    return _AT_WORD.sub(lambda m: m[0] + WORD_JOINER, _MARKDOWN_SPECIAL.sub(r"\\\1", text))


# Slack shows plain_text objects as written, but nothing of a sender's should even look like
# markup there: brackets become look-alikes (single angle quotation marks).
_PLAIN_BRACKETS = str.maketrans({"<": "\u2039", ">": "\u203a"})


def _clip(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


class SafeText:
    """The one way untrusted text leaves the bot: redacted, then clipped, then escaped.

    Each method takes the raw text and the room the destination has (`limit`, counted before
    escaping) and returns text for one kind of destination; None is "".
    """

    def __init__(self, redactor: Redactor) -> None:
        """Use `redactor` for every text."""
        self.redactor = redactor

    def plain(self, text: str | None, *, limit: int | None = None) -> str:
        """Return redacted text for destinations without markup (JSON, pagers, console)."""
        return "" if text is None else _clip(self.redactor.redact(text), limit)

    def slack(self, text: str | None, *, limit: int | None = None) -> str:
        """Return text safe for Slack mrkdwn: section text, fields and a message's `text`."""
        return escape_slack_mrkdwn(self.plain(text, limit=limit))

    def slack_plain(self, text: str | None, *, limit: int | None = None) -> str:
        """Return text for a Slack plain_text object (a header): redacted and inert-looking."""
        plain = self.plain(text, limit=limit).translate(_PLAIN_BRACKETS)
        return _SLACK_MENTION.sub(lambda m: m[0] + WORD_JOINER, plain)

    def jira(self, text: str | None, *, limit: int | None = None) -> str:
        """Return text safe for Jira wiki markup."""
        return escape_jira_wiki(self.plain(text, limit=limit))

    def markdown(self, text: str | None, *, limit: int | None = None) -> str:
        """Return text safe for Markdown (the export)."""
        return escape_markdown(self.plain(text, limit=limit))

    def data(self, value: object) -> object:
        """Return a JSON-like value with strings redacted and secret-named keys blanked."""
        return self.redactor.redact_obj(value)
