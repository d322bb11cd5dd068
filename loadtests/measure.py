"""Submitting work to each side and reading, from PostgreSQL, when it ended.

End times come from the rows the work itself wrote (Chorus's `executions.ended_at`, the baseline's
`written_at`), so the harness's polling interval never enters a measurement; both clocks are this host's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from celery import chain, chord

from loadtests.raw_app import RAW_QUEUE, WRITE_ROW
from loadtests.stack import Stack

TERMINAL = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED")
_POLL_S = 0.05
#: Submitting threads: enough to keep the broker and the database busy from one client process.
SUBMITTERS = 4


class InvariantBroken(AssertionError):
    """Raised when a run's result breaks an invariant (an execution not SUCCESS, a lost or doubled row)."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank on sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def submit_all(count: int, submit: Callable[[int], object], threads: int = SUBMITTERS) -> float:
    """Call `submit(i)` for i < count from a few threads; returns the wall time it took."""
    started = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(submit, range(count)))
    return time.time() - started


# ---- Chorus -------------------------------------------------------------------------------------


def deploy(stack: Stack, source: str) -> None:
    stack.engine.deploy_flow(source, actor="system:loadtest")


def submit_chorus(stack: Stack, namespace: str, flow_id: str) -> Callable[[int], None]:
    def submit(_: int) -> None:
        stack.engine.submit(namespace, flow_id, inputs={}, actor="system:loadtest")

    return submit


def wait_chorus(stack: Stack, namespace: str, count: int, timeout_s: float) -> list[datetime]:
    """Wait until `count` executions of the namespace are terminal; every one must be SUCCESS.

    Returns their end times, sorted."""
    deadline = time.monotonic() + timeout_s
    with stack.svc.connect() as conn:
        while True:
            done = conn.execute(
                "SELECT count(*) FROM executions WHERE namespace = %s AND state = ANY(%s)", (namespace, list(TERMINAL))
            ).fetchone()
            if done is not None and done[0] >= count:
                break
            if time.monotonic() > deadline:
                raise InvariantBroken(f"{namespace}: {done and done[0]} of {count} executions ended in {timeout_s}s")
            time.sleep(_POLL_S)
        rows = conn.execute(
            "SELECT state, ended_at FROM executions WHERE namespace = %s ORDER BY ended_at", (namespace,)
        ).fetchall()
    states = [str(r[0]) for r in rows]
    if len(rows) != count or any(s != "SUCCESS" for s in states):
        summary = {s: states.count(s) for s in set(states)}
        raise InvariantBroken(f"{namespace}: expected {count} SUCCESS executions, found {summary}")
    return [r[1] for r in rows]


def chorus_ended_at(stack: Stack, execution_id: str, timeout_s: float) -> datetime:
    """Poll one execution until it is terminal; it must be SUCCESS. Returns its end time."""
    deadline = time.monotonic() + timeout_s
    with stack.svc.connect() as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT state, ended_at FROM executions WHERE id = %s", (execution_id,)).fetchone()
            if row is not None and row[0] in TERMINAL:
                if row[0] != "SUCCESS":
                    raise InvariantBroken(f"execution {execution_id} ended {row[0]}")
                return row[1]  # type: ignore[no-any-return]
            time.sleep(0.005)
    raise InvariantBroken(f"execution {execution_id} did not end in {timeout_s}s")


# ---- raw Celery ---------------------------------------------------------------------------------


def raw_write(stack: Stack, run: str, seq: int) -> object:
    return stack.raw_celery.signature(WRITE_ROW, kwargs={"run": run, "seq": seq}, queue=RAW_QUEUE)


# The AsyncResults of sends are dropped at once: results are read from PostgreSQL, and a result object
# left for interpreter exit makes Celery's Redis backend try to unsubscribe during shutdown.


def submit_raw(stack: Stack, run: str) -> Callable[[int], None]:
    def submit(i: int) -> None:
        raw_write(stack, run, i).apply_async()  # type: ignore[attr-defined]

    return submit


def raw_chain(stack: Stack, run: str, length: int) -> None:
    chain(*[raw_write(stack, run, i) for i in range(length)], app=stack.raw_celery).apply_async()


def raw_chord(stack: Stack, run: str, width: int) -> None:
    header = [raw_write(stack, run, i) for i in range(width)]
    chord(header, raw_write(stack, run, -1), app=stack.raw_celery).apply_async()


def wait_raw(stack: Stack, run: str, count: int, timeout_s: float) -> list[datetime]:
    """Wait until `count` rows of `run` exist; each sequence number exactly once. Returns sorted write times."""
    deadline = time.monotonic() + timeout_s
    with stack.svc.connect() as conn:
        while True:
            done = conn.execute("SELECT count(*) FROM loadtest_raw_rows WHERE run = %s", (run,)).fetchone()
            if done is not None and done[0] >= count:
                break
            if time.monotonic() > deadline:
                raise InvariantBroken(f"raw {run}: {done and done[0]} of {count} rows written in {timeout_s}s")
            time.sleep(_POLL_S)
        rows = conn.execute(
            "SELECT seq, written_at FROM loadtest_raw_rows WHERE run = %s ORDER BY written_at", (run,)
        ).fetchall()
    seqs = [r[0] for r in rows]
    if len(seqs) != count or len(set(seqs)) != count:
        raise InvariantBroken(f"raw {run}: {len(seqs)} rows for {len(set(seqs))} distinct tasks, expected {count}")
    return [r[1] for r in rows]


def raw_written_at(stack: Stack, run: str, seq: int, timeout_s: float) -> datetime:
    deadline = time.monotonic() + timeout_s
    with stack.svc.connect() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT written_at FROM loadtest_raw_rows WHERE run = %s AND seq = %s", (run, seq)
            ).fetchone()
            if row is not None:
                return row[0]  # type: ignore[no-any-return]
            time.sleep(0.005)
    raise InvariantBroken(f"raw {run} seq {seq} not written in {timeout_s}s")


# ---- shapes of a drain --------------------------------------------------------------------------


@dataclass(frozen=True)
class Drain:
    """Per-item cost at the start and at the end of a sorted series of completion times."""

    cost_start_ms: float
    cost_end_ms: float

    @classmethod
    def of(cls, ends: Sequence[datetime], fraction: float = 0.1) -> Drain:
        k = max(1, int(len(ends) * fraction))
        start = (ends[k] - ends[0]).total_seconds() / k
        end = (ends[-1] - ends[-1 - k]).total_seconds() / k
        return cls(start * 1000, end * 1000)


def seconds_since(t0: float, moment: datetime) -> float:
    return moment.timestamp() - t0


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
