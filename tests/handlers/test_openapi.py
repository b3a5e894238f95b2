"""The served OpenAPI document is valid and complete, and no request it describes gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from handlers.http import create_app
from handlers.openapi import SECURITY_SCHEMES
from tests.conftest import AUTH, Bot, make_bot

EXAMPLES = 20  # per operation and mode: the whole fuzz run stays well under a minute
# no 5xx, and every answer is one the document describes, in status, content type and schema
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    b = make_bot(f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'bot.db'}")
    with b.client:
        yield b
    b.container.engine.dispose()


@pytest.fixture(scope="module")
def document(served: Bot) -> dict[str, Any]:
    r = served.client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    found = sorted(set(refs(document)))
    assert "#/components/schemas/AmAlert" in found
    assert "#/components/schemas/AgentRef" in found
    for ref in found:
        resolve(document, ref)


def test_bodies_are_named_schemas(document: dict[str, Any]) -> None:
    def body(path: str) -> Any:
        return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]

    assert body("/webhooks/alertmanager")["schema"] == {
        "$ref": "#/components/schemas/AlertmanagerPayload"
    }
    assert body("/webhooks/alerts")["schema"] == {"$ref": "#/components/schemas/GenericAlert"}
    assert body("/webhooks/handoffs")["schema"] == {"$ref": "#/components/schemas/HandoffBody"}


@pytest.mark.parametrize("path", ["/webhooks/alertmanager", "/webhooks/alerts"])
def test_alert_webhooks_document_the_duplicate_answer(document: dict[str, Any], path: str) -> None:
    responses = document["paths"][path]["post"]["responses"]
    assert {"200", "202", "401", "413", "422", "503"} <= set(responses)
    accepted = {"$ref": "#/components/schemas/Accepted"}
    assert responses["200"]["content"]["application/json"]["schema"] == accepted
    refused = {"$ref": "#/components/schemas/Refused"}
    assert responses["422"]["content"]["application/json"]["schema"] == refused


def test_security_schemes_are_declared_per_operation(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"] == SECURITY_SCHEMES
    assert SECURITY_SCHEMES["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": SECURITY_SCHEMES["bearer"]["description"],
    }
    grafana = SECURITY_SCHEMES["grafanaSignature"]
    assert (grafana["in"], grafana["name"]) == ("header", "X-Grafana-Alerting-Signature")

    def security(method: str, path: str) -> Any:
        return document["paths"][path][method]["security"]

    assert security("post", "/webhooks/alertmanager") == [
        {"bearer": []},
        {"grafanaSignature": []},
    ]
    assert security("post", "/webhooks/handoffs") == [{"bearer": []}, {"agentSignature": []}]
    assert security("get", "/handoffs/{handoff_id}") == [{"bearer": []}]
    assert security("post", "/ofrep/v1/evaluate/flags") == [{"bearer": []}]
    assert {"jiraSignature": []} in security("post", "/webhooks/jira")
    assert security("get", "/healthz") == []


# -- fuzzing -------------------------------------------------------------------------------------


def auth_for(path: str, bot: Bot) -> dict[str, str]:
    """The operator's token opens every endpoint; Jira's takes the Jira webhook secret."""
    if path == "/webhooks/jira":
        return {"Authorization": f"Bearer {bot.container.policy.jira.webhook_secret}"}
    return dict(AUTH)


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    """Send `EXAMPLES` generated requests to one operation; fail on a 5xx or an undocumented answer."""

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def takes_input(operation: Any) -> bool:
    return bool(operation.body or operation.path_parameters or operation.query)


@pytest.mark.slow  # fuzzes every operation
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(
    served: Bot, document: dict[str, Any], mode: GenerationMode
) -> None:
    # the same container, its workers already running; this app leaves their lifecycle alone
    app = create_app(served.container, manage_lifecycle=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(item) for item in document["paths"].values()) >= 11
    for operation in operations:
        # a request with no parameters and no body has nothing to get wrong
        if mode is GenerationMode.NEGATIVE and not takes_input(operation):
            continue
        fuzz(operation, mode, auth_for(operation.path, served))
