"""Which task run attempt `chorus retry` sends again among those one Celery message claimed."""

from __future__ import annotations

from orchestrator.engine.attempt_messages import _chosen
from orchestrator.store.tables import TaskRunRow

ID = "c0ffee00-0000-4000-8000-000000000001"


def _row(run_id: str, state: str, celery_ids: list[str | None], parent_id: str | None = None) -> TaskRunRow:
    attempts = [{"celeryTaskId": celery_id} for celery_id in celery_ids]
    return TaskRunRow(id=run_id, parent_id=parent_id, state=state, attempt=len(attempts), attempts=attempts)


def test_among_siblings_of_one_run_inline_the_failed_one_is_sent_not_the_one_that_succeeded() -> None:
    hello, flaky = _row("hello", "SUCCESS", [ID]), _row("flaky", "FAILED", [ID])

    assert _chosen([hello, flaky], ID) == (flaky, 1)


def test_once_re_applied_the_same_id_names_the_next_failed_sibling() -> None:
    # An independent chunk: both failed; `a` was retried (its current attempt has another id), `b` was not.
    a, b = _row("a", "SUCCESS", [ID, "other"]), _row("b", "FAILED", [ID])

    assert _chosen([a, b], ID) == (b, 1)


def test_with_no_failed_current_attempt_the_last_claimed_is_sent() -> None:
    first, last = _row("first", "SUCCESS", [ID]), _row("last", "RUNNING", [ID])

    assert _chosen([first, last], ID) == (last, 1)


def test_an_earlier_attempt_keeps_its_own_number() -> None:
    # The message of attempt 2 of 3: sent again it names attempt 2, which the engine passes over as stale.
    row = _row("r", "FAILED", ["one", ID, "three"])

    assert _chosen([row], ID) == (row, 2)


def test_a_working_directorys_children_are_left_to_the_message_that_entered_it() -> None:
    parent = _row("wd", "FAILED", [ID])
    child = _row("child", "FAILED", [ID], parent_id="wd")

    assert _chosen([parent, child], ID) == (parent, 1)


def test_no_rows_choose_nothing() -> None:
    assert _chosen([], ID) is None
