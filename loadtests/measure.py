"""Submitting work to each side and reading, from PostgreSQL, when it ended.

End times come from the rows the work itself wrote (Chorus's `executions.ended_at`, the baseline's
`written_at`), so the harness's polling interval never enters a measurement; both clocks are this host's.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from celery import chain, chord

from loadtests.flows import one_task
from loadtests.forking import reopen_after_fork
from loadtests.raw_app import INSERT_ROW, WRITE_ROW
from loadtests.stack import Baseline, Stack, WorkerSpec

TERMINAL = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED")
#: How often the harness asks whether a batch has ended. Every number ends at a time the work wrote, so a
#: slower poll does not bias them; it only leaves the two shared cores to the work being measured.
_POLL_S = 0.2
#: Submitting threads: enough to keep the broker and the database busy from one client process.
SUBMITTERS = 4
#: Submitting processes (forked), each with SUBMITTERS threads.
SUBMITTER_PROCESSES = 2


class InvariantBroken(AssertionError):
    """Raised when a run's result breaks an invariant (an execution not SUCCESS, a lost or doubled row)."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank on sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def submit_all(
    count: int, submit: Callable[[int], object], threads: int = SUBMITTERS, processes: int = SUBMITTER_PROCESSES
) -> float:
    """Call `submit(i)` for i < count from `processes` forked processes of a few threads each; returns the wall
    time it took.

    Both sides submit alike. Several processes because a Chorus submit does the execution's leading control
    work in its own transaction (as the API's processes do, one per core in production): from one process
    the harness's GIL, not Chorus, would bound the rate. Forked children reopen every pooled connection.
    """
    started = time.time()
    if processes <= 1:
        _submit_share(submit, range(count), threads)
        return time.time() - started
    children = [
        _FORK.Process(target=_submit_child, args=(submit, range(k, count, processes), threads))
        for k in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join()
    failed = [c.exitcode for c in children if c.exitcode != 0]
    if failed:
        raise RuntimeError(f"a submitting process failed (exit codes {failed})")
    return time.time() - started


_FORK = multiprocessing.get_context("fork")


def _submit_share(submit: Callable[[int], object], indexes: range, threads: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(submit, indexes))


def _submit_child(submit: Callable[[int], object], indexes: range, threads: int) -> None:
    reopen_after_fork()
    _submit_share(submit, indexes, threads)


# ---- Chorus -------------------------------------------------------------------------------------


def deploy(stack: Stack, source: str) -> None:
    stack.engine.deploy_flow(source, actor="system:loadtest")


def submit_chorus(stack: Stack, namespace: str, flow_id: str) -> Callable[[int], None]:
    def submit(_: int) -> None:
        stack.engine.submit(namespace, flow_id, inputs={}, actor="system:loadtest")

    return submit


#: By (tenant, namespace, flow_id): the leading columns of `ix_executions_flow`, so a poll reads this batch's
#: rows only (by namespace alone it was a scan of the whole table, every 50 ms, on the cores being measured).
_ENDED = "SELECT count(*) FROM executions WHERE tenant = %s AND namespace = %s AND flow_id = %s AND state = ANY(%s)"
_ENDS = "SELECT state, ended_at FROM executions WHERE tenant = %s AND namespace = %s AND flow_id = %s ORDER BY ended_at"


def wait_chorus(stack: Stack, namespace: str, flow_id: str, count: int, timeout_s: float) -> list[datetime]:
    """Wait until `count` executions of the flow are terminal; every one must be SUCCESS.

    Returns their end times, sorted."""
    deadline = time.monotonic() + timeout_s
    flow = (stack.settings.tenant, namespace, flow_id)
    with stack.svc.connect() as conn:
        while True:
            done = conn.execute(_ENDED, (*flow, list(TERMINAL))).fetchone()
            if done is not None and done[0] >= count:
                break
            if time.monotonic() > deadline:
                raise InvariantBroken(f"{namespace}: {done and done[0]} of {count} executions ended in {timeout_s}s")
            time.sleep(_POLL_S)
        rows = conn.execute(_ENDS, flow).fetchall()
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


def raw_write(baseline: Baseline, run: str, seq: int, pool: str = "control") -> object:
    """One task writing row (run, seq), on the baseline's queue for Chorus's `pool`."""
    return baseline.app.signature(WRITE_ROW, kwargs={"run": run, "seq": seq}, queue=baseline.queue_of(pool))


def _record_submit(stack: Stack, baseline: Baseline, run: str, seq: int) -> None:
    """The durable baseline's sender writes a row before it sends, as an orchestrator records a submit."""
    if baseline.durable:
        with stack.db.begin() as connection:
            connection.execute(INSERT_ROW, {"run": f"{run}:submit", "seq": seq})


# The AsyncResults of sends are dropped at once: results are read from PostgreSQL, and a result object
# left for interpreter exit makes Celery's Redis backend try to unsubscribe during shutdown.


def submit_raw(stack: Stack, baseline: Baseline, run: str) -> Callable[[int], None]:
    def submit(i: int) -> None:
        _record_submit(stack, baseline, run, i)
        raw_write(baseline, run, i).apply_async()  # type: ignore[attr-defined]

    return submit


def submit_raw_chain(stack: Stack, baseline: Baseline, run: str, pools: Sequence[str]) -> Callable[[int], None]:
    """Submit(i): one chain whose k-th link runs on the baseline's queue for `pools[k]` and writes row
    (run, i * len(pools) + k); the durable baseline records the submit first."""
    width = len(pools)

    def submit(i: int) -> None:
        _record_submit(stack, baseline, run, i)
        links = [raw_write(baseline, run, i * width + k, pool) for k, pool in enumerate(pools)]
        chain(*links, app=baseline.app).apply_async()

    return submit


def raw_chain(stack: Stack, baseline: Baseline, run: str, length: int) -> None:
    submit_raw_chain(stack, baseline, run, ["control"] * length)(0)


def raw_chord(baseline: Baseline, run: str, width: int) -> None:
    # A chord counts its header in the result backend: only the baseline configured as Chorus has one.
    header = [raw_write(baseline, run, i) for i in range(width)]
    chord(header, raw_write(baseline, run, -1), app=baseline.app).apply_async()


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


# ---- warm-up ------------------------------------------------------------------------------------


def warm_up(stack: Stack, side: str, spec: WorkerSpec) -> None:
    """Run a few tasks on workers that just started, so no side's first samples pay for a cold start.

    A fresh prefork child opens its database pool, imports lazily and (Chorus) caches flows on its first
    tasks: in a quick run of 100 tasks that was a quarter of a baseline's time, and it fell on whichever side
    had just (re)started its workers. Four tasks per process, on the control queue."""
    processes = spec.instances * (spec.concurrency if spec.pool_impl == "prefork" else 1)
    count = 4 * processes
    tag = uuid.uuid4().hex[:8]
    if side == "chorus":
        namespace = f"loadtest.warmup.x{tag}"
        deploy(stack, one_task(namespace))
        submit_all(count, submit_chorus(stack, namespace, "one"))
        wait_chorus(stack, namespace, "one", count, 120)
        return
    baseline = stack.baselines[side]
    submit_all(count, submit_raw(stack, baseline, f"warmup-{tag}"))
    wait_raw(stack, f"warmup-{tag}", count, 120)


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
