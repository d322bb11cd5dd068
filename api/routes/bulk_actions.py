"""Kestra's bulk execution actions: `/executions/{action}/by-ids` (a JSON list of ids) and `/by-query` (the
executions search's filters) for kill, pause, resume, restart, replay, change-status, labels, unqueue, force-run.

As Kestra's ExecutionController: every execution is checked first (unknown or invisible: "execution not found";
a state the action refuses: why), a 400 lists each refused one and nothing is done; else the single-execution
engine operation runs on each (the engine audits each one) and the answer is `{"count": n}`.
These paths have literal segments where `POST /executions/{namespace}/{flowId}` has parameters: api/wiring.py
includes this router before the executions router so they are not read as "start flow `by-ids`".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import ActorDep, EngineDep, PrincipalDep, TenantDep, note
from api.errors import QueryInvalid, error_body
from api.permissions import Permission, allowed, require
from api.routes.actions import LabelPublic
from api.routes.executions import matching_executions
from orchestrator import store
from orchestrator.core.errors import ChorusError, InputInvalid, NotFound
from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.engine.accounts import Principal
from orchestrator.store.database import read_only

router = APIRouter(tags=["Executions"])

#: At most this many executions per request (by-ids body or by-query matches), as the bulk delete.
MAX_BULK = 10_000

BulkAnswer = Response | dict[str, object]


@dataclass(frozen=True)
class Action:
    """One bulk action: Kestra's name in "invalid bulk {name}", the permission it needs, the states it refuses."""

    name: str
    audit: str  #: the API audit event's action
    refusal: Callable[[State], str | None]
    permission: Permission = Permission.EXECUTION_CONTROL


def _not(wanted: State) -> Callable[[State], str | None]:
    return lambda state: None if state is wanted else f"execution not in state {wanted}"


KILL = Action("kill", "execution.kill", lambda s: "execution already finished" if s.is_terminal else None)
PAUSE = Action("pause", "execution.pause", _not(State.RUNNING))
RESUME = Action("resume", "execution.resume", _not(State.PAUSED), Permission.EXECUTION_RESUME)
RESTART = Action("restart", "execution.restart", _not(State.FAILED))  # Kestra's isFailed(): FAILED only
REPLAY = Action("replay", "execution.replay", lambda s: None)
CHANGE_STATUS = Action(
    "change execution status",
    "execution.change-status",
    lambda s: None if s.is_terminal else "execution not in a terminated state",
)
LABELS = Action("set labels", "execution.labels", lambda s: None if s.is_terminal else "execution is not terminated")
UNQUEUE = Action("unqueue", "execution.unqueue", _not(State.QUEUED))
FORCE_RUN = Action(
    "force run", "execution.force-run", lambda s: "execution in a terminated state" if s.is_terminal else None
)


def run_bulk(
    eng: Engine, request: Request, principal: Principal, ids: list[str], action: Action, act: Callable[[str], object]
) -> BulkAnswer:
    """Check every id, then `act` on each: a 400 naming every refused id (nothing done), else `{"count": n}`.

    A visible execution the caller may not act on is a 403 for the whole request. An execution whose state
    changed between the check and its turn (or that the engine refuses for its own reason) is left out of
    the count, as the others still go ahead, and listed under `skipped` with the reason (a field Kestra's
    answer does not have, present only when something was skipped).
    """
    note(request, action.audit, subject=",".join(ids)[:600])
    if len(ids) > MAX_BULK:
        raise QueryInvalid("body", f"at most {MAX_BULK} execution ids at once")
    invalids: list[dict[str, str]] = []
    with read_only(eng.sessions) as session:
        for execution_id in ids:
            row = store.get_execution(session, execution_id)
            if row is None or not allowed(principal, Permission.EXECUTION_READ, row.namespace):
                why: str | None = "execution not found"
            else:
                require(principal, action.permission, row.namespace)  # 403 on a visible one
                why = action.refusal(State(row.state))
            if why is not None:
                invalids.append({"path": "execution", "message": why, "invalidValue": execution_id})
    if invalids:
        body = error_body(request, 400, f"invalid bulk {action.name}", invalids)
        return JSONResponse({**body, "invalids": invalids}, status_code=400)
    done, skipped = act_on_each(ids, act)
    return {"count": done, "skipped": skipped} if skipped else {"count": done}


