"""Replay and hand-set task-run states, through the HTTP API, on the real stack."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

THREE_STEPS = """
id: three-steps
namespace: {ns}
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "one"
  - id: second
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "second refuses"
  - id: third
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.first.value }} then three"
"""


def _failed_run(stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], namespace: str) -> dict[str, Any]:
    deploy_flow(THREE_STEPS)
    execution = stack.wait_for_state(stack.run(namespace, "three-steps")["id"])
    assert execution["state"]["current"] == "FAILED"
    return execution


def test_replay_from_a_task_run_keeps_what_ran_before_it(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    original = _failed_run(stack, deploy_flow, unique_namespace)
    second = next(t for t in original["taskRunList"] if t["taskId"] == "second")

    replayed = stack.api.post(f"/executions/{original['id']}/actions/replay", params={"taskRunId": second["id"]})

    assert replayed.status_code == 200, replayed.text
    new = stack.wait_for_state(replayed.json()["id"])
    assert new["id"] != original["id"]
    assert new["originalId"] == original["id"] and new["parentId"] == original["id"]
    runs = {t["taskId"]: t for t in new["taskRunList"]}
    assert runs["first"]["outputs"] == {"value": "one"}  # copied, not run again
    assert runs["second"]["state"]["current"] == "FAILED"  # ran again (and failed again)
    labels = {label["key"]: label["value"] for label in stack.api.get(f"/executions/{original['id']}").json()["labels"]}
    assert labels["system.replayed"] == "true"


def test_replaying_an_unknown_task_run_is_422_as_in_kestra(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """Kestra's ExecutionControllerTest.restartFromUnknownTaskId: 422, "No task found"."""
    original = _failed_run(stack, deploy_flow, unique_namespace)

    response = stack.api.post(f"/executions/{original['id']}/actions/replay", params={"taskRunId": "nope"})

    assert response.status_code == 422
    assert "No task found" in response.json()["message"]
    assert response.json()["_embedded"]["errors"][0]["path"] == "taskRunId"


