"""`manifest.yml` is a valid Slack app manifest with what the bot needs (SPEC §10).

Validated against Slack's own versioned manifest schema (tests/specs/manifest.schema.2.0.0.json,
MIT, github.com/slackapi/manifest-schema), with the JSON Schema draft the schema declares. Its
``$ref``s are all local (``#/definitions/...``), so no network access is needed; a test below
keeps it that way.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from jsonschema.protocols import Validator

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "manifest.yml"
SPECS = Path(__file__).resolve().parent / "specs"
BOT_SCOPES = {
    "chat:write",
    "commands",
    "files:write",  # the digest chart
    "channels:history",
    "groups:history",
    "im:history",  # a retried page looks for its DM before sending it again
    "im:write",  # conversations.open for paging DMs
    "usergroups:read",
    "users:read",
    "users:read.email",
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def schema(manifest: dict[str, Any]) -> dict[str, Any]:
    """The schema of the manifest version ``_metadata.major_version`` declares."""
    major = manifest["_metadata"]["major_version"]
    loaded = json.loads((SPECS / f"manifest.schema.{major}.0.0.json").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Validator:
    cls = jsonschema.validators.validator_for(schema)  # the draft "$schema" names
    assert cls is jsonschema.Draft7Validator, schema.get("$schema")
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def problems(validator: Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]


def test_schema_refs_are_local(schema: dict[str, Any]) -> None:
    refs = set(re.findall(r'"\$ref":\s*"([^"]*)"', json.dumps(schema)))
    assert refs and all(r.startswith("#/definitions/") for r in refs)
    definitions = schema["definitions"]
    assert {r.removeprefix("#/definitions/") for r in refs} <= set(definitions)


def test_manifest_validates(validator: Validator, manifest: dict[str, Any]) -> None:
    assert manifest["_metadata"]["major_version"] == 2
    assert problems(validator, manifest) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("features", "slash_commands", 0, "command"), "ai-incident"),  # no leading slash
        (("settings", "interactivity", "is_enabled"), "yes"),
        (("oauth_config", "scopes", "bots"), ["chat:write"]),  # unknown key
    ],
)
def test_the_schema_catches_a_broken_manifest(
    validator: Validator, manifest: dict[str, Any], path: tuple[str | int, ...], value: Any
) -> None:
    broken = copy.deepcopy(manifest)
    node: Any = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert problems(validator, broken)


def test_slash_command(manifest: dict[str, Any]) -> None:
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {"/ai-incident"}
    command = commands["/ai-incident"]
    assert command["usage_hint"].strip() and command["description"].strip()
    assert command["url"].startswith("https://")
    assert command["url"].endswith("/slack/events")


def test_interactivity_and_events(manifest: dict[str, Any]) -> None:
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].startswith("https://")
    assert interactivity["request_url"].endswith("/slack/events")
    events = manifest["settings"]["event_subscriptions"]
    assert events["request_url"].endswith("/slack/events")
    assert {"message.channels", "message.groups"} <= set(events["bot_events"])


def test_bot_scopes_are_exactly_what_the_bot_needs(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) == BOT_SCOPES
