"""The faults, one scenario each, and the run of a scenario: cluster up, workload, fault, drain, invariants."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from tests.chaos.cluster import ChaosCluster, ClusterShape
from tests.chaos.driver import Driver
from tests.chaos.invariants import Verdict, check
from tests.chaos.recorder import Ledger
from tests.chaos.workload import EXPECTED

#: How long a side-effect script works: long enough for faults to land mid-task.
TASK_SLEEP_S = 0.4


@dataclass
class Run:
    """One scenario's cluster, driver and what its fault did."""

    cluster: ChaosCluster
    driver: Driver
    executions: int
    killed_pids: set[int] = field(default_factory=set)
    fault_end: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    scenario: str
    verdict: Verdict
    time_to_recover_s: float | None
    notes: tuple[str, ...]

    @property
    def row(self) -> list[str]:
        v = self.verdict
        recover = f"{self.time_to_recover_s:.1f}" if self.time_to_recover_s is not None else "never"
        return [
            self.scenario, str(v.executions), str(len(v.lost)), str(len(v.duplicated)), str(len(v.stuck)),
            str(len(v.wrong)), str(v.rerun_after_kill), str(len(v.audit_broken)), str(len(v.illegal_transitions)),
            recover,
        ]  # fmt: skip


HEADER = [
    "scenario", "executions", "lost", "duplicated", "stuck", "wrong state", "re-run after kill",
    "audit unverified", "illegal transitions", "time to recover (s)",
]  # fmt: skip


def _submit_then(run: Run, fault: Callable[[Run], None]) -> None:
    """Most faults hit a cluster busy with every execution submitted and task runs in flight."""
    run.driver.submit(run.executions)
    run.driver.wait_until_running(at_least=3)
    fault(run)


def kill_workers(run: Run) -> None:
    """kill -9 of a worker's whole tree mid-task, twice (each worker once), each restarted 2 s later."""

    def fault(run: Run) -> None:
        for name in sorted(run.cluster.workers):
            run.driver.wait_until_running(at_least=3)
            run.killed_pids |= run.cluster.kill_worker(name)
            time.sleep(2)
            run.cluster.start_worker(name)
        run.fault_end = time.monotonic()

    _submit_then(run, fault)


def _scripts_running_on(run: Run, name: str) -> int:
    """Side-effect task runs a worker's pool processes hold right now (a claim owner is `host:pid:message`)."""
    pids = run.cluster.worker_pids(name)
    rows = run.cluster.sql(
        "SELECT t.claim_owner, t.task_id FROM task_runs t JOIN executions e ON e.id = t.execution_id "
        "WHERE e.namespace = %s AND t.state = 'RUNNING' AND t.claim_owner IS NOT NULL",
        run.driver.namespace,
    )
    effects = {task_id for expectation in EXPECTED.values() for task_id in expectation.effects}
    return sum(1 for owner, task_id in rows if task_id in effects and int(str(owner).split(":")[1]) in pids)


def scale_down_sawtooth(run: Run) -> None:
    """Workers stopped with SIGTERM on a schedule (a scale-down, then a scale-up), four times, while executions keep
    arriving: each stop lands while that worker runs side-effect scripts, drains for a moment (SHAPES: shorter than
    a script), then hands back what still runs; the replacement (or the other worker) takes those attempts over.
    Nothing may be killed mid-way or done twice, and every execution must end as its flow says."""
    submitting = threading.Thread(
        target=run.driver.submit, args=(run.executions,), kwargs={"threads": 2, "spacing_s": 0.8}, daemon=True
    )
    submitting.start()
    names = sorted(run.cluster.workers)
    stopped = 0
    for cycle in range(4):
        name = names[cycle % len(names)]
        deadline = time.monotonic() + 30
        while _scripts_running_on(run, name) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        took = run.cluster.stop_worker(name, timeout_s=60)
        stopped += 1
        if took >= 60:
            run.notes.append(f"FAIL: {name} was still running {took:.0f}s after SIGTERM (a grace period): killed")
        run.cluster.start_worker(name)
        time.sleep(1.5)
    submitting.join(120)
    run.fault_end = time.monotonic()
    # What became of each task run handed back: the audit actions on it after its (last) hand-back.
    rows = run.cluster.sql(
        "SELECT subject, action FROM audit_events WHERE subject IN "
        "(SELECT subject FROM audit_events WHERE action = 'task_run.handed_back') ORDER BY chain_key, seq"
    )
    after: dict[str, list[str]] = {}
    handed = 0
    for subject, action in rows:
        if action == "task_run.handed_back":
            handed += 1
            after[str(subject)] = []
        elif str(subject) in after:  # actions before its first hand-back are not counted
            after[str(subject)].append(str(action))
    resumed = Counter(next((a for a in actions if a.startswith("task_run.")), "nothing") for actions in after.values())
    run.notes.append(
        f"{stopped} SIGTERMs: {handed} hand-backs of {len(after)} task runs; then "
        + ", ".join(f"{action} {count}" for action, count in sorted(resumed.items()))
    )
    if handed == 0:
        run.notes.append("FAIL: no task run was handed back (the drain never cut a script short)")


def kill_server(run: Run) -> None:
    """kill -9 of the server while executions are being submitted and dispatched; restarted 2 s later."""
    submitter = threading.Thread(target=run.driver.submit, args=(run.executions,), kwargs={"spacing_s": 0.02})
    submitter.start()
    while len(run.driver.submissions.acknowledged) < run.executions // 3:
        time.sleep(0.01)
    run.cluster.kill_server()
    time.sleep(2)
    run.cluster.start_server()
    run.fault_end = time.monotonic()
    submitter.join()
    run.notes.append(f"{run.driver.submissions.refused} submission attempts refused while the server was down, retried")


