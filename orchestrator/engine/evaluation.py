"""Render an expression in the context of one task run of an execution (Kestra's `POST .../eval/{taskRunId}`).

Kestra's ExecutionController.eval builds the run context of that task run (its `taskrun`, `parents`, the
execution's `outputs`, `inputs`, `vars`, `labels`, ...) and renders the posted text. The answer is
`{result}` or, when rendering fails, `{error, stackTrace}`: a bad expression is the caller's answer, not
an HTTP error. Nothing is written. Functions that reach outside the execution (`secret()`, `kv()`,
`read()`) are not given: they fail with "not available here", so evaluating needs no more than reading;
and SECRET inputs are the mask the API shows for them (DESIGN invariant 8), never their value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core.errors import ExpressionError, NotFound
from orchestrator.core.expressions import render
from orchestrator.core.flow import Flow, InputType
from orchestrator.engine.variables import execution_variables
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine


def evaluate(
    engine: Engine, session: Session, execution: ExecutionRow, task_run_id: str, expression: str
) -> dict[str, Any]:
    runs = store.task_runs_for_variables(session, execution.id)
    run = next((r for r in runs if r.id == task_run_id), None)
    if run is None:
        raise NotFound("task run", task_run_id, why=f"execution {execution.id} has no task run with this id")
    row = store.latest_flow(
        session, execution.tenant, execution.namespace, execution.flow_id, revision=execution.flow_revision
    )
    if row is None:
        raise NotFound("flow", f"{execution.namespace}.{execution.flow_id} revision {execution.flow_revision}")
    flow = engine.flow_of(row)
    try:
        task = flow.task(run.task_id)
    except KeyError:
        raise NotFound(
            "task", run.task_id, why=f"flow {flow.key} revision {execution.flow_revision} has no such task"
        ) from None
    variables = execution_variables(execution, flow, task, run, runs)
    variables["inputs"] = _secret_inputs_masked(flow, variables.get("inputs") or {})
    variables["envs"], variables["globals"] = dict(engine.settings.envs), dict(engine.settings.globals_)
    try:
        return {"result": render(expression, variables)}
    except ExpressionError as e:
        # Kestra sends its Java stack trace; the message is what a caller can use, and no server internals leak.
        return {"result": None, "error": str(e), "stackTrace": f"{type(e).__name__}: {e}"}


#: What a SECRET input renders as here: the mask the API's execution answers show.
SECRET_MASK = "******"


def _secret_inputs_masked(flow: Flow, inputs: dict[str, Any]) -> dict[str, Any]:
    secret = {i.id for i in flow.inputs if i.type is InputType.SECRET}
    return {k: (SECRET_MASK if k in secret and v is not None else v) for k, v in inputs.items()}
