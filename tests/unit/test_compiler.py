"""Plan -> canvas: inline task runs of one parent, and the join right after them, become one message."""

from __future__ import annotations

import json
from typing import Any

from celery import Celery
from celery.canvas import Signature, _chain, chord

from orchestrator.celery_app import ENTER_TASK_RUN, JOIN_TASK_RUN, RUN_INLINE, RUN_TASK_RUN
from orchestrator.core.plan import Chain, Fanout, Join, Run
from orchestrator.engine.compiler import chain_rest, to_canvas

EX = "exec1"
APP = Celery("compiler-test", set_as_current=False)  # builds signatures only; never connects


def inline(task_id: str, parent: str | None = None) -> Run:
    return Run(EX, task_id, parent, None, 1, "control", enter=False, inline=True)


def io(task_id: str) -> Run:
    return Run(EX, task_id, None, None, 1, "io", enter=False)


def runs(*task_ids: str, parent: str | None = None) -> list[dict[str, Any]]:
    return [{"task_id": t, "parent_id": parent, "iteration": None, "attempt": 1} for t in task_ids]


def links(signature: Signature) -> list[tuple[str, dict[str, Any]]]:
    tasks = signature.tasks if isinstance(signature, _chain) else [signature]
    return [(t.task, dict(t.kwargs)) for t in tasks]


def test_a_flow_of_inline_tasks_is_one_message_that_also_joins_the_execution() -> None:
    canvas = to_canvas(APP, Chain((inline("a"), inline("b"), inline("c"), Join(EX, None))))

    assert links(canvas) == [(RUN_INLINE, {"execution_id": EX, "runs": runs("a", "b", "c"), "join": True})]
    assert canvas.options["queue"] == "control"


def test_a_task_of_another_pool_splits_the_inline_stretches_and_keeps_its_queue() -> None:
    canvas = to_canvas(APP, Chain((inline("a"), inline("b"), io("call"), inline("c"), Join(EX, None))))

    assert [name for name, _ in links(canvas)] == [RUN_INLINE, RUN_TASK_RUN, RUN_INLINE]
    first, call, last = links(canvas)
    assert first[1] == {"execution_id": EX, "runs": runs("a", "b"), "join": False}
    assert call[1]["task_id"] == "call"
    assert canvas.tasks[1].options["queue"] == "io"
    assert last[1] == {"execution_id": EX, "runs": runs("c"), "join": True}


def test_a_join_after_a_non_inline_task_stays_its_own_link() -> None:
    canvas = to_canvas(APP, Chain((inline("a"), io("call"), Join(EX, None))))

    assert [name for name, _ in links(canvas)] == [RUN_INLINE, RUN_TASK_RUN, JOIN_TASK_RUN]


def test_a_flowable_is_entered_by_its_own_message_between_inline_stretches() -> None:
    flowable = Run(EX, "if", None, None, 1, "control", enter=True)
    canvas = to_canvas(APP, Chain((inline("a"), flowable, inline("b"), Join(EX, None))))

    assert [name for name, _ in links(canvas)] == [RUN_INLINE, ENTER_TASK_RUN, RUN_INLINE]


def test_fan_out_branches_run_inline_without_a_join_and_the_chord_body_joins_their_parent() -> None:
    canvas = to_canvas(APP, Fanout((inline("x", "par"), inline("y", "par")), Join(EX, "par")))

    assert isinstance(canvas, chord)
    assert [(t.task, dict(t.kwargs)) for t in canvas.tasks] == [
        (RUN_INLINE, {"execution_id": EX, "runs": runs("x", "y", parent="par"), "join": False, "independent": True}),
    ]
    assert canvas.body.task == JOIN_TASK_RUN


def chunked_app(chunk: int) -> Celery:
    app = Celery(f"compiler-test-{chunk}", set_as_current=False)
    app.conf.chorus_fanout_chunk = chunk
    return app


