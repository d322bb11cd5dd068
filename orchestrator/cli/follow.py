"""Follow an execution for a person: read its SSE stream, show task runs live, map the end to an exit code.

The stream (`GET /executions/{id}/follow`) sends `start`, then the whole Execution on each change
(`progress`), then `end`. On a terminal the display redraws one line per task run in place; anywhere
else (a pipe, CI logs) it prints one plain line per change, so nothing is lost when output is captured.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from orchestrator.cli.exit_codes import (
    EXIT_EXECUTION_FAILED,
    EXIT_EXECUTION_KILLED,
    EXIT_EXECUTION_PAUSED,
    EXIT_EXECUTION_WARNING,
    EXIT_FAILURE,
    EXIT_OK,
)

#: The exit code of `chorus run --wait|--follow` and `chorus executions follow`, by the execution's final state.
_EXIT_BY_STATE = {
    "SUCCESS": EXIT_OK,
    "SKIPPED": EXIT_OK,
    "FAILED": EXIT_EXECUTION_FAILED,
    "KILLED": EXIT_EXECUTION_KILLED,
    "CANCELLED": EXIT_EXECUTION_KILLED,
    "WARNING": EXIT_EXECUTION_WARNING,
    "PAUSED": EXIT_EXECUTION_PAUSED,
}

#: How long a dropped stream (a server restart, a proxy's idle timeout) is retried before giving up.
_RECONNECT_PATIENCE_S = 60.0


def exit_code(state: str) -> int:
    """The exit code for an execution's state; a state that is not final is a failure to wait for it."""
    return _EXIT_BY_STATE.get(state, EXIT_FAILURE)


def sse_events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event id, decoded data) of each Server-Sent Event; keep-alive comments are skipped."""
    kind, data = "", list[str]()
    for line in response.iter_lines():
        if line == "":
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "", []
        elif line.startswith(":"):
            continue
        elif line.startswith("id:"):
            kind = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def follow_events(client: httpx.Client, execution_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The execution's `progress` and `end` snapshots, reconnecting while the stream drops before its end."""
    deadline = time.monotonic() + _RECONNECT_PATIENCE_S
    while True:
        try:
            with client.stream("GET", f"/executions/{execution_id}/follow", timeout=httpx.Timeout(30, read=60)) as r:
                if r.is_error:
                    r.read()  # the error's body names what is wrong
                r.raise_for_status()
                for kind, data in sse_events(r):
                    if kind in ("progress", "end"):
                        deadline = time.monotonic() + _RECONNECT_PATIENCE_S
                        yield kind, data
                    if kind == "end":
                        return
        except httpx.HTTPStatusError:
            raise  # a 401/404 will not get better by asking again
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(1.0)  # the server closed the stream early (draining): ask again


@dataclass
class Progress:
    """Shows task runs as they change: redrawn in place on a TTY, one line per change otherwise."""

    out: TextIO
    tty: bool
    _seen: dict[str, str] = field(default_factory=dict)
    _drawn: int = 0
    _state: str = ""

    def show(self, execution: dict[str, Any]) -> None:
        runs = _task_runs(execution)
        state = execution.get("state", {}).get("current", "")
        if self.tty:
            self._redraw(execution, runs, state)
        else:
            for key, (label, run_state) in runs.items():
                if self._seen.get(key) != run_state:
                    self.out.write(f"{_now()} {label} {run_state}\n")
            if state != self._state:  # after its task runs: an execution's end follows its last task run's
                self.out.write(f"{_now()} execution {execution['id']} {state}\n")
            self.out.flush()
        self._seen = {key: run_state for key, (_, run_state) in runs.items()}
        self._state = state

    def _redraw(self, execution: dict[str, Any], runs: dict[str, tuple[str, str]], state: str) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")  # back to the block's first line, clear to the end
        lines = [f"execution {execution['id']}  {_mark(state)} {state}"]
        lines += [f"  {_mark(run_state)} {label:<40} {run_state}" for label, run_state in runs.values()]
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)


def _task_runs(execution: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Task run id -> (a label naming the task and its iteration, its state), in the server's order."""
    runs: dict[str, tuple[str, str]] = {}
    for run in [*execution.get("taskRunList", []), *execution.get("loopTaskRunList", [])]:
        label = run["taskId"] + (f"[{run['value']}]" if run.get("value") not in (None, "") else "")
        runs[run["id"]] = (label, run["state"]["current"])
    return runs


def failed_task_ids(execution: dict[str, Any]) -> list[str]:
    """The tasks whose runs failed, in order, each named once."""
    failed = [label for label, state in _task_runs(execution).values() if state == "FAILED"]
    return list(dict.fromkeys(failed))


_MARKS = {"SUCCESS": "✔", "FAILED": "✘", "KILLED": "✘", "WARNING": "!", "PAUSED": "‖", "SKIPPED": "-"}


def _mark(state: str) -> str:
    return _MARKS.get(state, "…")


def _now() -> str:
    return time.strftime("%H:%M:%S")
