"""What a paused task run's wake-up and a reviewer's decision write: Pause behaviours, Approval expiry."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.states import State
from orchestrator.engine import approval_tasks
from orchestrator.store.tables import TaskRunRow


def _row(decision: dict[str, Any], outputs: dict[str, Any] | None = None) -> TaskRunRow:
    return TaskRunRow(id="r", execution_id="e", task_id="t", decision=decision, outputs=outputs)


@pytest.mark.parametrize(
    ("behavior", "state", "to", "ending"),
    [
        ("RESUME", State.RUNNING, "SUCCESS", None),
        ("WARN", State.RUNNING, "WARNING", None),
        ("FAIL", State.FAILED, "FAILED", None),
        ("CANCEL", State.CANCELLED, "CANCELLED", State.CANCELLED),
    ],
)
def test_a_pause_duration_that_passed_applies_the_behavior(
    behavior: str, state: State, to: str, ending: State | None
) -> None:
    row = _row({"branch": "onPause", "awaiting": True, "on_due": "resume", "behavior": behavior})

    new_state, values, end = approval_tasks.wake(row)

    assert (new_state, end) == (state, ending)
    assert values["outputs"]["resumed"]["to"] == to and values["outputs"]["resumed"]["by"] is None
    assert values["decision"]["branch"] == "tasks" and "awaiting" not in values["decision"]


def test_a_pause_timeout_fails_and_an_approval_timeout_expires_it() -> None:
    state, values, _ = approval_tasks.wake(_row({"on_due": "timeout"}))
    assert state is State.RUNNING and values["decision"]["timed_out"]  # its join fails it

    state, values, end = approval_tasks.wake(_row({"awaiting": True, "on_due": "expire", "due": "2026-01-01T00:00:00"}))

    assert (state, end) == (State.RUNNING, None)
    assert values["decision"]["approval"] == "EXPIRED" and values["decision"]["branch"] == "expired"
    assert values["outputs"]["decision"] == "EXPIRED" and values["outputs"]["due"] == "2026-01-01T00:00:00"


@pytest.mark.parametrize(
    ("actor", "person"),
    [("user:alice@10.0.0.1", "alice"), ("token:bob/ci@127.0.0.1", "bob"), ("anonymous@1.2.3.4", None),
     ("system:timer", None), (None, None)],
)  # fmt: skip
def test_the_reviewer_is_the_person_behind_the_audit_actor(actor: str | None, person: str | None) -> None:
    assert approval_tasks.person(actor) == person
