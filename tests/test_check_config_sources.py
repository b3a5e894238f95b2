"""`ai-incident check-config` reports a `require_timestamp` that cannot do what it says."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import run_cli

POLICY = """\
sources:
  grafana:
    kind: grafana
    hmac_secret: a-long-grafana-signing-secret
    require_timestamp: true
  agents:
    kind: agent
    hmac_secret: a-long-agent-signing-secret
    require_timestamp: true
"""


def test_require_timestamp_on_an_agent_source_is_reported_with_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY, encoding="utf-8")
    r = run_cli("check-config", str(policy), database_url="sqlite://", workdir=tmp_path)
    assert r.returncode == 1
    [problem, summary] = r.stderr.strip().splitlines()
    assert problem == (
        f"{policy}:9: sources.agents.require_timestamp: require_timestamp applies to Grafana "
        "signatures; an agent's X-AI-Incident-Signature always carries its timestamp"
    )
    assert summary == f"{policy}: 1 problem(s)"
