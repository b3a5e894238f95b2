"""Redaction of secrets and PII, Slack and Jira escaping, SafeText (§7)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.domain.redaction import (
    JIRA_BACKSLASH,
    WORD_JOINER,
    RedactionPattern,
    RedactionPolicy,
    Redactor,
    SafeText,
    escape_jira_wiki,
    escape_slack_mrkdwn,
)

R = Redactor()
SAFE = SafeText(R)

# Fake credentials are assembled from pieces so that secret scanners do not flag this file.
OPENAI = "sk-" + "proj-" + "Xq3vN8kLm2Pw7RtY9aBc4DeF6gHj1KsT0uVw5XyZ_AbCd-EfGh"
OPENAI_LEGACY = "sk-" + "T3BlbkFJ" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0"
ANTHROPIC = "sk-" + "ant-api03-" + "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE-abc_DEFghiJKL-mn0AA"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF012345"
SLACK_BOT = "xox" + "b-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_USER = (
    "xox" + "p-" + "123456789012-123456789012-123456789012-0123456789abcdef0123456789abcdef"
)
GOOGLE = "AIza" + "SyA-1234567890abcdefghijklmnopqrstu"
STRIPE = "sk_" + "live_" + "51H8xYzAbCdEfGhIjKlMnOpQrStUv"
STRIPE_RESTRICTED = "rk_" + "live_" + "51H8xYzAbCdEfGhIjKlMnOp"
JWT = (
    "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJ" + "zdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFkYSJ9"
    ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
SLACK_WEBHOOK_PATH = "T00000000/B00000000/" + "XXXXXXXXXXXXXXXXXXXXXXXX"
PRIVATE_KEY = (
    "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nq0Yb\n-----END RSA PRIVATE KEY-----"
)


def mark(label: str) -> str:
    return f"[REDACTED:{label}]"


# -- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "label"),
    [
        (OPENAI, "openai_api_key"),
        (OPENAI_LEGACY, "openai_api_key"),
        (ANTHROPIC, "anthropic_api_key"),
        (AWS, "aws_access_key_id"),
        (GITHUB, "github_token"),
        (GITHUB_PAT, "github_token"),
        (SLACK_BOT, "slack_token"),
        (SLACK_USER, "slack_token"),
        (GOOGLE, "google_api_key"),
        (STRIPE, "stripe_key"),
        (STRIPE_RESTRICTED, "stripe_key"),
        (JWT, "jwt"),
        (PRIVATE_KEY, "private_key"),
    ],
)
def test_known_key_formats_are_redacted(secret: str, label: str) -> None:
    out = R.redact(f"agent failed with key {secret}, retrying")
    assert out == f"agent failed with key {mark(label)}, retrying"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api_key=abc123def456", "api_key=[REDACTED:api_key]"),
        ("OPENAI_API_KEY=hunter2hunter2", "OPENAI_API_KEY=[REDACTED:api_key]"),
        ("x-api-key: deadbeef1234", "x-api-key: [REDACTED:api_key]"),
        ("token: xyz789", "token: [REDACTED:token]"),
        ("access_token=ya29.a0AfH6SM", "access_token=[REDACTED:token]"),
        ("password=hunter2 user=bob", "password=[REDACTED:password] user=bob"),
        ("db_password: 's3cr et'", "db_password: '[REDACTED:password]'"),
        (
            '{"password": "hun\\"ter2", "user": "bob"}',
            '{"password": "[REDACTED:password]", "user": "bob"}',
        ),
        ("client_secret => abc", "client_secret => [REDACTED:secret]"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "AWS_SECRET_ACCESS_KEY=[REDACTED:secret]"),
        ("GET /v1?api_key=abc&page=2", "GET /v1?api_key=[REDACTED:api_key]&page=2"),
        ("password=p&ss word", "password=[REDACTED:password] word"),
    ],
)
def test_key_value_secrets_keep_the_key(text: str, expected: str) -> None:
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "gen_ai.usage.input_tokens: 1234, gen_ai.usage.output_tokens=99",
        "max_tokens=4096 token_count=3 tokens: 12",
        "token_type: Bearer",
        "password: null, token: None",
        "Bearer token expired",
        "we use sk-learn and sk-learn-pipeline-configuration",
        "the secret sauce",
        "dedup_key=abc idempotency_key: k-1",
    ],
)
def test_secret_lookalikes_are_kept(text: str) -> None:
    assert R.redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bearer abc.def-123_XYZ~+/=", "Bearer [REDACTED:bearer_token]"),
        ("bearer abcdefghijklmnopqrstuvwxyz", "bearer [REDACTED:bearer_token]"),
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer [REDACTED:authorization]"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic [REDACTED:authorization]"),
        (
            "curl -H 'Authorization: token abc123' x",
            "curl -H 'Authorization: token [REDACTED:authorization]' x",
        ),
        ('{"Authorization": "abc123"}', '{"Authorization": "[REDACTED:authorization]"}'),
        ("Cookie: session=abc; csrf=def\nnext", "Cookie: [REDACTED:cookie]\nnext"),
    ],
)
def test_bearer_tokens_and_auth_headers(text: str, expected: str) -> None:
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://alice:s3cr3t@example.com/x", "http://alice:[REDACTED:password]@example.com/x"),
        ("https://bot:p%40ss@api.example.com", "https://bot:[REDACTED:password]@api.example.com"),
        (
            "postgres://app:p@ss:w0rd@db.internal:5432/prod",
            "postgres://app:[REDACTED:password]@db.internal:5432/prod",
        ),
        ("redis://:hunter2@cache:6379/0", "redis://:[REDACTED:password]@cache:6379/0"),
        ("amqp+ssl://u:p@mq", "amqp+ssl://u:[REDACTED:password]@mq"),
    ],
)
def test_url_passwords_keep_user_and_host(url: str, expected: str) -> None:
    assert R.redact(f"connect {url} failed") == f"connect {expected} failed"


@pytest.mark.parametrize(
    "text", ["http://example.com:8080/path", "https://user@example.com/", "ftp://host/a:b@c"]
)
def test_urls_without_password_are_kept(text: str) -> None:
    assert R.redact(text) == text


def test_slack_webhook_url_is_redacted() -> None:
    out = R.redact(f"posting to https://hooks.slack.com/services/{SLACK_WEBHOOK_PATH} now")
    assert out == "posting to https://hooks.slack.com/services/[REDACTED:slack_webhook] now"


def test_unterminated_private_key_is_redacted_to_the_end() -> None:
    assert R.redact("log: -----BEGIN PRIVATE KEY-----\nMIIE") == "log: [REDACTED:private_key]"


# -- PII ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["alice@example.com", "first.last+ops@sub.example.co.uk", "ops_team@corp-1.example"]
)
def test_emails_are_redacted(email: str) -> None:
    assert R.redact(f"contact {email}.") == f"contact {mark('email')}."


@pytest.mark.parametrize(
    "phone",
    [
        "+49 30 1234567",
        "+49-30-1234567",
        "+1 (415) 555-0100",
        "+1.415.555.0100",
        "+44 (0)20 7946 0958",
        "+33 1 23 45 67 89",
        "+14155550100",
        "0049 30 1234567",
        "(415) 555-0100",
        "415-555-0100",
        "415.555.0100",
        "1-800-555-0199",
        "030 1234567",
        "030/1234567",
        "(030) 1234567",
        "020 7946 0958",
        "07700 900123",
        "01 23 45 67 89",
    ],
)
def test_phone_numbers_are_redacted(phone: str) -> None:
    assert R.redact(f"call {phone} now") == f"call {mark('phone')} now"
    assert R.redact(f"tel:{phone}") == f"tel:{mark('phone')}"


def test_adjacent_phone_numbers_are_all_redacted() -> None:
    assert R.redact("030 1234567 030 7654321") == mark("phone")
    assert R.redact("+49 30 1234567+49 30 7654321") == mark("phone") * 2


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "4242 4242 4242 4242",
        "5555 5555 5555 4444",
        "5105-1051-0510-5100",
        "2223 0031 2200 3222",
        "3782 822463 10005",
        "3714-496353-98431",
        "371449635398431",
        "6011 1111 1111 1117",
    ],
)
def test_card_numbers_are_redacted(card: str) -> None:
    assert R.redact(f"card {card}, exp 12/29") == f"card {mark('card_number')}, exp 12/29"


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111112",  # fails Luhn
        "4111 1111 1111 1112",
        "1234567812345670",  # passes Luhn, but no issuer starts with 1: an id
        "1700000000123",  # epoch milliseconds
        "4111 11111111 1111 1",  # passes Luhn, not a card's grouping
    ],
)
def test_long_ids_that_are_not_cards_are_kept(number: str) -> None:
    assert R.redact(f"id {number}") == f"id {number}"


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-15T10:30:00Z",
        "2024-01-15T10:30:00.123456+01:00",
        "2024-01-15 10:30:00",
        "15/01/2024 10:30",
        "01-02-2024 10 30",
        "15.01.2024",
        "v1.2.3",
        "10.15.7",
        "1.2.3-rc.1+build.5",
        "10.0.0.1",
        "192.168.100.200:8080",
        "INC-42",
        "PROJ-1234",
        "0.23",
        "23%",
        "$1,234.56",
        "€12 345,00",
        "1h30m",
        "250ms",
        "00:05:00",
        "123e4567-e89b-12d3-a456-426614174000",
        "01234567-8901-2345-6789-012345678901",
        "1700000000.123456",
        "1700000000",
        "12345678",
        "+05:30",
        "+1234567 rows",
        "error rate 0.07 over 2h, baseline 0.02, stddev 0.01",
        "HTTP 503 after 30 s",
    ],
)
def test_numbers_that_are_not_pii_are_kept(text: str) -> None:
    assert R.redact(f"at {text} x") == f"at {text} x"


# -- policy ------------------------------------------------------------------------------------


def test_custom_patterns_use_their_replacement() -> None:
    policy = RedactionPolicy(
        patterns=(
            RedactionPattern(name="customer_id", regex=r"\bCUST-\d{6}\b"),
            RedactionPattern(name="ssn", regex=r"\b\d{3}-\d{2}-\d{4}\b", replacement="<{name}>"),
            RedactionPattern(name="literal", regex=r"zz(\d)", replacement=r"\1-{name}"),
        )
    )
    out = Redactor(policy).redact("CUST-123456 has 078-05-1120 and zz7")
    assert out == r"[REDACTED:customer_id] has <ssn> and \1-literal"


def test_policy_loads_from_a_policy_file_mapping() -> None:
    policy = RedactionPolicy.model_validate(
        {"emails": False, "patterns": [{"name": "ticket", "regex": "TCK-[0-9]+"}]}
    )
    assert policy.patterns == (RedactionPattern(name="ticket", regex="TCK-[0-9]+"),)
    assert Redactor(policy).redact("TCK-9 a@b.io") == "[REDACTED:ticket] a@b.io"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": "bad", "regex": "(unclosed"}, "does not compile"),
        ({"name": "empty", "regex": "x*"}, "matches the empty string"),
        ({"name": "loop", "regex": "RED", "replacement": "[REDACTED]"}, "its own replacement"),
        ({"name": "", "regex": "x"}, "at least 1 character"),
        ({"name": "x", "regex": "x", "flags": "i"}, "Extra inputs"),
    ],
)
def test_invalid_patterns_are_rejected(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        RedactionPattern.model_validate(fields)


def test_unknown_policy_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        RedactionPolicy.model_validate({"email": False})


SAMPLE = f"key {OPENAI} mail a@example.com call +49 30 1234567 card 4111 1111 1111 1111"


@pytest.mark.parametrize(
    ("toggle", "kept"),
    [
        ("secrets", OPENAI),
        ("emails", "a@example.com"),
        ("phone_numbers", "+49 30 1234567"),
        ("card_numbers", "4111 1111 1111 1111"),
    ],
)
def test_each_kind_can_be_switched_off(toggle: str, kept: str) -> None:
    out = Redactor(RedactionPolicy.model_validate({toggle: False})).redact(SAMPLE)
    assert kept in out
    assert out.count("[REDACTED:") == 3


def test_everything_off_changes_nothing() -> None:
    off = RedactionPolicy(secrets=False, emails=False, phone_numbers=False, card_numbers=False)
    assert Redactor(off).redact(SAMPLE) == SAMPLE


# -- redact_obj --------------------------------------------------------------------------------


def test_redact_obj_walks_json_and_blanks_secret_keys() -> None:
    payload: dict[str, Any] = {
        "title": "leak a@example.com",
        "labels": ["x", f"token={GITHUB}", ("t", 1)],
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k", "Accept": "json"},
        "apiKey": 12345,
        "client_secret": {"nested": "x"},
        "password": None,
        "refresh_token": "",
        "has_token": True,
        "gen_ai.usage.input_tokens": 12,
        "token_type": "bearer",
        "max_tokens": 4096,
        "confidence": 0.93,
        7: "a@example.com",
    }
    before = repr(payload)
    assert R.redact_obj(payload) == {
        "title": "leak [REDACTED:email]",
        "labels": ["x", "token=[REDACTED:github_token]", ("t", 1)],
        "headers": {
            "Authorization": "[REDACTED:secret]",
            "X-Api-Key": "[REDACTED:api_key]",
            "Accept": "json",
        },
        "apiKey": "[REDACTED:api_key]",
        "client_secret": "[REDACTED:secret]",
        "password": None,
        "refresh_token": "",
        "has_token": True,
        "gen_ai.usage.input_tokens": 12,
        "token_type": "bearer",
        "max_tokens": 4096,
        "confidence": 0.93,
        7: "[REDACTED:email]",
    }
    assert repr(payload) == before


def test_redact_obj_redacts_keys_too() -> None:
    assert R.redact_obj({f"leak {OPENAI}": "x", "a@example.com": 1}) == {
        f"leak {mark('openai_api_key')}": "x",
        mark("email"): 1,
    }


def test_a_key_with_an_encoded_tail_is_redacted_whole() -> None:
    tail = OPENAI[30:]
    encoded = OPENAI[:30] + "".join(f"%{ord(ch):02X}" for ch in tail[:2]) + tail[2:]
    out = R.redact(f"got {encoded} back")
    assert out == f"got {mark('openai_api_key')} back"


def test_redact_obj_passes_other_values_through() -> None:
    assert R.redact_obj(None) is None
    assert R.redact_obj(3) == 3
    assert R.redact_obj(frozenset({"a@example.com"})) == frozenset({mark("email")})


# -- Slack -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<!everyone>", "&lt;!everyone&gt;"),
        ("<@U024BE7LH>", f"&lt;@{WORD_JOINER}U024BE7LH&gt;"),
        ("<#C123|general>", "&lt;#C123|general&gt;"),
        ("<http://evil.example|click here>", "&lt;http://evil.example|click here&gt;"),
        ("<!subteam^S123>", "&lt;!subteam^S123&gt;"),
        ("@channel", f"@{WORD_JOINER}channel"),
        ("hey @here!", f"hey @{WORD_JOINER}here!"),
        ("@Everyone", f"@{WORD_JOINER}Everyone"),
        ("x@channel", f"x@{WORD_JOINER}channel"),
        ("ping @alice", f"ping @{WORD_JOINER}alice"),
        ("a & b &amp; c", "a &amp; b &amp;amp; c"),
        ("bob@example.com", "bob@example.com"),
        ("*bold* _it_ `code`", "*bold* _it_ `code`"),
    ],
)
def test_slack_escaping(text: str, expected: str) -> None:
    assert escape_slack_mrkdwn(text) == expected


def test_safe_text_slack_redacts_then_escapes() -> None:
    text = "<!channel> postgres://u:p&ss@db/x <@U1> a@example.com"
    assert SAFE.slack(text) == (
        f"&lt;!channel&gt; postgres://u:[REDACTED:password]@{WORD_JOINER}db/x "
        f"&lt;@{WORD_JOINER}U1&gt; "
        "[REDACTED:email]"
    )
    assert SAFE.slack(None) == ""


# -- Jira --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[click|http://evil]", r"\[click\|http://evil\]"),
        ("{code}rm -rf /{code}", r"\{code\}rm \-rf /\{code\}"),
        ("{noformat}x{noformat}", r"\{noformat\}x\{noformat\}"),
        ("{panel:title=x}y{panel}", r"\{panel:title=x\}y\{panel\}"),
        ("[~admin]", r"\[\~admin\]"),
        ("[~accountid:5b10ac8d82e05b22cc7d4ef5]", r"\[\~accountid:5b10ac8d82e05b22cc7d4ef5\]"),
        ("!http://evil/x.png!", r"\!http://evil/x.png\!"),
        ("h1. Title", r"h1\. Title"),
        ("intro\n  h3. Sub\nbq. quote", "intro\n  h3\\. Sub\nbq\\. quote"),
        ("{color:red}x{color}", r"\{color:red\}x\{color\}"),
        ("*bold* _it_ -gone- +ins+", r"\*bold\* \_it\_ \-gone\- \+ins\+"),
        ("x^2^ H~2~O", r"x\^2\^ H\~2\~O"),
        ("??cite?? ok?", r"\?\?cite\?\? ok?"),
        ("|a|b|\n||h||", "\\|a\\|b\\|\n\\|\\|h\\|\\|"),
        ("----", r"\-\-\-\-"),
        ("# one\n * two", "\\# one\n \\* two"),
        ("issue #12", "issue #12"),
        ("a\\\\b \\*", f"a{JIRA_BACKSLASH}{JIRA_BACKSLASH}b {JIRA_BACKSLASH}\\*"),
        ("&amp; & &#91;", r"\&amp; & \&#91;"),
        (
            "INC-42 gpt-4o-mini snake_case a+b 2024-01-15",
            "INC-42 gpt-4o-mini snake_case a+b 2024-01-15",
        ),
    ],
)
def test_jira_escaping(text: str, expected: str) -> None:
    assert escape_jira_wiki(text) == expected


def test_safe_text_jira_redacts_then_escapes() -> None:
    text = f"[~admin] token={SLACK_BOT} h1. x"
    assert SAFE.jira(text) == r"\[\~admin\] token=\[REDACTED:slack_token\] h1. x"
    assert SAFE.jira(None) == ""
    assert SAFE.plain(None) == ""
    assert SAFE.plain("<!here> a@example.com") == "<!here> [REDACTED:email]"


# -- properties --------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        OPENAI,
        AWS,
        JWT,
        "Bearer ",
        "Authorization: ",
        "token=",
        "password: ",
        '"',
        "'",
        "https://",
        "u:",
        "p@",
        "@",
        "host.example.com",
        "bob@example.com",
        "+49 30 1234567",
        "+1 (415) 555-0100",
        "030 1234567",
        "4111 1111 1111 1111",
        "4111",
        "2024-01-15T10:30:00Z",
        "[REDACTED:x]",
        "<!channel>",
        "@here",
        "{code}",
        "[~admin]",
        "\\",
        "\n",
        " ",
        "-",
        ".",
        "0",
        "1",
        "+",
        "&",
        ":",
        "/",
        "x",
        "%2D",
        "%40",
        "%",
        "\u200b",
        "\u2060",
        "\u202e",
        "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY",
        "DE89 3704 0044 0532 0130 00",
        "078-05-1120",
        "sk-" + "proj-" + "AbCdEfGhIjKlMnOpQrStUvWxYz",
    ]
)
TEXTS = st.one_of(st.text(), st.lists(FRAGMENTS, max_size=12).map("".join))
SLACK_TEXTS = st.one_of(
    TEXTS,
    st.text(alphabet="<>&@!#^|: channelhereveryoneCHANNELHERE\uff20\u2060"),
)


@settings(max_examples=300)
@given(SLACK_TEXTS)
def test_slack_output_is_inert(text: str) -> None:
    for out in (escape_slack_mrkdwn(text), SAFE.slack(text)):
        assert "<" not in out
        assert ">" not in out
        lowered = out.lower()
        for word in ("channel", "here", "everyone"):
            assert "@" + word not in lowered


@settings(max_examples=300)
@given(TEXTS)
def test_jira_output_is_inert(text: str) -> None:
    out = escape_jira_wiki(text)
    assert "\\\\" not in out
    assert "[~" not in out
    for special in re.finditer(r"[\[\]{}|!^~]", out):
        assert out[special.start() - 1] == "\\"
    assert out.replace("\\", "") == text.replace("\\", JIRA_BACKSLASH)


@settings(max_examples=500)
@given(TEXTS)
def test_redact_is_idempotent(text: str) -> None:
    once = R.redact(text)
    assert R.redact(once) == once


KEYS = st.sampled_from(["title", "labels", "items", "input_tokens", "a", "value", "k-1"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXTS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=12,
)


def shape(value: object) -> object:
    """Return `value` with every string replaced by `str`."""
    if isinstance(value, str):
        return str
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(shape(v) for v in value)
    return value


@settings(max_examples=200)
@given(JSON)
def test_redact_obj_preserves_structure(value: object) -> None:
    assert shape(R.redact_obj(value)) == shape(value)


# -- cost --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit",
    [
        "a-",
        "a.",
        "sk-",
        "x@",
        "+1 ",
        "01-",
        "token=",
        "eyJaaaaaaaaa.",
        "http://a:",
        "a%",
        "%2",
        "%41",
        "a\u200b",
        "aB1/",
        "DE89 ",
        "123-45-",
    ],
)
def test_long_adversarial_input_stays_linear(unit: str) -> None:
    text = unit * (20_000 // len(unit))
    start = time.perf_counter()
    R.redact(text)
    escape_jira_wiki(text)
    assert time.perf_counter() - start < 1.0


# -- gaps: IBAN, SSN, bare AWS secrets, sk- keys, hidden and encoded secrets, bidi, clipping -----

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
OPENAI_NO_DIGIT = "sk-" + "proj-" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"
SK_NO_DIGIT = "sk-" + "AbCdEfGhIjKlMnOpQrStUvWxYz"


@pytest.mark.parametrize(
    "iban",
    [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "CH93 0076 2011 6238 5295 7",
    ],
)
def test_ibans_are_redacted(iban: str) -> None:
    assert R.redact(f"refund to {iban} today") == f"refund to {mark('iban')} today"
    assert R.redact(f"iban:{iban}") == f"iban:{mark('iban')}"


@pytest.mark.parametrize(
    "text",
    [
        "DE89 3704 0044 0532 0130 01",  # wrong check digits
        "XX89370400440532013000",  # no such country
        "GB82 WEST",
        "ISO 8601 and RFC 3339",
        "AB12 CDEF GHIJ KLMN OP",
    ],
)
def test_iban_lookalikes_are_kept(text: str) -> None:
    assert mark("iban") not in R.redact(f"at {text} x")


@pytest.mark.parametrize("ssn", ["078-05-1120", "123-45-6789", "123 45 6789"])
def test_us_ssns_are_redacted(ssn: str) -> None:
    assert R.redact(f"SSN {ssn}, born") == f"SSN {mark('ssn')}, born"


@pytest.mark.parametrize(
    "text",
    ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "123-45-678"],
)
def test_impossible_ssns_are_kept(text: str) -> None:
    assert R.redact(f"id {text} x") == f"id {text} x"


def test_ibans_and_ssns_can_be_switched_off() -> None:
    text = "DE89370400440532013000 078-05-1120"
    off = RedactionPolicy(ibans=False, ssns=False, phone_numbers=False)
    assert Redactor(off).redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        f"aws secret {AWS_SECRET} leaked",
        f'{{"SecretAccessKey": "{AWS_SECRET}"}}',
        f"export X={AWS_SECRET}",
    ],
)
def test_bare_aws_secret_access_keys_are_redacted(text: str) -> None:
    out = R.redact(text)
    assert AWS_SECRET not in out
    assert "wJalrXUtnFEMI" not in out


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # a git sha: lowercase hex
        "see Users/JohnSmith/Documents/Projects/foo12",  # a path
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCD",  # no lowercase
        "a" * 39 + "B1",  # longer than a key
    ],
)
def test_aws_secret_lookalikes_are_kept(text: str) -> None:
    assert R.redact(text) == text


@pytest.mark.parametrize("key", [OPENAI_NO_DIGIT, SK_NO_DIGIT])
def test_sk_keys_without_a_digit_are_redacted(key: str) -> None:
    assert R.redact(f"key {key} used") == f"key {mark('openai_api_key')} used"


ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200b\u200b"]


@pytest.mark.parametrize("zw", ZERO_WIDTH)
@pytest.mark.parametrize("secret", [OPENAI, SLACK_BOT, AWS, GITHUB, "alice@example.com"])
def test_secrets_split_by_zero_width_characters_are_redacted(zw: str, secret: str) -> None:
    split = zw.join([secret[:5], secret[5:9], secret[9:]])
    out = R.redact(f"value {split} end")
    assert out.startswith("value [REDACTED:") and out.endswith("] end")
    assert secret[9:] not in out


def test_zero_width_characters_outside_words_are_kept() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert R.redact(f"hi {family} there") == f"hi {family} there"
    # a word joiner after "@" is dropped with the rest; escaping puts it back where it counts
    assert R.redact(f"a@{WORD_JOINER}example.com") == mark("email")
    assert SAFE.slack(f"@{WORD_JOINER}here") == f"@{WORD_JOINER}here"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("sk%2Dproj%2D" + OPENAI.removeprefix("sk-proj-"), "openai_api_key"),
        ("https://x.example/cb?api%5Fkey%3Dabc123def456&page=2", "api_key"),
        ("Authorization%3A%20Bearer%20abcdefghijklmnopqrstuvwxyz0123", "authorization"),
        ("mail%20alice%40example.com%20now", "email"),
        ("sk%252Dproj%252D" + OPENAI.removeprefix("sk-proj-"), "openai_api_key"),
        ("%78%6F%78%62-" + SLACK_BOT.removeprefix("xoxb-"), "slack_token"),
    ],
)
def test_url_encoded_secrets_are_redacted(text: str, label: str) -> None:
    out = R.redact(f"got {text} back")
    assert mark(label) in out
    assert "abc123def456" not in out and "Xq3vN8kLm2" not in out and "AbCdEfGhIj" not in out


@pytest.mark.parametrize(
    "text", ["100%25 done", "https://example.com/search?q=hello%20world&page=2", "50% off"]
)
def test_url_encoded_text_without_secrets_is_kept(text: str) -> None:
    assert R.redact(text) == text


@pytest.mark.parametrize(
    "control",
    ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"],
)
def test_bidi_controls_are_stripped(control: str) -> None:
    assert R.redact(f"amount {control}001$ to pay") == "amount 001$ to pay"
    assert control not in SAFE.slack(f"x{control}y")
    assert control not in SAFE.jira(f"x{control}y")


@pytest.mark.parametrize("limit", [10, 12, 20, 30, 40, 60])
def test_text_is_redacted_before_it_is_clipped(limit: int) -> None:
    text = "key " + OPENAI + " and more"
    for out in (
        SAFE.plain(text, limit=limit),
        SAFE.slack(text, limit=limit),
        SAFE.jira(text, limit=limit),
        SAFE.slack_plain(text, limit=limit),
        SAFE.markdown(text, limit=limit),
    ):
        assert "Xq3v" not in out and "proj-" not in out
        assert len(out.replace("\\", "")) <= limit


def test_clipped_text_ends_with_an_ellipsis() -> None:
    assert SAFE.plain("abcdefghij", limit=5) == "abcd…"
    assert SAFE.plain("abcde", limit=5) == "abcde"
    assert SAFE.slack("<<<<<<", limit=3) == "&lt;&lt;…"