def test_a_wide_fan_out_of_inline_branches_sends_one_independent_message_per_chunk() -> None:
    branches = tuple(Chain((inline(f"t{i}", "par"),)) for i in range(7))
    canvas = to_canvas(chunked_app(3), Fanout(branches, Join(EX, "par")))

    assert isinstance(canvas, chord)
    assert [len(t.kwargs["runs"]) for t in canvas.tasks] == [3, 3, 1]
    assert [t.kwargs.get("independent", False) for t in canvas.tasks] == [True, True, False]
    assert [r["task_id"] for t in canvas.tasks for r in t.kwargs["runs"]] == [f"t{i}" for i in range(7)]
    assert all(t.options["queue"] == "control" for t in canvas.tasks)


def test_fan_out_branches_that_are_not_lone_inline_tasks_keep_a_message_each() -> None:
    sequence = Chain((inline("a", "par"), inline("b", "par")))
    flowable = Run(EX, "if", "par", None, 1, "control", enter=True)
    canvas = to_canvas(chunked_app(50), Fanout((sequence, io("call"), flowable, inline("x", "par")), Join(EX, "par")))

    assert [(t.task, t.kwargs.get("independent", False)) for t in canvas.tasks] == [
        (RUN_INLINE, False),  # a sequence stops at its first failure: never independent
        (RUN_TASK_RUN, False),
        (ENTER_TASK_RUN, False),
        (RUN_INLINE, False),
    ]
    assert [r["task_id"] for r in canvas.tasks[0].kwargs["runs"]] == ["a", "b"]


def test_a_chunk_of_one_sends_one_message_per_branch_as_before() -> None:
    canvas = to_canvas(chunked_app(1), Fanout((inline("x", "par"), inline("y", "par")), Join(EX, "par")))

    assert [dict(t.kwargs) for t in canvas.tasks] == [
        {"execution_id": EX, "runs": runs("x", parent="par"), "join": False},
        {"execution_id": EX, "runs": runs("y", parent="par"), "join": False},
    ]


def test_chain_links_but_the_last_store_no_result_and_chord_members_keep_theirs() -> None:
    canvas = to_canvas(APP, Chain((inline("a"), io("call"), Join(EX, None))))

    assert [t.options.get("ignore_result", False) for t in canvas.tasks] == [True, True, False]
    branch = Chain(
        (
            io(
                "call",
            ),
            Join(EX, "par"),
        )
    )
    fanout = to_canvas(APP, Fanout((branch, io("other")), Join(EX, "par")))
    assert [t.options.get("ignore_result", False) for t in fanout.tasks[0].tasks] == [True, False]
    assert fanout.tasks[1].options.get("ignore_result", False) is False
    assert fanout.body.options.get("ignore_result", False) is False


# ---- chain_rest: the links after a task run that its finish may run itself ---------------------------


def _as_sent(signature: Signature) -> list[dict[str, Any]]:
    """A chain's links after its first, as Celery hands them to that first link's worker (`request.chain`),
    in the order they run, and through JSON as a message carries them."""
    tasks = signature.tasks if isinstance(signature, _chain) else [signature]
    return [json.loads(json.dumps(dict(t))) for t in tasks[1:]]


def test_the_rest_of_a_chain_after_a_pool_task_reads_back_as_the_plan_it_was_compiled_from() -> None:
    enter = Run(EX, "if", None, None, 1, "control", enter=True)
    plan = Chain((io("call"), inline("a"), inline("b"), enter, Join(EX, None)))

    rest = chain_rest(EX, _as_sent(to_canvas(APP, plan)))

    assert rest == [(inline("a"), inline("b")), (enter,), (Join(EX, None),)]


def test_the_rest_stops_at_a_pool_task_another_execution_a_chord_member_or_a_fanout_chunk() -> None:
    sent = _as_sent(to_canvas(APP, Chain((io("call"), inline("a"), io("next"), inline("b"), Join(EX, None)))))
    assert chain_rest(EX, sent) == [(inline("a"),)]  # the second io task stops it: only a worker of io runs it
    assert chain_rest("another", sent) == []
    member = {**sent[0], "options": {**sent[0]["options"], "chord": {"task": JOIN_TASK_RUN}}}
    assert chain_rest(EX, [member]) == []  # a chord counts that link: it must run as a message
    chunk = {**sent[0], "kwargs": {**sent[0]["kwargs"], "independent": True}}
    assert chain_rest(EX, [chunk]) == []
    nested = {**sent[0], "subtask_type": "chord"}
    assert chain_rest(EX, [nested]) == []