def act_on_each(ids: list[str], act: Callable[[str], object]) -> tuple[int, list[dict[str, str]]]:
    """`act` on every id; those the engine refuses at their turn (changed since the check: ended, deleted,
    no task to restart, ...) are skipped with the engine's reason, and the others still go ahead."""
    done, skipped = 0, []
    for execution_id in ids:
        try:
            act(execution_id)
        except ChorusError as refused:
            skipped.append({"id": execution_id, "message": str(refused)})
            continue
        done += 1
    return done, skipped


def _query_ids(eng: Engine, request: Request, tenant: str, principal: Principal) -> list[str]:
    """The ids `/executions/search` lists for this request's filters (legacy `namespace`/`state`/... or
    `filters[...]`), at most MAX_BULK of them."""
    with read_only(eng.sessions) as session:
        return [row.id for row in matching_executions(request, session, tenant, principal, limit=MAX_BULK)]


# ---- kill ---------------------------------------------------------------------------------------------


@router.delete("/executions/kill/by-ids", response_model=None)
def kill_by_ids(ids: list[str], request: Request, eng: EngineDep, principal: PrincipalDep, who: ActorDep) -> BulkAnswer:
    """Kill live executions (and their subflow executions, as a single kill does)."""
    return run_bulk(eng, request, principal, ids, KILL, lambda i: eng.kill(i, actor=who))


