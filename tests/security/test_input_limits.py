"""Hostile request bodies: YAML alias bombs and deep nesting, 10 MB bodies, huge multipart uploads, path
traversal in file inputs, KV keys and namespaces. Every one gets a clear 4xx naming the field; none a 5xx."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.security

API = "/api/v1/main"
YAML = {"Content-Type": "application/x-yaml"}
LIMIT = 10 * 1024 * 1024

BILLION_LAUGHS = """id: lol
namespace: security.bombs
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: *i
"""

WITH_FILE = """id: upload
namespace: security.files
inputs:
  - id: doc
    type: FILE
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.doc }}"
"""


class Tally:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()

    def __call__(self, status: int) -> int:
        self.statuses[status] += 1
        return status

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


@pytest.fixture
def tally() -> Tally:
    return Tally()


def _fields(response: object) -> list[str]:
    return [e["path"] for e in response.json()["_embedded"]["errors"]]  # type: ignore[attr-defined]


def test_yaml_bombs_and_deep_nesting_are_refused_quickly_naming_the_problem(client: TestClient, tally: Tally) -> None:
    nested = "id: deep\nnamespace: security.bombs\ntasks: " + "[" * 5000 + "]" * 5000 + "\n"
    mapping = "id: deep\nnamespace: security.bombs\nx:\n" + "".join(f"{'  ' * (n + 1)}k{n}:\n" for n in range(400))
    for body, word in ((BILLION_LAUGHS, "alias"), (nested, "nest"), (mapping, "nest")):
        for path in (f"{API}/flows", f"{API}/flows/validate"):
            started = time.monotonic()
            response = client.post(path, content=body, headers=YAML)
            assert time.monotonic() - started < 2
            assert tally(response.status_code) in (200, 422), response.text
            text = response.text.lower()
            assert word in text, text[:300]
    assert tally.server_errors == 0
    print(f"YAML bombs: {sum(tally.statuses.values())} requests, statuses {dict(tally.statuses)}")


def test_bodies_over_ten_megabytes_are_a_json_413_naming_the_limit(client: TestClient, tally: Tally) -> None:
    big = b"x" * (LIMIT + 1)
    flow = client.post(f"{API}/flows", content=big, headers=YAML)
    kv = client.put(f"{API}/namespaces/security.kv/kv/big", content=big, headers={"Content-Type": "text/plain"})

    def streamed() -> object:
        for _ in range(11):
            yield b"y" * (1024 * 1024)

    chunked = client.post(f"{API}/flows", content=streamed(), headers=YAML)
    for response in (flow, kv, chunked):
        assert tally(response.status_code) == 413
        assert "CHORUS_MAX_BODY_BYTES" in response.json()["message"]
        assert _fields(response) == ["body"]


def test_a_huge_multipart_upload_is_a_413_and_a_small_one_is_stored(client: TestClient, tally: Tally) -> None:
    assert client.post(f"{API}/flows", content=WITH_FILE, headers=YAML).status_code == 200

    huge = client.post(f"{API}/executions/security.files/upload", files={"doc": ("big.bin", b"\0" * (LIMIT + 10))})
    small = client.post(f"{API}/executions/security.files/upload", files={"doc": ("ok.txt", b"fine")})

    assert tally(huge.status_code) == 413
    assert "request body larger than" in huge.json()["message"]
    assert tally(small.status_code) == 200
    assert small.json()["inputs"]["doc"].endswith("/inputs/doc/ok.txt")


@pytest.mark.parametrize(
    "filename", ["../../../../etc/passwd", "/etc/passwd", "..", "a/../../b", "..\\..\\windows", "x/../../../y"]
)
def test_a_file_input_name_cannot_leave_its_execution(client: TestClient, tally: Tally, filename: str) -> None:
    assert client.post(f"{API}/flows", content=WITH_FILE, headers=YAML).status_code == 200

    response = client.post(f"{API}/executions/security.files/upload", files={"doc": (filename, b"data")})

    assert tally(response.status_code) in (200, 422), response.text
    if response.status_code == 200:
        uri = response.json()["inputs"]["doc"]
        assert "/inputs/doc/" in uri and ".." not in uri.split("/inputs/doc/", 1)[1].split("/")
    else:
        assert _fields(response) == ["inputs.doc"]


@pytest.mark.parametrize("key", ["../other", "..", "a%2F..%2Fb", "%2e%2e%2fetc", "a\\..\\b", ".hidden", "x" * 1000])
def test_kv_keys_cannot_traverse_or_escape_their_namespace(client: TestClient, tally: Tally, key: str) -> None:
    put = client.put(f"{API}/namespaces/security.kv/kv/{key}", content='"v"', headers={"Content-Type": "text/plain"})
    get = client.get(f"{API}/namespaces/security.kv/kv/{key}")

    assert tally(put.status_code) in (404, 405, 422), put.text
    assert tally(get.status_code) in (404, 405, 422), get.text


@pytest.mark.parametrize("namespace", ["../x", "a/../b", "..", "a..b/../c", "/abs"])
def test_flow_namespaces_cannot_be_paths(client: TestClient, tally: Tally, namespace: str) -> None:
    task = "  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: m\n"
    source = f"id: f\nnamespace: {namespace!r}\ntasks:\n{task}"

    response = client.post(f"{API}/flows", content=source, headers=YAML)

    assert tally(response.status_code) == 422, response.text
    assert "namespace" in _fields(response)


DEEP_JSON = "[" * 200_000 + "]" * 200_000

WITH_JSON = """id: typed
namespace: security.json
inputs:
  - id: doc
    type: JSON
  - id: items
    type: ARRAY
    itemType: STRING
    required: false
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.doc }}"
"""


@pytest.mark.parametrize("field", ["doc", "items"])
def test_a_json_input_nested_too_deeply_is_a_422_naming_it(client: TestClient, tally: Tally, field: str) -> None:
    assert client.post(f"{API}/flows", content=WITH_JSON, headers=YAML).status_code == 200
    form = {"doc": "{}", field: DEEP_JSON}

    response = client.post(f"{API}/executions/security.json/typed", files={k: (None, v) for k, v in form.items()})

    assert tally(response.status_code) == 422, response.text
    assert _fields(response) == [f"inputs.{field}"]
    assert "nests too deeply" in response.json()["message"]


@pytest.mark.parametrize("namespace", ["security..files", "security.files.", "security.files._files", "a._files.b"])
def test_a_namespace_that_would_share_another_namespaces_storage_is_refused(
    client: TestClient, tally: Tally, namespace: str
) -> None:
    # Each name is a storage directory: `a..b` and `a.b.` were `/a/b` (namespace a.b's files), and `a._files`
    # lived inside namespace a's files, so either side read the other's namespace files.
    task = "  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: m\n"
    source = f"id: f\nnamespace: {namespace!r}\ntasks:\n{task}"

    deployed = client.post(f"{API}/flows", content=source, headers=YAML)
    kv = client.put(f"{API}/namespaces/{namespace}/kv/k", content='"v"', headers={"Content-Type": "application/json"})
    files = client.get(f"{API}/namespaces/{namespace}/files/directory")

    assert tally(deployed.status_code) == 422, deployed.text
    assert "namespace" in _fields(deployed)
    assert tally(kv.status_code) == 422 and _fields(kv) == ["namespace"], kv.text
    assert tally(files.status_code) == 422 and _fields(files) == ["namespace"], files.text


def test_namespaces_with_underscores_and_dashes_still_deploy(client: TestClient) -> None:
    task = "  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: m\n"
    for namespace in ("security.my_team-1", "security._private", "security.files_x"):
        source = f"id: f\nnamespace: {namespace}\ntasks:\n{task}"
        assert client.post(f"{API}/flows", content=source, headers=YAML).status_code == 200, namespace
