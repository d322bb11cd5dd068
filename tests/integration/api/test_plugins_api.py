"""The task catalogue over HTTP (Kestra's `/plugins` shapes): what the console's editor completes from."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.api.conftest import ADMIN


def test_plugins_list_every_offered_task_and_trigger_class_by_group(client: TestClient) -> None:
    response = client.get("/api/v1/main/plugins")

    assert response.status_code == 200, response.text
    groups = {g["group"]: g for g in response.json()}
    core = groups["io.kestra.plugin.core"]
    assert "io.kestra.plugin.core.log.Log" in core["tasks"] and "io.kestra.plugin.core.flow.If" in core["tasks"]
    assert "io.kestra.plugin.core.trigger.Schedule" in core["triggers"]
    offered = [cls for g in groups.values() for cls in g["tasks"]]
    # Canonical names only: legacy names validate but are not offered, nor the engine's internal types.
    assert "io.kestra.core.tasks.log.Log" not in offered
    assert not [cls for cls in offered if "$" in cls]
    assert client.get("/api/v1/plugins").json() == response.json()  # Kestra's tenant-less path too


def test_a_plugin_documents_its_properties_and_which_are_required(client: TestClient) -> None:
    doc = client.get("/api/v1/main/plugins/io.kestra.plugin.core.log.Log").json()

    schema = doc["schema"]["properties"]
    assert doc["cls"] == "io.kestra.plugin.core.log.Log" and doc["shortName"] == "Log"
    assert {"message", "level", "id", "type", "retry", "timeout"} <= set(schema["properties"])
    assert set(schema["required"]) == {"id", "type", "message"}
    # A flowable names its child task lists; a trigger its own properties.
    if_props = client.get("/api/v1/main/plugins/io.kestra.plugin.core.flow.If").json()["schema"]["properties"]
    assert {"condition", "then", "else"} <= set(if_props["properties"]) and "then" in if_props["required"]
    schedule = client.get("/api/v1/main/plugins/io.kestra.plugin.core.trigger.Schedule").json()
    assert schedule["kind"] == "trigger" and "cron" in schedule["schema"]["properties"]["properties"]
    # A legacy name documents its canonical type.
    assert client.get("/api/v1/main/plugins/io.kestra.core.tasks.log.Log").json()["cls"] == doc["cls"]


def test_an_unknown_plugin_is_404_naming_it(client: TestClient) -> None:
    response = client.get("/api/v1/main/plugins/io.kestra.plugin.core.log.Lgo")

    assert response.status_code == 404
    assert "io.kestra.plugin.core.log.Lgo" in response.json()["message"]


def test_the_catalogue_needs_a_signed_in_caller(auth_client: TestClient) -> None:
    assert auth_client.get("/api/v1/main/plugins").status_code == 401
    assert auth_client.get("/api/v1/main/plugins", auth=ADMIN).status_code == 200
