"""Plan -> Celery canvas: chains for sequences, chords for fan-outs, control signatures that expand at run time.

The compiler builds signatures and never sends them; it does not touch the database. Decisions about
what remains to run are taken by `orchestrator.core.plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery, chain, chord
from celery.canvas import Signature

from orchestrator.celery_app import (
    CONTROL_QUEUE,
    ENTER_TASK_RUN,
    JOIN_TASK_RUN,
    PLANNED_HEADER,
    RUN_INLINE,
    RUN_TASK_RUN,
)
from orchestrator.core.plan import Chain, Fanout, Join, PlanNode, Run


def _planned(app: Celery, name: str, kwargs: dict[str, object], queue: str) -> Signature:
    """A signature the planner sends: marked so a worker never takes it for a person's re-apply."""
    return app.signature(name, kwargs=kwargs, queue=queue, headers={PLANNED_HEADER: True})


def run_kwargs(node: Run) -> dict[str, object]:
    return {
        "execution_id": node.execution_id,
        "task_id": node.task_id,
        "parent_id": node.parent_id,
        "iteration": node.iteration,
        "attempt": node.attempt,
    }


#: Fan-out chunk size when the app carries none (an app not built by `create_celery_app`).
_DEFAULT_CHUNK = 50


def inline_kwargs(runs: list[Run], join: Join | None, *, independent: bool = False) -> dict[str, object]:
    """One message for consecutive inline task runs of one parent, and that parent's join when it follows.

    `independent`: the runs are siblings of a fan-out, not a sequence: one's failure stops none of the others.
    """
    kwargs: dict[str, object] = {
        "execution_id": runs[0].execution_id,
        "runs": [{k: v for k, v in run_kwargs(r).items() if k != "execution_id"} for r in runs],
        "join": join is not None,
    }
    if independent:
        kwargs["independent"] = True
    return kwargs


def _batched(app: Celery, items: tuple[PlanNode, ...]) -> list[Signature]:
    """A chain's links, with each stretch of inline runs (and a join right after them) made one link."""
    links: list[Signature] = []
    pending: list[Run] = []

    def flush(join: Join | None = None) -> None:
        if pending:
            links.append(_planned(app, RUN_INLINE, inline_kwargs(pending, join), CONTROL_QUEUE))
            pending.clear()

    for item in items:
        if isinstance(item, Run) and item.inline and (not pending or item.parent_id == pending[0].parent_id):
            pending.append(item)
            continue
        if isinstance(item, Join) and pending and item.parent_id == pending[0].parent_id:
            flush(item)
            continue
        flush()
        links.append(to_canvas(app, item))
    flush()
    return links


def _lone_inline(item: PlanNode) -> Run | None:
    """The inline run a fan-out branch consists of (a branch of one inline task), else None."""
    if isinstance(item, Chain) and len(item.items) == 1:
        item = item.items[0]
    return item if isinstance(item, Run) and item.inline else None


def _fanout_header(app: Celery, items: tuple[PlanNode, ...]) -> list[Signature]:
    """A chord's header: branches of one inline task go `chorus_fanout_chunk` to a message (1,000 one-message
    branches took 2.8x a raw chord's wall time); other branches keep a signature each."""
    chunk = int(app.conf.get("chorus_fanout_chunk") or _DEFAULT_CHUNK)
    header: list[Signature] = []
    lone: list[Run] = []
    for item in items:
        run = _lone_inline(item)
        if run is None or chunk == 1:
            header.append(to_canvas(app, item))
        else:
            lone.append(run)
    for start in range(0, len(lone), chunk):
        runs = lone[start : start + chunk]
        kwargs = inline_kwargs(runs, None, independent=len(runs) > 1)
        header.append(_planned(app, RUN_INLINE, kwargs, CONTROL_QUEUE))
    return header


def to_canvas(app: Celery, node: PlanNode) -> Signature:
    """The Celery signature of a plan node (mutable: each link receives the previous link's verdict)."""
    if isinstance(node, Run) and node.inline:
        return _planned(app, RUN_INLINE, inline_kwargs([node], None), CONTROL_QUEUE)
    if isinstance(node, Run):
        name = ENTER_TASK_RUN if node.enter else RUN_TASK_RUN
        queue = CONTROL_QUEUE if node.enter else node.pool
        return _planned(app, name, run_kwargs(node), queue)
    if isinstance(node, Join):
        return _planned(
            app, JOIN_TASK_RUN, {"execution_id": node.execution_id, "parent_id": node.parent_id}, CONTROL_QUEUE
        )
    if isinstance(node, Chain):
        links = _batched(app, node.items)
        for link in links[:-1]:
            # A link's verdict travels in the next link's message: a stored result would only fill Redis.
            # The last link keeps its result: it may be a chord member, whose result the chord counts.
            # Nested canvases are left as they are (a chord's options reach its body).
            if type(link) is Signature:
                link.set(ignore_result=True)
        return links[0] if len(links) == 1 else chain(*links, app=app)
    if isinstance(node, Fanout):
        return chord(_fanout_header(app, node.items), to_canvas(app, node.join), app=app)
    raise TypeError(f"not a plan node: {node!r}")


#: Options that tie a link to more than its chain: a chord counts it, a group names it, callbacks follow it.
_TIED = ("chord", "group_id", "link", "link_error", "immutable")


def chain_rest(execution_id: str, links: Sequence[Mapping[str, Any]]) -> list[tuple[PlanNode, ...]]:
    """The plan nodes of a chain's next links (in the order they run), one tuple per link: the inverse of
    `to_canvas` for the links a local drive may take over (an inline stretch with its join, a flowable's entry,
    a join) of `execution_id`.

    Stops at the first other link: a run on a worker pool, a nested canvas, a fan-out chunk, a link a chord
    counts or that carries callbacks (what follows it in Celery must still see it run).
    """
    found: list[tuple[PlanNode, ...]] = []
    for link in links:
        options = link.get("options") or {}
        kwargs = link.get("kwargs") or {}
        if (
            link.get("subtask_type")
            or link.get("immutable")
            or link.get("args")
            or any(options.get(key) for key in _TIED)
            or kwargs.get("execution_id") != execution_id
        ):
            break
        name = link.get("task")
        if name == RUN_INLINE and kwargs.get("runs") and not kwargs.get("independent"):
            runs = tuple(
                Run(
                    execution_id,
                    r["task_id"],
                    r.get("parent_id"),
                    r.get("iteration"),
                    int(r.get("attempt", 1)),
                    CONTROL_QUEUE,
                    enter=False,
                    inline=True,
                )
                for r in kwargs["runs"]
            )
            join = (Join(execution_id, runs[0].parent_id),) if kwargs.get("join") else ()
            found.append(runs + join)
        elif name == ENTER_TASK_RUN:
            task_id, parent_id, iteration = kwargs["task_id"], kwargs.get("parent_id"), kwargs.get("iteration")
            attempt = int(kwargs.get("attempt", 1))
            found.append((Run(execution_id, task_id, parent_id, iteration, attempt, CONTROL_QUEUE, enter=True),))
        elif name == JOIN_TASK_RUN:
            found.append((Join(execution_id, kwargs.get("parent_id")),))
        else:
            break
    return found
