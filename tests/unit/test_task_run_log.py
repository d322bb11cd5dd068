"""TaskRunLog: one log line per task-run event, with its ids, attempt and duration, in text logging too."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.hooks import Transition
from orchestrator.observability.logs import configure_logging
from orchestrator.observability.task_run_log import (
    CLAIMED,
    ENDED,
    RECOVERED,
    RETRIED,
    TaskRunLog,
    task_run_event,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOGGER = "orchestrator.observability.task_run_log"


def task_run(
    previous: str | None,
    state: str,
    *,
    attempt: int = 1,
    attempt_after_s: float = 0,
    after_s: float = 0,
    retry_at: datetime | None = None,
) -> Transition:
    return Transition(
        kind="task_run",
        subject_id="tr1",
        execution_id="ex1",
        namespace="company.team",
        flow_id="hello",
        task_id="t",
        task_type="io.kestra.plugin.core.log.Log",
        previous=previous,
        state=state,
        at=T0 + timedelta(seconds=after_s),
        started_at=T0,
        attempt=attempt,
        attempt_started_at=T0 + timedelta(seconds=attempt_after_s),
        retry_at=retry_at,
        actor="worker:host:1:c1",
    )


def records(caplog: pytest.LogCaptureFixture, *transitions: Transition) -> list[logging.LogRecord]:
    hook = TaskRunLog()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for t in transitions:
            hook.after_transition(t)
    return [r for r in caplog.records if r.name == LOGGER]


@pytest.mark.parametrize(
    ("previous", "state", "event"),
    [
        (None, "RUNNING", CLAIMED),
        ("RETRYING", "RUNNING", CLAIMED),
        ("RESTARTED", "RUNNING", CLAIMED),
        ("RUNNING", "RUNNING", RECOVERED),
        ("RUNNING", "RETRYING", RETRIED),
        ("RUNNING", "SUCCESS", ENDED),
        ("RUNNING", "FAILED", ENDED),
        ("PAUSED", "KILLED", ENDED),
        ("PAUSED", "RUNNING", None),
        ("RUNNING", "PAUSED", None),
        ("FAILED", "RESTARTED", None),
    ],
)
def test_each_transition_is_at_most_one_task_run_event(previous: str | None, state: str, event: str | None) -> None:
    assert task_run_event(task_run(previous, state)) == event


def test_execution_transitions_are_not_task_run_events() -> None:
    execution = Transition("execution", "ex1", "ex1", "ns", "f", None, None, "RUNNING", "SUCCESS", T0, T0)
    assert task_run_event(execution) is None


def test_a_successful_attempt_logs_its_claim_and_its_end_with_ids_attempt_and_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    claimed, ended = records(caplog, task_run(None, "RUNNING"), task_run("RUNNING", "SUCCESS", after_s=0.51))

    assert claimed.getMessage() == "  0.00s → t attempt 1 claimed by worker:host:1:c1"
    assert ended.getMessage() == "  0.51s ← t attempt 1 ● SUCCESS"
    assert ended.levelno == logging.INFO
    for record, action in ((claimed, CLAIMED), (ended, ENDED)):
        assert vars(record) | {
            "execution_id": "ex1",
            "task_run_id": "tr1",
            "task_id": "t",
            "flow": "hello",
            "namespace": "company.team",
            "action": action,
            "attempt": 1,
        } == vars(record)
    assert vars(ended)["duration_s"] == 0.51
    assert vars(ended)["state"] == "SUCCESS"


def test_a_failed_attempt_with_a_retry_logs_the_next_attempt_time_then_the_second_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    due = T0 + timedelta(seconds=5)
    retried, claimed, failed = records(
        caplog,
        task_run("RUNNING", "RETRYING", after_s=1.25, retry_at=due),
        task_run("RETRYING", "RUNNING", attempt=2, attempt_after_s=5, after_s=5),
        task_run("RUNNING", "FAILED", attempt=2, attempt_after_s=5, after_s=5.5),
    )

    assert retried.getMessage() == f"  1.25s ← t attempt 1 ● RETRYING, next attempt at {due.isoformat()}"
    assert (vars(retried)["action"], vars(retried)["attempt"], vars(retried)["retry_at"]) == (
        RETRIED,
        1,
        due.isoformat(),
    )
    # A retry's claim shows how long the task run has waited; the end shows the attempt's own duration.
    assert claimed.getMessage() == "  5.00s → t attempt 2 claimed by worker:host:1:c1"
    assert failed.getMessage() == "  0.50s ← t attempt 2 ● FAILED"
    assert (failed.levelno, vars(failed)["action"], vars(failed)["attempt"]) == (logging.WARNING, ENDED, 2)


def test_a_take_over_logs_a_recovered_warning(caplog: pytest.LogCaptureFixture) -> None:
    (recovered,) = records(caplog, task_run("RUNNING", "RUNNING", after_s=42))

    assert recovered.getMessage() == " 42.00s ↻ t attempt 1 taken over by worker:host:1:c1 (its claim went stale)"
    assert (recovered.levelno, vars(recovered)["action"], vars(recovered)["task_run_id"]) == (
        logging.WARNING,
        RECOVERED,
        "tr1",
    )


def test_the_text_log_format_stamps_the_ids_on_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        configure_logging("INFO")
        TaskRunLog().after_transition(task_run("RUNNING", "SUCCESS", after_s=2))
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])

    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith(
        f"INFO {LOGGER}:   2.00s ← t attempt 1 ● SUCCESS"
        " [execution_id=ex1 task_run_id=tr1 task_id=t flow=hello namespace=company.team action=task_run.ended]"
    )
