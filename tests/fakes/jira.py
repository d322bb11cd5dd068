"""A Jira REST server: creates issues on POST /rest/api/2/issue, checking Basic auth or a Bearer token."""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import Any

from tests.fakes.base import FakeResponse, FakeServer, RecordedRequest

USERNAME = "bot@example.com"
API_TOKEN = "jira-api-token-7f3a"
ACCESS_TOKEN = "jira-oauth-token-91c2"


@dataclass(frozen=True)
class CreatedIssue:
    key: str
    fields: dict[str, Any]
    auth: str  #: "basic" or "bearer"


class JiraServer(FakeServer):
    """Accepts `username:API_TOKEN` (Basic) or `ACCESS_TOKEN` (Bearer); answers 201 {id, key, self}."""

    def __init__(self, username: str = USERNAME, api_token: str = API_TOKEN, access_token: str = ACCESS_TOKEN) -> None:
        super().__init__()
        self._basic = "Basic " + base64.b64encode(f"{username}:{api_token}".encode()).decode()
        self._bearer = f"Bearer {access_token}"
        self._ids = itertools.count(10001)
        self.issues: list[CreatedIssue] = []
        #: a status to answer instead, per project key (failure-path tests)
        self.fail_project: dict[str, int] = {}

    def respond(self, request: RecordedRequest) -> FakeResponse:
        if request.method != "POST" or request.path.rstrip("/") != "/rest/api/2/issue":
            return FakeResponse.of_json({"errorMessages": [f"no route {request.path}"]}, 404)
        authorization = request.headers.get("authorization")
        if authorization not in (self._basic, self._bearer):
            return FakeResponse.of_json({"errorMessages": ["You are not authenticated."]}, 401)
        try:
            fields = request.json()["fields"]
            project = fields["project"]["key"]
            summary = fields["summary"]
        except (ValueError, KeyError, TypeError):
            return FakeResponse.of_json({"errorMessages": ["fields.project.key and fields.summary are required"]}, 400)
        if not isinstance(summary, str) or not summary:
            return FakeResponse.of_json({"errors": {"summary": "You must specify a summary of the issue."}}, 400)
        if project in self.fail_project:
            return FakeResponse.of_json({"errorMessages": ["scripted failure"]}, self.fail_project[project])
        number = next(self._ids)
        key = f"{project}-{number - 10000}"
        with self.lock:
            self.issues.append(CreatedIssue(key, fields, "basic" if authorization == self._basic else "bearer"))
        return FakeResponse.of_json(
            {"id": str(number), "key": key, "self": f"{self.url}/rest/api/2/issue/{number}"}, 201
        )

    def issues_mentioning(self, text: str) -> list[CreatedIssue]:
        with self.lock:
            return [i for i in self.issues if text in str(i.fields.get("description", ""))]
