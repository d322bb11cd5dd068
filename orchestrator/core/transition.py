"""One state change of an execution or a task run, as the store records it and the lifecycle hooks observe it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Transition:
    """One committed state change of an execution or a task run."""

    kind: str  #: "execution" or "task_run"
    subject_id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str | None
    task_type: str | None
    previous: str | None  #: None when the row was created in this state; equal to `state` for a take-over
    state: str
    at: datetime
    started_at: datetime  #: when the subject was created (durations are `at - started_at`)
    attempt: int | None = None  #: a task run's attempt number after the change
    attempt_started_at: datetime | None = None  #: when that attempt was claimed; an execution's latest restart
    retry_at: datetime | None = None  #: when a RETRYING task run's next attempt is due
    actor: str | None = None  #: who made the change, as audited (`worker:<owner>`, `system:sweeper`, ...)
    parent_id: str | None = None  #: a task run's parent task run; a subflow execution's Subflow task run
    parent_execution_id: str | None = None  #: a subflow execution's parent execution
    audit_hash: str | None = None  #: the hash of the audit event that recorded this change (traces link to it)
    restarts: int = 0  #: an execution's restarts so far: a restarted execution ends once more per restart
