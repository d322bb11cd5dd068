"""Tasks and functions of a flow in team.a that name team.b fail; the same within team.a (or granted) works.

Each test runs the task on the worker's production path (`run_claimed`) against a real database; team.c
grants team.a every use (`CHORUS_NAMESPACE_ACCESS={"team.c": ["team.a"]}`), team.b grants nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator import internal_storage as storage
from orchestrator.core.errors import ChorusError
from orchestrator.core.namespace_access import NamespaceAccessDenied
from orchestrator.core.states import State
from orchestrator.engine import Engine, TaskOutcome
from orchestrator.engine.audit_trail import ApiAction
from orchestrator.engine.kv import TypedValue
from orchestrator.store.database import transaction
from orchestrator.store.tables import ExecutionRow
from tests.harness.engines import EngineFactory
from tests.integration.workers.conftest import claim
from workers.attempts import run_claimed
from workers.context import TaskContext
from workers.functions import EngineFunctions
from workers.subflow import start_subflow

DENIED = "may not use namespace 'team.b'"
HIDDEN = "not found in the namespaces 'team.a' may use"

TARGET = """\
id: target
namespace: {ns}
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 * * *"
"""


@pytest.fixture
def engine(database_url: str, redis_url: str, tmp_path: Path, engine_factory: EngineFactory) -> Engine:
    eng = engine_factory(
        database_url, broker_url=redis_url, data_dir=tmp_path, namespace_access={"team.c": ["team.a"]}, pool_size=4
    )
    for namespace in ("team.a", "team.b", "team.c"):
        eng.deploy_flow(TARGET.format(ns=namespace), actor="t")
        audit = ApiAction(actor="t", client="t", action="kv.put", outcome="success", status=0)
        value = TypedValue("STRING", f"value of {namespace}")
        eng.kv.put(namespace, "k", value, ttl=None, description=None, audit=audit)
    return eng


def _flow(task_yaml: str) -> str:
    return f"id: sneaky\nnamespace: team.a\ntasks:\n  - id: t\n{task_yaml}\n"


def _run(engine: Engine, task_yaml: str, **kwargs: Any) -> TaskOutcome:
    return run_claimed(claim(_flow(task_yaml), "t", **kwargs), engine)


def _execution_of(engine: Engine, namespace: str) -> str:
    return engine.submit(namespace, "target", inputs={}, actor="t").id


def _failed_with(outcome: TaskOutcome, text: str, *, retryable: bool = False) -> None:
    assert outcome.state is State.FAILED, outcome
    assert outcome.error is not None and text in outcome.error, outcome.error
    assert outcome.retryable is retryable


# -- kv() and the KV tasks ----------------------------------------------------------------------------------
READ = "    type: io.kestra.plugin.core.debug.Return\n    format: \"{{{{ read('{uri}') }}}}\""
RETURN_KV = "    type: io.kestra.plugin.core.debug.Return\n    format: \"{{{{ kv('k', '{ns}') }}}}\""


def test_kv_function_on_another_namespace_fails(engine: Engine) -> None:
    _failed_with(_run(engine, RETURN_KV.format(ns="team.b")), DENIED)


def test_kv_function_cannot_be_hidden_behind_a_default(engine: Engine) -> None:
    task = "    type: io.kestra.plugin.core.debug.Return\n    format: \"{{ kv('k', 'team.b') ?? 'fallback' }}\""
    _failed_with(_run(engine, task), DENIED)


@pytest.mark.parametrize("namespace", ["team.a", "team.c"])
def test_kv_function_reads_its_own_or_a_granting_namespace(engine: Engine, namespace: str) -> None:
    outcome = _run(engine, RETURN_KV.format(ns=namespace))
    assert outcome.state is State.SUCCESS and outcome.outputs == {"value": f"value of {namespace}"}


@pytest.mark.parametrize("kind", ["Set\n    value: stolen", "Delete", "Get"], ids=["set", "delete", "get"])
def test_kv_tasks_on_another_namespace_fail_and_change_nothing(engine: Engine, kind: str) -> None:
    outcome = _run(engine, f"    type: io.kestra.plugin.core.kv.{kind}\n    namespace: team.b\n    key: k")

    _failed_with(outcome, DENIED)
    assert engine.kv.get("team.b", "k").value == {"v": "value of team.b"}


def test_kv_set_in_its_own_namespace_works(engine: Engine) -> None:
    outcome = _run(engine, "    type: io.kestra.plugin.core.kv.Set\n    key: k\n    value: mine")

    assert outcome.state is State.SUCCESS
    assert engine.kv.get("team.a", "k").value == {"v": "mine"}


# -- executions named by id ----------------------------------------------------------------------------------
FETCH = "    type: io.kestra.plugin.core.log.Fetch\n    executionId: {id}"
RESUME = "    type: io.kestra.plugin.core.execution.Resume\n    executionId: {id}"


def test_fetch_of_another_namespaces_execution_fails_as_not_found(engine: Engine) -> None:
    _failed_with(_run(engine, FETCH.format(id=_execution_of(engine, "team.b"))), HIDDEN)


def test_fetch_of_an_unknown_execution_fails_the_same_way(engine: Engine) -> None:
    _failed_with(_run(engine, FETCH.format(id="nosuchexecution")), HIDDEN)


def test_fetch_within_the_namespace_works(engine: Engine) -> None:
    outcome = _run(engine, FETCH.format(id=_execution_of(engine, "team.a")))
    assert outcome.state is State.SUCCESS
    assert outcome.outputs["size"] == 0 and outcome.outputs["logs"] == []  # and the lines' file, as in Kestra


def test_resume_of_another_namespaces_execution_fails_and_leaves_it_alone(engine: Engine) -> None:
    target = _execution_of(engine, "team.b")

    _failed_with(_run(engine, RESUME.format(id=target)), HIDDEN)
    with engine.sessions() as session:
        from orchestrator import store

        row = store.get_execution(session, target)
        assert row is not None and not any(h.get("actor", "").startswith("task:") for h in row.state_history)


def test_resume_within_the_namespace_reaches_the_engine(engine: Engine) -> None:
    outcome = _run(engine, RESUME.format(id=_execution_of(engine, "team.a")))
    # Not paused yet (no worker ran it): the engine's own answer, not a namespace denial.
    assert outcome.error is None or HIDDEN not in outcome.error


# -- Toggle, Subflow ----------------------------------------------------------------------------------------
TOGGLE = "    type: io.kestra.plugin.core.trigger.Toggle\n    namespace: {ns}\n    flowId: target\n    trigger: nightly"


def test_toggle_of_another_namespaces_trigger_fails(engine: Engine) -> None:
    _failed_with(_run(engine, TOGGLE.format(ns="team.b")), DENIED)


def test_toggle_of_a_granting_namespaces_trigger_works(engine: Engine) -> None:
    assert _run(engine, TOGGLE.format(ns="team.c")).state is State.SUCCESS


def _subflow_context(engine: Engine, namespace: str, extra: str = "") -> TaskContext:
    task = f"    type: io.kestra.plugin.core.flow.Subflow\n    namespace: {namespace}\n    flowId: target\n{extra}"
    claimed = claim(_flow(task), "t")
    return TaskContext(claimed, EngineFunctions(engine, claimed))


def test_subflow_of_another_namespace_is_refused_before_any_child_exists(engine: Engine) -> None:
    with pytest.raises(NamespaceAccessDenied, match=DENIED):
        start_subflow(_subflow_context(engine, "team.b"), engine)


@pytest.mark.parametrize("namespace", ["team.a", "team.c"])
def test_subflow_of_its_own_or_a_granting_namespace_passes_the_check(engine: Engine, namespace: str) -> None:
    start_subflow(_subflow_context(engine, namespace), engine)  # no parent row here: the engine stops quietly


# -- stored files ---------------------------------------------------------------------------------------------
def _file_of(engine: Engine, namespace: str) -> str:
    execution_id = _execution_of(engine, namespace)
    path = storage.execution_prefix(namespace, "target", execution_id) / "inputs" / "f" / "data.txt"
    return storage.write(engine.settings.data_dir, path, f"data of {namespace}".encode())


def test_read_of_another_namespaces_file_fails(engine: Engine) -> None:
    uri = _file_of(engine, "team.b")
    outcome = _run(engine, READ.format(uri=uri))
    _failed_with(outcome, "does not belong to this execution", retryable=True)  # read()'s errors are a render's


def test_read_of_a_parent_in_another_namespace_fails(engine: Engine) -> None:
    uri = _file_of(engine, "team.b")
    execution_id = uri.split("/executions/")[1].split("/")[0]
    trigger = {"namespace": "team.b", "flowId": "target", "executionId": execution_id}
    outcome = _run(engine, READ.format(uri=uri), trigger=trigger)
    _failed_with(outcome, "does not belong to this execution", retryable=True)  # read()'s errors are a render's


def _child_file(engine: Engine, namespace: str, parent_id: str, *, subflow: bool) -> str:
    """A file of an execution of `namespace` whose parent is `parent_id` (through a Subflow task run or not)."""
    uri = _file_of(engine, namespace)
    child_id = uri.split("/executions/")[1].split("/")[0]
    with transaction(engine.sessions) as session:
        row = session.get(ExecutionRow, child_id)
        assert row is not None
        row.parent_execution_id = parent_id
        row.parent_task_run_id = "subflow-task-run" if subflow else None
    return uri


@pytest.mark.parametrize("namespace", ["team.a", "team.c"])
def test_read_of_a_subflow_childs_output_file_passes(engine: Engine, namespace: str) -> None:
    # RetryCaseTest#retryNewExecutionSubflowOutputs: the parent reads the FILE output of the child it started
    parent_id = _execution_of(engine, "team.a")
    uri = _child_file(engine, namespace, parent_id, subflow=True)

    outcome = run_claimed(claim(_flow(READ.format(uri=uri)), "t", execution_id=parent_id), engine)

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs == {"value": f"data of {namespace}"}


def test_read_of_a_child_in_a_namespace_it_may_not_read_or_of_a_replay_fails(engine: Engine) -> None:
    parent_id = _execution_of(engine, "team.a")
    denied = _child_file(engine, "team.b", parent_id, subflow=True)
    replay = _child_file(engine, "team.a", parent_id, subflow=False)  # a replay names its source as parent

    for uri in (denied, replay):
        outcome = run_claimed(claim(_flow(READ.format(uri=uri)), "t", execution_id=parent_id), engine)
        _failed_with(outcome, "does not belong to this execution", retryable=True)


SCRIPT = (
    "    type: io.kestra.plugin.scripts.shell.Commands\n"
    "    inputFiles:\n      in.txt: {uri}\n    commands: [cat in.txt]"
)


def test_script_input_files_from_another_namespace_fail(engine: Engine) -> None:
    _failed_with(_run(engine, SCRIPT.format(uri=_file_of(engine, "team.b"))), "is not a file of an execution")


@pytest.mark.parametrize("namespace", ["team.a", "team.c"])
def test_script_input_files_of_its_own_or_a_granting_namespace_work(engine: Engine, namespace: str) -> None:
    outcome = _run(engine, SCRIPT.format(uri=_file_of(engine, namespace)))
    assert outcome.state is State.SUCCESS, outcome.error
    assert any(f"data of {namespace}" in record.message for record in outcome.logs)


def test_a_uri_dressed_as_own_namespace_by_path_games_is_refused(engine: Engine) -> None:
    # team.b's flow "target" lives at /team/b/target/...; no prefix trick makes it team.a's.
    uri = _file_of(engine, "team.b").replace("kestra:///team/b/", "kestra:///team/a/../b/")
    _failed_with(_run(engine, SCRIPT.format(uri=uri)), "invalid internal storage URI")


def test_the_engine_reports_unknown_executions_as_none(engine: Engine) -> None:
    assert engine.execution_location("nosuchexecution") is None
    with pytest.raises(ChorusError):
        engine.kv.get("team.b", "missing")
