"""The Jira stand-in answers like Jira and flags what Jira would refuse, per Atlassian's spec."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from tests.standins.jira import JiraStandin, RestSpec


@pytest.fixture
def cloud() -> Iterator[JiraStandin]:
    with JiraStandin(mode="cloud") as standin:
        yield standin


@pytest.fixture
def dc() -> Iterator[JiraStandin]:
    with JiraStandin(mode="dc") as standin:
        yield standin


def client(jira: JiraStandin) -> httpx.Client:
    if jira.cloud:
        basic = base64.b64encode(f"{jira.email}:{jira.token}".encode()).decode()
        auth = f"Basic {basic}"
    else:
        auth = f"Bearer {jira.token}"
    return httpx.Client(base_url=jira.url, headers={"Authorization": auth}, timeout=5)


def new_issue(http: httpx.Client) -> str:
    r = http.post(
        "/rest/api/2/issue",
        json={
            "fields": {
                "project": {"key": "OPS"},
                "issuetype": {"name": "Task"},
                "summary": "disk full",
                "labels": ["ai-incident"],
            }
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def test_server_info_names_the_deployment(cloud: JiraStandin, dc: JiraStandin) -> None:
    with client(cloud) as c, client(dc) as d:
        assert c.get("/rest/api/2/serverInfo").json()["deploymentType"] == "Cloud"
        assert d.get("/rest/api/2/serverInfo").json()["deploymentType"] == "Server"
    assert cloud.violations == dc.violations == []


def test_wrong_credentials_are_401_in_jiras_shape(cloud: JiraStandin) -> None:
    r = httpx.get(f"{cloud.url}/rest/api/2/serverInfo", headers={"Authorization": "Bearer x"})
    assert r.status_code == 401 and r.json()["errorMessages"]


def test_cloud_rules_the_spec_does_not_encode(cloud: JiraStandin) -> None:
    with client(cloud) as http:
        key = new_issue(http)
        gone = http.get("/rest/api/2/search", params={"jql": "project = OPS"})
        assert gone.status_code == 410
        by_name = http.put(f"/rest/api/2/issue/{key}/assignee", json={"name": "alice"})
        assert by_name.status_code == 400
        unbounded = http.get("/rest/api/2/search/jql", params={"jql": "order by created"})
        assert unbounded.status_code == 400
        found = http.get(
            "/rest/api/2/search/jql", params={"jql": 'project = OPS AND labels = "ai-incident"'}
        )
        assert [i["key"] for i in found.json()["issues"]] == [key]
    assert len(cloud.violations) == 3
    assert any("/search/jql" in v for v in cloud.violations)
    assert any("accountId only" in v for v in cloud.violations)


def test_data_center_takes_user_names_and_search(dc: JiraStandin) -> None:
    with client(dc) as http:
        key = new_issue(http)
        assert (
            http.put(f"/rest/api/2/issue/{key}/assignee", json={"name": "bob"}).status_code == 204
        )
        assert dc.issue(key)["fields"]["assignee"]["name"] == "bob"
        found = http.get("/rest/api/2/search", params={"jql": f"key = {key}"}).json()
        assert found["total"] == 1
        assert http.get("/rest/api/2/search/jql", params={"jql": "key = X-1"}).status_code == 404
    dc.assert_no_violations()


def test_requests_outside_the_spec_are_flagged(cloud: JiraStandin) -> None:
    with client(cloud) as http:
        key = new_issue(http)
        http.post(f"/rest/api/2/issue/{key}/transitions", json={"transition": {"id": 31}})
        http.get("/rest/api/2/issue/bulkfetch/everything")
        http.post(f"/rest/api/2/issue/{key}/comment", json={"body": {"type": "doc"}})
    assert any("transition/id: 31 is not of type 'string'" in v for v in cloud.violations)
    assert any("no such path in the spec" in v for v in cloud.violations)
    assert any("wiki-markup string" in v for v in cloud.violations)


def test_failures_and_hangs_on_demand(cloud: JiraStandin) -> None:
    cloud.fail_next("create", status=503, times=2, retry_after=4)
    cloud.hang_next("create", seconds=1.5)
    with client(cloud) as http:
        first = http.post("/rest/api/2/issue", json={"fields": {}})
        assert first.status_code == 503 and first.headers["Retry-After"] == "4"
        assert http.post("/rest/api/2/issue", json={"fields": {}}).status_code == 503
        with pytest.raises(httpx.ReadTimeout):
            http.post(
                "/rest/api/2/issue",
                json={
                    "fields": {
                        "project": {"key": "OPS"},
                        "issuetype": {"name": "Task"},
                        "summary": "made, answer lost",
                    }
                },
                timeout=0.5,
            )
    assert [i["fields"]["summary"] for i in cloud.issues()] == ["made, answer lost"]


def test_moves_by_people_are_kept_as_webhook_bodies(cloud: JiraStandin) -> None:
    with client(cloud) as http:
        key = new_issue(http)
    cloud.move(key, "Done", by="bob")
    cloud.reassign(key, "carol", by="bob")
    status, assignee = cloud.webhook_events()
    assert status["webhookEvent"] == "jira:issue_updated"
    assert status["user"]["displayName"] == "Bob Example"
    assert status["changelog"]["items"][0]["toString"] == "Done"
    assert status["issue"]["fields"]["status"]["statusCategory"]["key"] == "done"
    assert assignee["changelog"]["items"][0]["to"] == cloud.user("carol")["accountId"]


def test_the_spec_excerpt_knows_the_paths_the_bot_uses() -> None:
    spec = RestSpec.load()
    for method, path in [
        ("GET", "/rest/api/2/serverInfo"),
        ("POST", "/rest/api/2/issue"),
        ("PUT", "/rest/api/2/issue/OPS-1"),
        ("GET", "/rest/api/2/issue/OPS-1/comment"),
        ("POST", "/rest/api/2/issue/OPS-1/transitions"),
        ("PUT", "/rest/api/latest/issue/OPS-1/assignee"),
        ("GET", "/rest/api/2/search/jql"),
        ("GET", "/rest/api/2/user/search"),
        ("GET", "/rest/api/2/field"),
    ]:
        template, problems = spec.check(method, path, {}, None if method == "GET" else {})
        assert template is not None and not [p for p in problems if "no such" in p], (method, path)
