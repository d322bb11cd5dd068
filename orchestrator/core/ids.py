"""Identifiers: random execution ids and deterministic task-run ids, both in Kestra's base62 form."""

from __future__ import annotations

import functools
import uuid

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# A fixed namespace so every process derives the same task-run id from the same coordinates.
_TASK_RUN_NAMESPACE = uuid.UUID("6f1d3c0e-2b7a-4c59-9a57-6c686f727573")


def _base62(number: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(22, "0")


def new_id() -> str:
    """A random 22-character id (executions, tokens, log lines)."""
    return _base62(uuid.uuid4().int)


def idempotency_key(task_run_id: str) -> str:
    """The idempotency key of a logical task: its task run's place in the execution, never its attempt.

    The same across retries, restarts, re-applied messages and a worker's death (all keep the task run),
    so a side effect's receiver can tell a repeat from a new request (`{{ taskrun.idempotencyKey }}`).
    """
    return f"chorus-{task_run_id}"


@functools.lru_cache(maxsize=4096)
def task_run_id(execution_id: str, task_id: str, parent_task_run_id: str | None, iteration: int | None) -> str:
    """The id of a task run, derived from where it sits in its execution.

    Deterministic ids let a Celery message carry only coordinates, let any duplicate delivery of the
    same message find the same row, and let the compiler name task runs that do not exist yet. Cached: one
    operation asks for the same few ids a dozen times (a uuid5 and a base62 each).
    """
    key = f"{execution_id}/{parent_task_run_id or ''}/{task_id}/{'' if iteration is None else iteration}"
    return _base62(uuid.uuid5(_TASK_RUN_NAMESPACE, key).int)
