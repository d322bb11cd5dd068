"""A flowable task run's recorded decision (`task_runs.decision`, JSON): every key it may hold, typed.

Control tasks decide at run time (a branch, the values to iterate, a pause) and the engine stores that
choice on the task run, so that joins, restarts and the planner see the same decision. The column is
JSON; this TypedDict names each key once, with its meaning, so a misspelt key is a type error.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["TaskRunDecision"]


class TaskRunDecision(TypedDict, total=False):
    """What a flowable (or a waiting) task run decided; every key is optional."""

    branch: str  #: the child list that runs: "tasks", "then"/"else", a Switch case, "onPause", "onWait", ...
    condition: bool  #: If: the rendered condition
    values: list[Any]  #: ForEach / Loop: the values iterated, one child group each
    keys: list[Any]  #: Loop over a map: the keys beside `values`
    kind: str  #: "Loop" for Kestra 2's Loop (iteration-isolated outputs)
    fromStorage: bool  #: Loop: the values were read from internal storage
    broken: bool  #: Loop: `breakWhen` held after an iteration; iterations not started yet never start
    loop: int  #: WaitFor / LoopUntil: the iteration running now
    max_reached: bool  #: WaitFor / LoopUntil: `maxIterations` or `maxDuration` was reached
    condition_error: str  #: LoopUntil: why its condition could not be rendered (the loop fails)
    retries: int  #: how often the flowable's children were retried as a whole
    inline: bool  #: WorkingDirectory: the children run inline in the claiming worker
    pause: bool  #: the task run is parked (Pause, Approval) until resumed or due
    due: str  #: ISO time the sweeper wakes a parked task run
    on_due: str  #: what waking does: "resume" (Pause delay), "timeout" (Pause timeout) or "expire" (Approval)
    behavior: str  #: Pause: the state a timeout leads to (RESUME, WARN, FAIL, CANCEL)
    description: str  #: Pause: the rendered description an approver reads
    awaiting: bool  #: an `onPause` / `onWait` branch runs before the task run parks
    approval: str  #: Approval: the reviewer's decision (APPROVED, DENIED, EXPIRED)
    settings: dict[str, Any]  #: Approval: the rendered review settings (behaviours, comments, timeout)
    terminal: str  #: the state the task run ends in once its branch has ended
    ends: str  #: the outcome a parent flowable recorded when it ended
    subflow: str  #: Subflow: the id of the child execution it waits for
    subflows: int  #: ForEachItem: how many child executions it started
    sleep_until: str  #: Sleep: ISO time a parked Sleep ends
    timeout: bool  #: Sleep: the Sleep ends by its task `timeout`, not its duration
    timed_out: bool  #: Pause: its `timeout` passed; it failed itself, its `errors` and `finally` still run