@router.delete("/executions/kill/by-query", response_model=None)
def kill_by_query(
    request: Request, tenant: TenantDep, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return kill_by_ids(_query_ids(eng, request, tenant, principal), request, eng, principal, who)


# ---- pause and resume ---------------------------------------------------------------------------------


@router.post("/executions/pause/by-ids", response_model=None)
def pause_by_ids(
    ids: list[str], request: Request, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return run_bulk(eng, request, principal, ids, PAUSE, lambda i: eng.pause(i, actor=who))


@router.post("/executions/pause/by-query", response_model=None)
def pause_by_query(
    request: Request, tenant: TenantDep, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return pause_by_ids(_query_ids(eng, request, tenant, principal), request, eng, principal, who)


@router.post("/executions/resume/by-ids", response_model=None)
def resume_by_ids(
    ids: list[str], request: Request, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    """Resume paused executions without inputs (Kestra's bulk resume sends none)."""
    return run_bulk(eng, request, principal, ids, RESUME, lambda i: eng.resume(i, {}, actor=who))


@router.post("/executions/resume/by-query", response_model=None)
def resume_by_query(
    request: Request, tenant: TenantDep, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return resume_by_ids(_query_ids(eng, request, tenant, principal), request, eng, principal, who)


# ---- restart and replay -------------------------------------------------------------------------------


@router.post("/executions/restart/by-ids", response_model=None)
def restart_by_ids(
    ids: list[str], request: Request, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return run_bulk(eng, request, principal, ids, RESTART, lambda i: eng.restart(i, actor=who))


@router.post("/executions/restart/by-query", response_model=None)
def restart_by_query(
    request: Request, tenant: TenantDep, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return restart_by_ids(_query_ids(eng, request, tenant, principal), request, eng, principal, who)


def _replay(eng: Engine, execution_id: str, *, latest_revision: bool, who: str) -> object:
    revision = None
    if latest_revision:  # the flow's newest revision rather than the one the execution ran
        with read_only(eng.sessions) as session:
            row = store.get_execution(session, execution_id)
            flow = store.latest_flow(session, row.tenant, row.namespace, row.flow_id) if row is not None else None
            if flow is None or flow.deleted:
                raise NotFound("flow", execution_id)
            revision = flow.revision
    return eng.replay(execution_id, task_run_id=None, revision=revision, actor=who)


@router.post("/executions/replay/by-ids", response_model=None)
def replay_by_ids(
    ids: list[str],
    request: Request,
    eng: EngineDep,
    principal: PrincipalDep,
    who: ActorDep,
    latestRevision: bool = False,  # Kestra's query parameter name
) -> BulkAnswer:
    """A new execution from each (from the start), on its revision or with `latestRevision` the flow's newest."""
    return run_bulk(
        eng, request, principal, ids, REPLAY, lambda i: _replay(eng, i, latest_revision=latestRevision, who=who)
    )


@router.post("/executions/replay/by-query", response_model=None)
def replay_by_query(
    request: Request,
    tenant: TenantDep,
    eng: EngineDep,
    principal: PrincipalDep,
    who: ActorDep,
    latestRevision: bool = False,
) -> BulkAnswer:
    ids = _query_ids(eng, request, tenant, principal)
    return replay_by_ids(ids, request, eng, principal, who, latestRevision)


# ---- change status and labels -------------------------------------------------------------------------

_NEW_STATUS = Query(description="The terminal state to give the executions (SUCCESS, WARNING, FAILED, ...).")


def _terminal(status: State) -> State:
    if not status.is_terminal:  # Kestra's IllegalArgumentException, answered 422
        raise QueryInvalid("newStatus", f"an execution can only be set to a terminal state, not {status}")
    return status


@router.post("/executions/change-status/by-ids", response_model=None)
def change_status_by_ids(
    ids: list[str],
    request: Request,
    eng: EngineDep,
    principal: PrincipalDep,
    who: ActorDep,
    newStatus: State = _NEW_STATUS,  # Kestra's query parameter name
) -> BulkAnswer:
    status = _terminal(newStatus)
    return run_bulk(eng, request, principal, ids, CHANGE_STATUS, lambda i: eng.change_status(i, status, actor=who))


@router.post("/executions/change-status/by-query", response_model=None)
def change_status_by_query(
    request: Request,
    tenant: TenantDep,
    eng: EngineDep,
    principal: PrincipalDep,
    who: ActorDep,
    newStatus: State = _NEW_STATUS,
) -> BulkAnswer:
    status = _terminal(newStatus)
    ids = _query_ids(eng, request, tenant, principal)
    return change_status_by_ids(ids, request, eng, principal, who, status)


class SetLabelsByIds(BaseModel):
    """Kestra's body for `/labels/by-ids`."""

    executionsId: list[str]  # Kestra's field names
    executionLabels: list[LabelPublic]


def _labels(labels: list[LabelPublic]) -> list[dict[str, str]]:
    reserved = [label.key for label in labels if label.key.startswith("system.")]
    if reserved:
        raise InputInvalid("executionLabels", f"labels {reserved} are reserved for the system")
    return [label.model_dump() for label in labels]


@router.post("/executions/labels/by-ids", response_model=None)
def set_labels_by_ids(
    body: SetLabelsByIds, request: Request, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    """Add or override labels of ended executions (Kestra refuses live ones here); `system.*` is refused."""
    labels = _labels(body.executionLabels)
    return run_bulk(eng, request, principal, body.executionsId, LABELS, lambda i: eng.set_labels(i, labels, actor=who))


@router.post("/executions/labels/by-query", response_model=None)
def set_labels_by_query(
    labels: list[LabelPublic],
    request: Request,
    tenant: TenantDep,
    eng: EngineDep,
    principal: PrincipalDep,
    who: ActorDep,
) -> BulkAnswer:
    _labels(labels)  # refused before the search
    ids = _query_ids(eng, request, tenant, principal)
    return set_labels_by_ids(SetLabelsByIds(executionsId=ids, executionLabels=labels), request, eng, principal, who)


# ---- concurrency queue: unqueue and force-run ---------------------------------------------------------


@router.post("/executions/unqueue/by-ids", response_model=None)
def unqueue_by_ids(
    ids: list[str], request: Request, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return run_bulk(eng, request, principal, ids, UNQUEUE, lambda i: eng.unqueue(i, actor=who))


@router.post("/executions/unqueue/by-query", response_model=None)
def unqueue_by_query(
    request: Request, tenant: TenantDep, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return unqueue_by_ids(_query_ids(eng, request, tenant, principal), request, eng, principal, who)


@router.post("/executions/force-run/by-ids", response_model=None)
def force_run_by_ids(
    ids: list[str], request: Request, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return run_bulk(eng, request, principal, ids, FORCE_RUN, lambda i: eng.force_run(i, actor=who))


@router.post("/executions/force-run/by-query", response_model=None)
def force_run_by_query(
    request: Request, tenant: TenantDep, eng: EngineDep, principal: PrincipalDep, who: ActorDep
) -> BulkAnswer:
    return force_run_by_ids(_query_ids(eng, request, tenant, principal), request, eng, principal, who)
