"""One log line per task-run event (claimed, ended, retried, recovered), from the engine's committed transitions.

Like arq's worker log (`0.51s → job_id:func()` / `← job_id ● ok`), an operator can follow an execution in
the logs alone: each line names the task run and its attempt, says how long the attempt took, and carries
the run's ids in `extra` for the id filter of `observability.logs` (or a JSON formatter) to stamp.
Being an engine hook, it logs wherever an engine changes a task run: a worker, the API's sweeper and
approvals, `chorus local`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from orchestrator.core.states import State
from orchestrator.hooks import EngineHooks, Transition

logger = logging.getLogger(__name__)

CLAIMED = "task_run.claimed"
ENDED = "task_run.ended"
RETRIED = "task_run.retried"
RECOVERED = "task_run.recovered"

#: States a claim moves a task run out of: none yet (the claim creates it), or a retry or restart waiting for it.
_CLAIMABLE = frozenset({None, str(State.CREATED), str(State.RETRYING), str(State.RESTARTED)})


def task_run_event(transition: Transition) -> str | None:
    """The task-run event a committed transition is (one of the actions above), or None for other changes."""
    if transition.kind != "task_run":
        return None
    state = State(transition.state)
    if state is State.RUNNING:
        if transition.previous == transition.state:
            return RECOVERED
        return CLAIMED if transition.previous in _CLAIMABLE else None
    if state is State.RETRYING:
        return RETRIED
    return ENDED if state.is_terminal else None


class TaskRunLog(EngineHooks):
    """Logs each claim, end, retry and take-over of a task run, with its ids, attempt and duration."""

    def after_transition(self, transition: Transition) -> None:
        action = task_run_event(transition)
        if action is None:
            return
        t = transition
        duration_s = _attempt_duration_s(t)
        extra = {
            "execution_id": t.execution_id,
            "task_run_id": t.subject_id,
            "task_id": t.task_id,
            "flow": t.flow_id,
            "namespace": t.namespace,
            "action": action,
            "attempt": t.attempt,
            "duration_s": round(duration_s, 3),
            "state": t.state,
            "actor": t.actor,
        }
        if action == CLAIMED:
            logger.info("%6.2fs → %s attempt %s claimed by %s", duration_s, t.task_id, t.attempt, t.actor, extra=extra)
        elif action == RECOVERED:
            logger.warning(
                "%6.2fs ↻ %s attempt %s taken over by %s (its claim went stale)",
                duration_s,
                t.task_id,
                t.attempt,
                t.actor,
                extra=extra,
            )
        elif action == RETRIED:
            retry_at = _iso(t.retry_at)
            logger.info(
                "%6.2fs ← %s attempt %s ● RETRYING, next attempt at %s",
                duration_s,
                t.task_id,
                t.attempt,
                retry_at,
                extra={**extra, "retry_at": retry_at},
            )
        else:
            level = logging.WARNING if State(t.state).is_failure else logging.INFO
            logger.log(level, "%6.2fs ← %s attempt %s ● %s", duration_s, t.task_id, t.attempt, t.state, extra=extra)


def _attempt_duration_s(t: Transition) -> float:
    """Seconds since the current attempt was claimed (a claim: since the task run was created, so a retry's
    claim shows how long the task run has waited so far)."""
    since = t.started_at if t.previous in _CLAIMABLE or t.attempt_started_at is None else t.attempt_started_at
    return max((t.at - since).total_seconds(), 0.0)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
