"""Flow-level `concurrency` admission: may an execution run now, or what does the flow's limit say?

Kestra checks the limit when an execution is created and, since kestra-io/kestra#10674, when a failed
execution is restarted (FlowConcurrencyCaseTest.flowConcurrencyQueueRestarted): a restart must not
exceed the limit any more than a new execution may.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator import store
from orchestrator.core.flow import Flow
from orchestrator.core.states import State
from orchestrator.store.database import Session

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

__all__ = ["admit"]

_OVER_LIMIT = {"QUEUE": State.QUEUED, "CANCEL": State.CANCELLED, "FAIL": State.FAILED}


def admit(engine: Engine, session: Session, flow: Flow, *, holding: int = 0) -> State:
    """RUNNING, or what the flow's `concurrency` says when its limit is reached (QUEUED, CANCELLED, FAILED).

    `holding` is how many of the flow's active executions are the one being admitted (1 for a restarted
    execution, which already counts as active), so that it does not count against itself.
    """
    store.note_flow(session, concurrency=flow.concurrency is not None)
    if flow.concurrency is None:
        return State.RUNNING
    tenant = engine.settings.tenant
    store.lock_flow_concurrency(session, tenant, flow.namespace, flow.id)
    active = store.count_active_executions(session, tenant, flow.namespace, flow.id) - holding
    if active < flow.concurrency.limit:
        return State.RUNNING
    return _OVER_LIMIT[flow.concurrency.behavior]