def test_setting_a_failed_task_run_to_success_lets_the_flow_continue(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    original = _failed_run(stack, deploy_flow, unique_namespace)
    second = next(t for t in original["taskRunList"] if t["taskId"] == "second")

    response = stack.api.post(
        f"/executions/{original['id']}/actions/state", json={"taskRunId": second["id"], "state": "SUCCESS"}
    )

    assert response.status_code == 200, response.text
    done = stack.wait_for_state(original["id"], {"SUCCESS"})
    runs = {t["taskId"]: t for t in done["taskRunList"]}
    assert runs["third"]["outputs"] == {"value": "one then three"}
    audit = stack.api.get(f"/executions/{original['id']}/audit").json()
    assert any(e["action"] == "task_run.state_changed" for e in audit["events"]) and audit["verified"]


def test_a_running_task_run_cannot_be_set_by_hand(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    original = _failed_run(stack, deploy_flow, unique_namespace)
    first = next(t for t in original["taskRunList"] if t["taskId"] == "first")

    response = stack.api.post(
        f"/executions/{original['id']}/actions/state", json={"taskRunId": first["id"], "state": "RUNNING"}
    )

    assert response.status_code == 409


FILE_INPUT = """
id: file-input
namespace: {ns}
inputs:
  - id: report
    type: FILE
tasks:
  - id: where
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.report }}"
"""


def test_an_uploaded_file_input_is_stored_and_its_uri_given_to_the_flow(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FILE_INPUT)
    response = stack.api.post(
        f"/executions/{unique_namespace}/file-input", files={"report": ("report.csv", b"a,b\n1,2\n", "text/csv")}
    )
    assert response.status_code == 200, response.text

    execution = stack.wait_for_state(response.json()["id"])

    uri = execution["inputs"]["report"]
    assert uri.startswith("kestra:///") and uri.endswith(f"/executions/{execution['id']}/inputs/report/report.csv")
    assert execution["taskRunList"][0]["outputs"] == {"value": uri}
    stored = stack.settings.data_dir / "storage" / uri.removeprefix("kestra:///")
    assert stored.read_bytes() == b"a,b\n1,2\n"


FLOW_NAMED_PAUSE = """
id: pause
namespace: {ns}
tasks:
  - id: only
    type: io.kestra.plugin.core.debug.Return
    format: "a flow named like an action"
"""


def test_a_flow_named_like_a_legacy_action_can_still_be_started(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FLOW_NAMED_PAUSE)

    response = stack.api.post(f"/executions/{unique_namespace}/pause")

    assert response.status_code == 200, response.text
    execution = stack.wait_for_state(response.json()["id"])
    assert (execution["flowId"], execution["state"]["current"]) == ("pause", "SUCCESS")


def test_the_legacy_pause_action_still_pauses_a_real_execution_id(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(THREE_STEPS)
    finished = stack.wait_for_state(stack.run(unique_namespace, "three-steps")["id"])

    response = stack.api.post(f"/executions/{finished['id']}/pause")

    assert response.status_code == 409  # an ended execution cannot be paused: the action answered, not a create


SECRET_INPUT = """
id: secret-input
namespace: {ns}
inputs:
  - id: password
    type: SECRET
tasks:
  - id: use
    type: io.kestra.plugin.core.log.Log
    message: "logging in with {{ inputs.password }}"
"""


def test_a_secret_input_never_leaves_in_clear(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SECRET_INPUT)

    execution = stack.wait_for_state(stack.run(unique_namespace, "secret-input", password="hunter22")["id"])

    assert execution["state"]["current"] == "SUCCESS"
    assert execution["inputs"] == {"password": "******"}
    logs = stack.api.get(f"/logs/{execution['id']}").json()
    assert [entry["message"] for entry in logs] == ["logging in with ********"]
    audit = stack.api.get(f"/executions/{execution['id']}/audit").text
    assert "hunter22" not in audit


def test_labels_can_be_set_on_an_ended_execution_but_not_system_ones(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    original = _failed_run(stack, deploy_flow, unique_namespace)

    ok = stack.api.post(f"/executions/{original['id']}/actions/labels", json=[{"key": "triaged", "value": "yes"}])
    refused = stack.api.post(f"/executions/{original['id']}/labels", json=[{"key": "system.x", "value": "1"}])

    assert ok.status_code == 200 and {"key": "triaged", "value": "yes"} in ok.json()["labels"]
    assert refused.status_code == 422 and "system.x" in refused.text


SLA = """
id: sla-{behavior}
namespace: {ns}
sla:
  - id: quick
    type: MAX_DURATION
    behavior: {behavior}
    duration: PT1S
    labels:
      sla: breached
tasks:
  - id: slow
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT4S
"""


def test_an_execution_past_its_sla_max_duration_is_failed_and_labelled(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLA.replace("{behavior}", "FAIL"))

    done = stack.wait_for_state(stack.run(unique_namespace, "sla-FAIL")["id"])

    assert done["state"]["current"] == "FAILED"
    assert done["taskRunList"][0]["state"]["current"] == "KILLED"
    assert {"key": "sla", "value": "breached"} in done["labels"]
    audit = stack.api.get(f"/executions/{done['id']}/audit").json()
    assert any(e["actor"] == "system:sla" and e["action"] == "execution.failed" for e in audit["events"])


def test_an_sla_with_behavior_cancel_cancels_the_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLA.replace("{behavior}", "CANCEL"))

    done = stack.wait_for_state(stack.run(unique_namespace, "sla-CANCEL")["id"])

    assert done["state"]["current"] == "CANCELLED"


ENVS_AND_GLOBALS = """
id: envs-globals
namespace: {ns}
variables:
  first: "1"
  second: "{{ vars.first }} > 2"
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ envs.chorus_e2e }} / {{ globals.team }} {{ globals.nested.n }} / {{ render(vars.second) }}"
"""


def test_flows_read_prefixed_environment_variables_and_server_globals(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(ENVS_AND_GLOBALS)

    done = stack.wait_for_state(stack.run(unique_namespace, "envs-globals")["id"])

    assert done["taskRunList"][0]["outputs"] == {"value": "from the environment / platform 2 / 1 > 2"}
