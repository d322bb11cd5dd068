"""Flows over HTTP: search, revisions, enable/disable, export/import, bulk delete."""

from __future__ import annotations

import io
import zipfile

from fastapi.testclient import TestClient

from tests.integration.api.conftest import flow_source

F = "/api/v1/main/flows"
YAML = {"Content-Type": "application/x-yaml"}


def deploy(client: TestClient, namespace: str, flow_id: str = "hello") -> None:
    response = client.post(F, content=flow_source(namespace, flow_id), headers=YAML)
    assert response.status_code == 200, response.text


def test_search_by_namespace_prefix_query_and_label_with_paging_and_sort(client: TestClient) -> None:
    for namespace, flow_id in [("a", "one"), ("a.b", "two"), ("c", "three")]:
        deploy(client, namespace, flow_id)

    by_prefix = client.get(f"{F}/search", params={"filters[namespace][PREFIX]": "a", "sort": "id:desc"}).json()
    by_query = client.get(f"{F}/search", params={"q": "thr"}).json()
    by_label = client.get(f"{F}/search", params={"filters[labels][EQUALS][team]": "ai", "size": 2, "page": 2}).json()

    assert [r["id"] for r in by_prefix["results"]] == ["two", "one"]
    assert [r["id"] for r in by_query["results"]] == ["three"]
    assert by_label["total"] == 3 and len(by_label["results"]) == 1
    assert "source" not in by_prefix["results"][0]


def test_revisions_are_listed_and_each_can_be_read(client: TestClient) -> None:
    deploy(client, "a")
    client.put(f"{F}/a/hello", content=flow_source("a") + "description: v2\n", headers=YAML)

    revisions = client.get(f"{F}/a/hello/revisions").json()

    assert [r["revision"] for r in revisions] == [1, 2]
    assert client.get(f"{F}/a/hello/revisions/2").json()["description"] == "v2"
    assert client.get(f"{F}/a/hello/revisions/9").status_code == 404


def test_disable_then_enable_by_ids_makes_new_revisions(client: TestClient) -> None:
    deploy(client, "a")
    keys = [{"namespace": "a", "id": "hello"}]

    assert client.post(f"{F}/disable/by-ids", json=keys).json() == {"count": 1}
    assert client.get(f"{F}/a/hello").json()["disabled"] is True
    assert client.post("/api/v1/main/executions/a/hello").status_code == 409
    assert client.post(f"{F}/enable/by-ids", json=keys).json() == {"count": 1}
    assert client.get(f"{F}/a/hello").json()["disabled"] is False


def test_export_as_zip_imports_back_after_a_delete(client: TestClient) -> None:
    deploy(client, "a", "one")
    deploy(client, "a", "two")
    exported = client.get(f"{F}/export/by-query", params={"namespace": "a"})
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        assert sorted(archive.namelist()) == ["a.one.yml", "a.two.yml"]

    assert client.request("DELETE", f"{F}/delete/by-ids", json=[{"namespace": "a", "id": "one"}]).json() == {"count": 1}
    failed = client.post(f"{F}/import", files={"fileUpload": ("flows.zip", exported.content)}).json()

    assert failed == []
    assert client.get(f"{F}/a/one").status_code == 200


def test_multi_document_yaml_export_and_import_report_invalid_documents(client: TestClient) -> None:
    deploy(client, "a", "one")
    text = client.get(f"{F}/export/by-query", params={"namespace": "a", "format": "yaml"}).text
    assert text.startswith("\nid: one") or "id: one" in text

    failed = client.post(f"{F}/import", content=text + "\n---\nid: broken\n", headers=YAML).json()

    assert len(failed) == 1 and "body#1" in failed[0]


def test_list_by_namespace_and_distinct_namespaces(client: TestClient) -> None:
    deploy(client, "a", "one")
    deploy(client, "b.c", "two")

    assert [f["id"] for f in client.get(f"{F}/a").json()] == ["one"]
    assert client.get(f"{F}/distinct-namespaces").json() == ["a", "b.c"]


NESTED = """id: nested
namespace: a
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y"]
    tasks:
      - id: is-json
        type: io.kestra.plugin.core.flow.Switch
        value: "{{ taskrun.value is json }}"
        cases:
          "false":
            - id: not-json
              type: io.kestra.plugin.core.debug.Return
              format: "{{ taskrun.value }}"
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task:
          id: in-dag
          type: io.kestra.plugin.core.log.Log
          message: hi
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: answer
        type: STRING
errors:
  - id: on-error
    type: io.kestra.plugin.core.log.Log
    message: failed
"""


def test_get_flow_has_its_source_only_when_asked(client: TestClient) -> None:
    deploy(client, "a")

    plain = client.get(f"{F}/a/hello").json()
    with_source = client.get(f"{F}/a/hello", params={"source": "true"}).json()

    assert "source" not in plain and plain["id"] == "hello"
    assert with_source["source"] == flow_source("a", "hello")


def test_a_task_is_found_at_any_depth_as_written(client: TestClient) -> None:
    assert client.post(F, content=NESTED, headers=YAML).status_code == 200

    not_json = client.get(f"{F}/a/nested/tasks/not-json")
    found = {t: client.get(f"{F}/a/nested/tasks/{t}").json().get("type") for t in ("in-dag", "on-error", "each")}

    assert not_json.status_code == 200
    assert not_json.json() == {
        "id": "not-json",
        "type": "io.kestra.plugin.core.debug.Return",
        "format": "{{ taskrun.value }}",
    }
    assert found == {
        "in-dag": "io.kestra.plugin.core.log.Log",
        "on-error": "io.kestra.plugin.core.log.Log",
        "each": "io.kestra.plugin.core.flow.ForEach",
    }


def test_an_unknown_task_or_flow_is_a_404_that_names_it(client: TestClient) -> None:
    assert client.post(F, content=NESTED, headers=YAML).status_code == 200

    missing_task = client.get(f"{F}/a/nested/tasks/nope")
    onresume_input = client.get(f"{F}/a/nested/tasks/answer")  # an input of the Pause, not a task
    missing_flow = client.get(f"{F}/a/absent/tasks/not-json")

    assert missing_task.status_code == 404 and "nope" in missing_task.text
    assert onresume_input.status_code == 404
    assert missing_flow.status_code == 404 and "a.absent" in missing_flow.text
