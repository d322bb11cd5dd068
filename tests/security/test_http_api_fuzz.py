"""Corpora of hostile values for every HTTP parameter of the classes issue 16 found 500s in: regexes, label
filters, durations, date-times, non-ASCII and control characters in path keys, and made-up HTTP methods.

Every answer must be below 500 (a 500 only ever means a bug), and every 4xx must name a field.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.conftest import flow_source

pytestmark = pytest.mark.security

API = "/api/v1/main"
YAML = {"Content-Type": "application/x-yaml"}

REGEXES = [
    "(", ")", "[", "[z-a]", "a{2,1}", "*", "+", "?", "\\", "(?<", "(?P<x>", "\\y\\m", "x{99999}", "((((((", "\x7f",
]  # fmt: skip
DURATIONS = [
    "P99999999999D", "P999999999D", "PT99999999999999999999H", "PT99999999999999999999S", "P-99999999999D",
    "-P999999999D", "P1D" * 50, "PT0.9999999999S", "P", "PT", "1D", "∞", "P1Y", "PT1,5S", "P0D",
]  # fmt: skip
MOMENTS = [
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0000-01-01", "+275760-09-13", "2024-02-30T00:00:00Z",
    "2024-01-01T25:00:00Z", "2024-01-01T00:00:00+99:00", "1e308", "-1", "now",
]  # fmt: skip
KEYS = ["kéy", "ключ", "🔑", "a\u00a0b", "\u202e", "\ufeff", "%C0%AF", "a%00b", "ü" * 300, "'\"<>`"]
METHODS = ["BREW", "PROPFIND", "M-SEARCH", "get", "X" * 100, "TRACE", "CONNECT"]


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    client.post(f"{API}/flows", content=flow_source("fuzz.ns"), headers=YAML)
    client.post(f"{API}/executions/fuzz.ns/hello", params={"labels": ["owner:ann"]})
    return client


class Answers:
    """Every status seen, and each request that got a 5xx or a 4xx naming no field."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.faults: list[str] = []

    def check(self, what: str, response: Any) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.faults.append(f"{what} -> {response.status_code}: {response.text[:200]}")
        elif (
            response.status_code >= 400
            and response.status_code != 405
            and response.headers.get("content-type", "").startswith("application/json")
        ):
            errors = response.json().get("_embedded", {}).get("errors", [])
            if not errors or not errors[0].get("path"):
                self.faults.append(f"{what} -> {response.status_code} names no field: {response.text[:200]}")


def test_regex_and_label_filters_never_fail_the_server(seeded: TestClient) -> None:
    answers = Answers()
    for path in ("/executions/search", "/flows/search", "/logs/search", "/namespaces/search", "/kv/search"):
        for field in ("namespace", "flowId", "q"):
            for pattern in REGEXES:
                params = {f"filters[{field}][REGEX]": pattern}
                answers.check(f"{path} {params}", seeded.get(API + path, params=params))
    for op in ("EQUALS", "NOT_EQUALS", "CONTAINS", "IN", "NOT_IN", "REGEX", "STARTS_WITH"):
        for key in ["k", *KEYS[:5]]:
            for path in ("/executions/search", "/flows/search"):
                params = {f"filters[labels][{op}][{key}]": "v", "labels": f"{key}:v"}
                answers.check(f"{path} {params}", seeded.get(API + path, params=params))

    assert answers.faults == [], answers.faults[:5]


def test_durations_and_date_times_never_fail_the_server(seeded: TestClient) -> None:
    answers = Answers()
    operators = ("GREATER_THAN", "LESS_THAN", "EQUALS")
    for index, value in enumerate(DURATIONS + MOMENTS):
        for path in ("/executions/search", "/logs/search"):
            for param in ("timeRange", "filters[timeRange][EQUALS]", "startDate", "endDate"):
                answers.check(f"{path} {param}={value}", seeded.get(API + path, params={param: value}))
        body = {"name": "fuzz", "expiresIn": value}
        answers.check(f"tokens expiresIn={value}", seeded.post(f"{API}/tokens", json=body))
        headers = {b"ttl": value.encode(), b"content-type": b"application/json"}
        answers.check(f"kv ttl={value}", seeded.put(f"{API}/namespaces/fuzz.ns/kv/k", content='"v"', headers=headers))
        answers.check(f"scheduleDate={value}", seeded.post(f"{API}/executions/fuzz.ns/hello?scheduleDate={value}"))
        for param in ("from", "to"):
            answers.check(f"ai usage {param}={value}", seeded.get(f"{API}/ai/usage", params={param: value}))
            answers.check(f"audit {param}={value}", seeded.get(f"{API}/audit", params={param: value}))
        # The three operators share one parser: each value meets one of them, and the values cover all three.
        op = operators[index % len(operators)]
        for field in ("startDate", "endDate", "updated", "date"):
            for path in ("/executions/search", "/flows/search", "/logs/search", "/triggers/search"):
                params = {f"filters[{field}][{op}]": value}
                answers.check(f"{path} {params}", seeded.get(API + path, params=params))

    assert answers.faults == [], answers.faults[:5]


def test_odd_keys_in_paths_never_fail_the_server_nor_tell_real_from_unknown(seeded: TestClient) -> None:
    answers = Answers()
    for key in KEYS:
        statuses = set()
        for flow_id in ("hello", "nothing"):
            response = seeded.post(f"{API}/executions/webhook/fuzz.ns/{flow_id}/{key}")
            answers.check(f"webhook {flow_id}/{key!r}", response)
            statuses.add(response.status_code)
        assert len(statuses) == 1 and statuses <= {404, 422}, (key, statuses)
        for path in (f"/executions/{key}", f"/executions/{key}/follow", f"/logs/{key}", f"/flows/fuzz.ns/{key}"):
            answers.check(f"GET {path!r}", seeded.get(API + path))
        answers.check(f"kv {key!r}", seeded.get(f"{API}/namespaces/fuzz.ns/kv/{key}"))

    assert answers.faults == [], answers.faults[:5]


def test_made_up_methods_are_refused_and_counted_as_other(seeded: TestClient) -> None:
    answers = Answers()
    for method in METHODS:
        for path in ("/health", f"{API}/flows/search", "/ui", "/nowhere"):
            answers.check(f"{method} {path}", seeded.request(method, path))
    exposition = seeded.get("/metrics").text

    assert answers.faults == [], answers.faults[:5]
    assert not any(f'method="{m}"' in exposition for m in METHODS if m not in ("TRACE", "CONNECT"))