def restart_redis_empty(run: Run) -> None:
    """Redis killed and restarted empty: queued, unacked and chord keys all lost."""

    def fault(run: Run) -> None:
        run.cluster.restart_redis_empty()
        run.cluster.proxy.drop_connections()  # type: ignore[union-attr]
        run.fault_end = time.monotonic()

    _submit_then(run, fault)


def restart_postgres(run: Run) -> None:
    """PostgreSQL stopped for 4 s and started again; the API must answer 503 meanwhile, never 500."""

    def fault(run: Run) -> None:
        statuses: Counter[int] = Counter()
        probe = run.driver.submissions.acknowledged[0]
        run.cluster.stop_postgres()
        down_until = time.monotonic() + 4
        while time.monotonic() < down_until:
            for path in (f"/executions/{probe}", "/executions/search", f"/executions/{probe}/audit"):
                try:
                    statuses[run.cluster.api.get(path, timeout=10).status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1
            time.sleep(0.1)
        run.cluster.start_postgres()
        run.fault_end = time.monotonic()
        run.notes.append(f"API while PostgreSQL was down: {dict(sorted(statuses.items()))}")
        if set(statuses) != {503}:
            run.notes.append("FAIL: the API answered something else than 503 while PostgreSQL was down")

    _submit_then(run, fault)


def stall_redis_network(run: Run) -> None:
    """The workers' connections to Redis stop carrying bytes for 8 s (the server's stay up)."""

    def fault(run: Run) -> None:
        assert run.cluster.proxy is not None
        run.cluster.proxy.stall()
        time.sleep(8)
        run.cluster.proxy.resume()
        run.fault_end = time.monotonic()

    _submit_then(run, fault)


def duplicate_deliveries(run: Run) -> None:
    """For 10 s, every message seen waiting in a queue is pushed once more: the same Celery message (same id,
    same delivery tag) delivered twice."""

    def fault(run: Run) -> None:
        client = redis.Redis(port=run.cluster.redis_port)
        copied: set[bytes] = set()
        copies = 0
        try:
            until = time.monotonic() + 10
            while time.monotonic() < until:
                for queue in ("control", "scripts"):
                    for message in client.lrange(queue, 0, -1):
                        if message in copied:
                            continue  # the original or its copy: each message is duplicated once
                        copied.add(message)
                        client.lpush(queue, message)  # kombu pops from the right: the copy comes later
                        copies += 1
                time.sleep(0.05)
        finally:
            client.close()
        run.fault_end = time.monotonic()
        run.notes.append(f"{copies} messages delivered twice")

    _submit_then(run, fault)


def skewed_clocks(run: Run) -> None:
    """The server and workers run with wall clocks seconds apart (see SHAPES): nothing else goes wrong."""
    run.driver.submit(run.executions)
    run.fault_end = time.monotonic()


SCENARIOS: dict[str, Callable[[Run], None]] = {
    "worker kill -9": kill_workers,
    "server kill -9 during dispatch": kill_server,
    "redis restart, keys lost": restart_redis_empty,
    "postgres restart": restart_postgres,
    "redis network stall": stall_redis_network,
    "duplicate delivery": duplicate_deliveries,
    "clock skew": skewed_clocks,
    "scale-down (SIGTERM sawtooth)": scale_down_sawtooth,
}
SHAPES: dict[str, ClusterShape] = {
    "clock skew": ClusterShape(clock_skew_s={"server": 2.0, "worker-0": -2.0, "worker-1": 3.0}),
    # Drain shorter than a side-effect script (TASK_SLEEP_S): most stops hand work back rather than wait.
    "scale-down (SIGTERM sawtooth)": ClusterShape(drain_s=0.1),
}


def run_scenario(name: str, executions: int, *, drain_timeout_s: float) -> Result:
    root = Path(tempfile.mkdtemp(prefix="chorus-chaos-"))
    root.chmod(0o711)  # PostgreSQL runs as another account when we are root
    cluster = ChaosCluster(root, SHAPES.get(name, ClusterShape()))
    ok = False
    try:
        cluster.start()
        # Scripts write the ledger; a root worker runs them as an unprivileged user (workers/sandbox.py).
        ledger_dir = root / "ledger"
        ledger_dir.mkdir(mode=0o777)
        ledger_dir.chmod(0o1777)
        ledger = Ledger(ledger_dir / "side-effects.db")
        (ledger_dir / "side-effects.db").chmod(0o666)
        namespace = f"chaos.s{uuid.uuid4().hex[:8]}"
        driver = Driver(cluster, namespace, ledger, sleep_s=TASK_SLEEP_S)
        driver.deploy()
        run = Run(cluster, driver, executions)
        SCENARIOS[name](run)
        finished = driver.drive(drain_timeout_s)
        verdict = check(cluster, namespace, ledger, driver.submissions, run.killed_pids)
        recover = finished - run.fault_end if finished is not None else None
        ok = verdict.clean and not any(n.startswith("FAIL") for n in run.notes)
        if not ok:
            run.notes.append(f"logs kept in {root}")
        return Result(name, verdict, recover, tuple(run.notes))
    finally:
        cluster.stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)


def table(results: list[Result]) -> str:
    """A Markdown table, one row per scenario, with the notes underneath."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.row) + " |" for r in results]
    notes = [f"- {r.scenario}: {note}" for r in results for note in r.notes]
    problems = [f"- {r.scenario}: {r.verdict.summary()}" for r in results if not r.verdict.clean]
    return "\n".join([*lines, *([""] if notes else []), *notes, *([""] if problems else []), *problems]) + "\n"
