"""Plan -> Celery canvas: chains for sequences, chords for fan-outs, control signatures that expand at run time.

The compiler builds signatures and never sends them; it does not touch the database. Decisions about
what remains to run are taken by `orchestrator.core.plan`.
"""

from __future__ import annotations

from celery import Celery, chain, chord
from celery.canvas import Signature

from orchestrator.celery_app import CONTROL_QUEUE, ENTER_TASK_RUN, JOIN_TASK_RUN, RUN_TASK_RUN
from orchestrator.core.plan import Chain, Fanout, Join, PlanNode, Run


def run_kwargs(node: Run) -> dict[str, object]:
    return {
        "execution_id": node.execution_id,
        "task_id": node.task_id,
        "parent_id": node.parent_id,
        "iteration": node.iteration,
        "attempt": node.attempt,
    }


def to_canvas(app: Celery, node: PlanNode) -> Signature:
    """The Celery signature of a plan node (mutable: each link receives the previous link's verdict)."""
    if isinstance(node, Run):
        name = ENTER_TASK_RUN if node.enter else RUN_TASK_RUN
        queue = CONTROL_QUEUE if node.enter else node.pool
        return app.signature(name, kwargs=run_kwargs(node), queue=queue)
    if isinstance(node, Join):
        return app.signature(
            JOIN_TASK_RUN,
            kwargs={"execution_id": node.execution_id, "parent_id": node.parent_id},
            queue=CONTROL_QUEUE,
        )
    if isinstance(node, Chain):
        links = [to_canvas(app, item) for item in node.items]
        return links[0] if len(links) == 1 else chain(*links, app=app)
    if isinstance(node, Fanout):
        return chord([to_canvas(app, item) for item in node.items], to_canvas(app, node.join), app=app)
    raise TypeError(f"not a plan node: {node!r}")
