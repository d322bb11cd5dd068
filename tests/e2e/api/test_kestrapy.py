"""Kestra's own Python SDK (kestrapy 2.0.3) against Chorus, unchanged, authenticated with Basic and Bearer."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    # kestrapy's generated models shadow pydantic attributes and say so at import.
    warnings.simplefilter("ignore")
    from kestrapy import Configuration, KestraClient, StateType
    from kestrapy.exceptions import ApiException, UnauthorizedException
    from kestrapy.models import QueryFilter, QueryFilterField, QueryFilterOp

from tests.e2e.api.conftest import ADMIN, Server

TENANT = "main"
FLOW = """
id: hello
namespace: {ns}
inputs:
  - id: greeting
    type: STRING
  - id: times
    type: INT
    defaults: 1
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ inputs.greeting }}}} x{{{{ inputs.times }}}}"
  - id: answer
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.greeting | upper }}}}"
"""


@pytest.fixture
def namespace() -> str:
    return f"tests.kestrapy.n{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kestra(auth_server: Server) -> Iterator[KestraClient]:
    client = KestraClient(Configuration(host=auth_server.url, username=ADMIN[0], password=ADMIN[1]))
    yield client
    client.close()


def _state(execution: object) -> object:
    return getattr(getattr(execution, "state", None), "current", None)


def test_create_a_flow_run_it_with_inputs_and_read_the_execution(kestra: KestraClient, namespace: str) -> None:
    flow = kestra.flows.create_flow(TENANT, FLOW.format(ns=namespace))
    assert (flow.id, flow.revision, flow.deleted) == ("hello", 1, False)

    created = kestra.executions.create_execution(
        TENANT, namespace, "hello", wait=True, labels=["team:ai"], inputs={"greeting": "hi", "times": 3}
    )
    execution = kestra.executions.execution(created.id, TENANT)

    assert _state(execution) == StateType.SUCCESS
    assert execution.inputs == {"greeting": "hi", "times": 3}
    assert [(t.task_id, t.state.current) for t in execution.task_run_list] == [
        ("say", StateType.SUCCESS),
        ("answer", StateType.SUCCESS),
    ]
    logs = kestra.logs.list_logs_from_execution(created.id, TENANT, min_level="INFO")
    assert [(log.task_id, log.message) for log in logs] == [("say", "hi x3")]


def test_creating_an_existing_flow_is_422_and_updating_it_counts_revisions(
    kestra: KestraClient, namespace: str
) -> None:
    kestra.flows.create_flow(TENANT, FLOW.format(ns=namespace))
    with pytest.raises(ApiException) as caught:
        kestra.flows.create_flow(TENANT, FLOW.format(ns=namespace))
    assert caught.value.status == 422

    updated = kestra.flows.update_flow(namespace, "hello", TENANT, FLOW.format(ns=namespace) + "description: v2\n")

    assert updated.revision == 2


def test_follow_streams_the_execution_until_it_ends(kestra: KestraClient, namespace: str) -> None:
    kestra.flows.create_flow(TENANT, FLOW.format(ns=namespace))
    created = kestra.executions.create_execution(TENANT, namespace, "hello", inputs={"greeting": "yo"})

    states = [_state(event) for event in kestra.executions.follow_execution(created.id, TENANT)]

    assert states[0] is None  # the `start` event carries only the id
    assert states[-1] == StateType.SUCCESS


def test_set_and_get_kv_values_with_their_types(kestra: KestraClient, namespace: str) -> None:
    kestra.kv.set_key_value(namespace, "threshold", TENANT, "42")
    kestra.kv.set_key_value(namespace, "name", TENANT, '"Ada"')

    number = kestra.kv.key_value(namespace, "threshold", TENANT)
    text = kestra.kv.key_value(namespace, "name", TENANT)

    assert (number.type, number.value) == ("NUMBER", 42)
    assert (text.type, text.value) == ("STRING", "Ada")


def test_search_executions_by_label(kestra: KestraClient, namespace: str) -> None:
    kestra.flows.create_flow(TENANT, FLOW.format(ns=namespace))
    tagged = kestra.executions.create_execution(
        TENANT, namespace, "hello", labels=["run:tagged"], inputs={"greeting": "a"}
    )
    kestra.executions.create_execution(TENANT, namespace, "hello", labels=["run:other"], inputs={"greeting": "b"})

    found = kestra.executions.search_executions(
        TENANT,
        page=1,
        size=10,
        filters=[
            QueryFilter(field=QueryFilterField.NAMESPACE, operation=QueryFilterOp.EQUALS, value=namespace),
            QueryFilter(field=QueryFilterField.LABELS, operation=QueryFilterOp.EQUALS, value={"run": "tagged"}),
        ],
    )

    assert [r["id"] for r in found["results"]] == [tagged.id]


def test_a_bearer_token_works_and_bad_credentials_are_refused(auth_server: Server, namespace: str) -> None:
    token = auth_server.api.post("/tokens", json={"name": f"sdk-{namespace}"}).json()["token"]
    with KestraClient(host=auth_server.url, token=token) as by_token:
        assert by_token.flows.search_flows(TENANT, page=1, size=1) is not None
    wrong = KestraClient(Configuration(host=auth_server.url, username=ADMIN[0], password="wrong"))
    with wrong, pytest.raises(UnauthorizedException):
        wrong.flows.search_flows(TENANT, page=1, size=1)


APPROVAL = """
id: approval
namespace: {ns}
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: reason
        type: STRING
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.approve.onResume.reason }}}}"
"""

FAILING = """
id: failing
namespace: {ns}
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: boom
"""


def _wait(kestra: KestraClient, execution_id: str, wanted: set[object]) -> object:
    for event in kestra.executions.follow_execution(execution_id, TENANT):
        if _state(event) in wanted:
            return event
    return kestra.executions.execution(execution_id, TENANT)


def test_resume_a_paused_execution_with_on_resume_inputs(kestra: KestraClient, namespace: str) -> None:
    kestra.flows.create_flow(TENANT, APPROVAL.format(ns=namespace))
    created = kestra.executions.create_execution(TENANT, namespace, "approval")
    assert _state(_wait(kestra, created.id, {StateType.PAUSED})) == StateType.PAUSED

    resumed = kestra.executions.resume_execution(created.id, TENANT, inputs={"reason": "approved"})
    done = _wait(kestra, resumed.id, {StateType.SUCCESS, StateType.FAILED})

    assert _state(done) == StateType.SUCCESS
    runs = {t.task_id: t for t in kestra.executions.execution(created.id, TENANT).task_run_list}
    assert runs["after"].additional_properties["outputs"] == {"value": "approved"}


def test_kill_a_paused_execution(kestra: KestraClient, namespace: str) -> None:
    kestra.flows.create_flow(TENANT, APPROVAL.format(ns=namespace))
    created = kestra.executions.create_execution(TENANT, namespace, "approval")
    _wait(kestra, created.id, {StateType.PAUSED})

    kestra.executions.kill_execution(created.id, TENANT)

    assert _state(_wait(kestra, created.id, {StateType.KILLED})) == StateType.KILLED


def test_restart_a_failed_execution_keeps_its_id(kestra: KestraClient, namespace: str) -> None:
    kestra.flows.create_flow(TENANT, FAILING.format(ns=namespace))
    created = kestra.executions.create_execution(TENANT, namespace, "failing", wait=True)
    assert _state(kestra.executions.execution(created.id, TENANT)) == StateType.FAILED

    restarted = kestra.executions.restart_execution(created.id, TENANT)

    assert restarted.id == created.id
    assert _state(_wait(kestra, created.id, {StateType.FAILED, StateType.SUCCESS})) == StateType.FAILED
    attempts = kestra.executions.execution(created.id, TENANT).task_run_list[0].attempts
    assert len(attempts) == 2
