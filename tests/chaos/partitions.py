"""Network partitions of a cluster across hosts (tests/chaos/netns_cluster.py), one scenario each.

Each scenario deploys the chaos workload (tests/chaos/workload.py: linear, parallel, ForEach, subflow, pause,
retry) into a namespace of its own, submits executions, waits until side-effect scripts run, cuts hosts apart
with DROP rules for `HOLD_FACTOR` stale windows, heals, and waits until every execution ended. The invariants
are the chaos suite's (nothing lost, duplicated, stuck, wrong, illegal; audit verified) plus the split-brain
checks of two server hosts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from orchestrator.core.states import TERMINAL
from tests.chaos.driver import Driver
from tests.chaos.invariants import Verdict, check
from tests.chaos.netns_cluster import NetnsCluster
from tests.chaos.recorder import Ledger
from tests.chaos.workload import EXPECTED

#: A partition lasts this many stale windows (claims' lease, heartbeats): long enough for every take-over.
HOLD_FACTOR = 3.0
#: How long a side-effect script works before recording its effect: partitions land mid-task.
TASK_SLEEP_S = 1.0
#: From the fence's deadline until the script's process group is dead (a signal, an exception, a kill).
FENCE_LATENCY_S = 1.0
#: A server cut from its database answers 503 within this (its connections' network timeouts: 10 s).
API_PATIENCE_S = 15.0
#: A submission while the broker is unreachable: its sends time out (celery_app.py) and are left to the sweeper.
SUBMIT_PATIENCE_S = 45.0
#: After the heal, a slot of the schedule fires within this (a scheduler cut mid-tick held its leadership, an advisory
#: lock, until its PostgreSQL backend ended: the server's network bounds end it within ~15 s of the cut).
SCHEDULE_PATIENCE_S = 30.0
#: A schedule both servers' schedulers compete for, in a namespace of its own (the workload's invariants
#: judge every execution of theirs): each slot must start exactly one execution, whoever is cut.
TICK = """
id: tick
namespace: {namespace}
triggers:
  - id: every-two-seconds
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/2 * * * * *"
    withSeconds: true
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "tick {{{{ trigger.date }}}}"
"""


@dataclass(frozen=True)
class Partition:
    """Which hosts to cut apart, as (host, peer) pairs, and which host must hold running scripts at the cut."""

    pairs: Callable[[NetnsCluster], list[tuple[str, str]]]
    mid_task_on: str | None = None
    #: How long each side-effect script works; longer than the fence window where the cut must stop scripts.
    sleep_s: float = TASK_SLEEP_S
    #: Executions submitted, when fewer than the test's (long scripts).
    executions: int | None = None
    #: A server host whose API is asked during the cut: it must answer 503 within `API_PATIENCE_S`, not hang.
    probe_api_of: str | None = None
    #: A server host an execution is submitted to during the cut: it must be acknowledged (the state is in
    #: PostgreSQL; the sweeper sends it once the broker is back) within `SUBMIT_PATIENCE_S`.
    probe_submit_on: str | None = None


PARTITIONS: dict[str, Partition] = {
    "worker host cut from Redis": Partition(lambda c: [("scripts-1", "redis")], mid_task_on="scripts-1"),
    "worker host cut from PostgreSQL mid-task": Partition(
        lambda c: [("scripts-1", "pg")], mid_task_on="scripts-1", sleep_s=6.0, executions=6
    ),
    # server-b: the driver talks to server-a's API, as a client behind a load balancer would find a healthy one.
    "server host cut from PostgreSQL": Partition(lambda c: [("server-b", "pg")], probe_api_of="server-b"),
    "server host cut from Redis": Partition(lambda c: [("server-a", "redis")], probe_submit_on="server-a"),
    "Redis cut from everyone": Partition(lambda c: [("redis", h) for h in c.lab.hosts if h != "redis"]),
}


@dataclass
class PartitionResult:
    partition: str
    duration_s: float
    verdict: Verdict
    time_to_recover_s: float | None
    split_brain: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        failed = any(note.startswith("FAIL") for note in self.notes)
        return self.verdict.clean and not self.split_brain and self.time_to_recover_s is not None and not failed

    @property
    def row(self) -> list[str]:
        v = self.verdict
        recover = f"{self.time_to_recover_s:.1f}" if self.time_to_recover_s is not None else "never"
        return [
            self.partition, f"{self.duration_s:.1f}", str(v.executions), str(len(v.lost)), str(len(v.duplicated)),
            str(len(v.stuck)), str(len(v.wrong)), str(len(self.split_brain)), str(v.rerun_after_kill), recover,
        ]  # fmt: skip


HEADER = [
    "partition", "duration (s)", "executions", "lost", "duplicated", "stuck", "wrong state", "split-brain",
    "re-run after cut", "time to recover (s)",
]  # fmt: skip


def run_partition(cluster: NetnsCluster, ledger_dir: Path, name: str, executions: int) -> PartitionResult:
    partition = PARTITIONS[name]
    namespace = f"netns.p{uuid.uuid4().hex[:8]}"
    ledger = Ledger(ledger_dir / f"{namespace}.db")
    (ledger_dir / f"{namespace}.db").chmod(0o666)
    driver = Driver(cluster, namespace, ledger, sleep_s=partition.sleep_s)
    driver.deploy()
    schedule_namespace = f"{namespace}.schedule"
    tick = TICK.format(namespace=schedule_namespace)
    response = cluster.api.post("/flows", content=tick, headers={"Content-Type": "application/x-yaml"})
    assert response.status_code == 200, response.text
    driver.submit(partition.executions or executions)
    notes = []
    cut_pids: set[int] = set()
    if partition.mid_task_on is not None:
        held = _wait_for_scripts_on(cluster, driver, partition.mid_task_on)
        notes.append(f"{held} side-effect scripts running on {partition.mid_task_on} at the cut")
        cut_pids = cluster.worker_pids(partition.mid_task_on)
    else:
        driver.wait_until_running(at_least=2)
    pairs = partition.pairs(cluster)
    hold_s = HOLD_FACTOR * cluster.windows.stale_after_s
    fenced_before = _fenced(cluster)
    started, cut_at = time.monotonic(), time.time()
    for a, b in pairs:
        cluster.lab.cut(a, b)
    try:
        if partition.probe_api_of is not None:
            notes.append(_probe_api(cluster, partition.probe_api_of))
        if partition.probe_submit_on is not None:
            notes.append(_probe_submit(cluster, driver, partition.probe_submit_on))
        time.sleep(max(started + hold_s - time.monotonic(), 0))
    finally:
        for a, b in pairs:
            cluster.lab.heal(a, b)
    healed, healed_at = time.monotonic(), time.time()
    finished = driver.drive(timeout_s=180)
    fired_after_heal = _wait_for_a_slot_after(cluster, schedule_namespace, healed_at)
    # Stop the schedule before counting its slots (a disabled flow fires no more).
    cluster.api.delete(f"/flows/{schedule_namespace}/tick")
    slots = cluster.sql("SELECT count(*) FROM executions WHERE namespace = %s", schedule_namespace)[0][0]
    # A count, not a fault: a slot that fired twice (both schedulers leading) is split-brain, listed apart.
    notes.append(f"{slots} schedule slots fired, each once, by two competing schedulers")
    if not fired_after_heal:
        notes.append(f"FAIL: no schedule slot fired within {SCHEDULE_PATIENCE_S:g}s of the heal")
    verdict = check(cluster, namespace, ledger, driver.submissions, killed_pids=())
    # A script that finished on the cut host before its worker could know it was cut off (the fence) did its
    # side effect, but nobody could record it: the take-over runs the attempt again (at-least-once, as after a
    # kill -9). Any other duplicate, a script finishing on the cut host after the fence, is a bug.
    fence_deadline = cut_at + cluster.windows.fence_after_s + FENCE_LATENCY_S
    first = {e.task_run_id: e for e in ledger.effects()}
    for duplicate in ledger.duplicates():
        original = first.get(duplicate.task_run_id)
        key = f"{duplicate.execution_id}/{duplicate.task_id}"
        if original and original.pids & cut_pids and original.at <= fence_deadline and key in verdict.duplicated:
            verdict.duplicated.remove(key)
            verdict.rerun_after_kill += 1
    if verdict.rerun_after_kill:
        notes.append(f"{verdict.rerun_after_kill} scripts finished on the cut host before the fence, re-run")
    fenced = _fenced(cluster) - fenced_before
    if fenced:
        notes.append(f"{fenced} attempts stopped by the fence (claim unconfirmed), handed back")
    return PartitionResult(
        name,
        healed - started,
        verdict,
        None if finished is None else finished - healed,
        split_brain=_split_brain(cluster, namespace) + _slots_fired_twice(cluster, schedule_namespace),
        notes=notes,
    )


def _probe_api(cluster: NetnsCluster, server: str) -> str:
    """What a client of `server` gets while the server cannot reach PostgreSQL; a FAIL note unless a quick 503."""
    began = time.monotonic()
    with cluster.client(server) as client:
        try:
            status = str(client.get("/executions/search", timeout=60).status_code)
        except httpx.HTTPError as e:
            status = type(e).__name__
    took_s = time.monotonic() - began
    verdict = "" if status == "503" and took_s < API_PATIENCE_S else "FAIL: "
    return f"{verdict}the API of {server}, cut from PostgreSQL, answered {status} in {took_s:.1f}s"


def _probe_submit(cluster: NetnsCluster, driver: Driver, server: str) -> str:
    """Submit one more execution through `server` while it cannot reach Redis; a FAIL note unless acknowledged
    in time (it then counts as acknowledged: the invariants require it to end as its flow says)."""
    began = time.monotonic()
    with cluster.client(server) as client:
        try:
            response = client.post(f"/executions/{driver.namespace}/linear", timeout=90)
            status = str(response.status_code)
        except httpx.HTTPError as e:
            status = type(e).__name__
    took_s = time.monotonic() - began
    if status == "200":
        driver.submissions.acknowledged.append(response.json()["id"])
    verdict = "" if status == "200" and took_s < SUBMIT_PATIENCE_S else "FAIL: "
    return f"{verdict}a submission to {server}, cut from Redis, answered {status} in {took_s:.1f}s"


def _fenced(cluster: NetnsCluster) -> int:
    """Attempts the workers fenced so far, from their logs (workers/runtime.py logs each hand-back)."""
    logs = (cluster.root / f"{name}.log" for name in cluster.workers)
    return sum(log.read_text(errors="replace").count("claim unconfirmed: ") for log in logs if log.exists())


def _wait_for_scripts_on(cluster: NetnsCluster, driver: Driver, host: str, timeout_s: float = 60) -> int:
    """Wait until `host`'s worker runs side-effect scripts in every pool process (a claim owner is
    `hostname:pid:message`; the pid tells the host), or at least one when `timeout_s` is up."""
    effects = {task_id for expectation in EXPECTED.values() for task_id in expectation.effects}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = cluster.sql(
            "SELECT t.task_id, t.claim_owner FROM task_runs t JOIN executions e ON e.id = t.execution_id "
            "WHERE e.namespace = %s AND t.state = 'RUNNING' AND t.claim_owner IS NOT NULL",
            driver.namespace,
        )
        pids = cluster.worker_pids(host)
        held = sum(1 for task_id, owner in rows if task_id in effects and int(str(owner).split(":")[1]) in pids)
        if held >= cluster.windows.concurrency or (held and time.monotonic() > deadline - timeout_s / 2):
            return held
        time.sleep(0.05)
    raise AssertionError(f"no side-effect script ran on {host} within {timeout_s}s")


def _wait_for_a_slot_after(cluster: NetnsCluster, namespace: str, after: float) -> bool:
    """Whether a slot dated after `after` (epoch seconds) started an execution within `SCHEDULE_PATIENCE_S`."""
    deadline = time.monotonic() + SCHEDULE_PATIENCE_S
    while time.monotonic() < deadline:
        rows = cluster.sql(
            "SELECT count(*) FROM executions WHERE namespace = %s "
            "AND (trigger->'variables'->>'date')::timestamptz > to_timestamp(%s)",
            namespace,
            after,
        )
        if rows[0][0]:
            return True
        time.sleep(0.5)
    return False


def _split_brain(cluster: NetnsCluster, namespace: str) -> list[str]:
    """Work two controllers both did: an execution ended twice (its audit trail holds two terminal transitions)
    or a task run created twice for one position (task, parent, iteration value). An attempt run by two live
    workers at once shows in the ledger's duplicates."""
    terminal = [f"execution.{state.lower()}" for state in sorted(TERMINAL)]
    problems = [
        f"execution {e}: {action} {count} times"
        for e, action, count in cluster.sql(
            "SELECT a.chain_key, a.action, count(*) FROM audit_events a JOIN executions e ON e.id = a.chain_key "
            "WHERE e.namespace = %s AND a.subject IS NULL AND a.action = ANY(%s) "
            "GROUP BY a.chain_key, a.action HAVING count(*) > 1",
            namespace,
            terminal,
        )
    ]
    problems += [
        f"execution {e}: task {task_id} (iteration {value!r}) recorded {count} times"
        for e, task_id, value, count in cluster.sql(
            "SELECT t.execution_id, t.task_id, t.value, count(*) FROM task_runs t "
            "JOIN executions e ON e.id = t.execution_id WHERE e.namespace = %s "
            "GROUP BY t.execution_id, t.task_id, t.parent_id, t.value HAVING count(*) > 1",
            namespace,
        )
    ]
    return problems


def _slots_fired_twice(cluster: NetnsCluster, namespace: str) -> list[str]:
    """Schedule slots that started more than one execution (two schedulers both leading), and a schedule that
    never fired (no scheduler leading at all would look clean otherwise)."""
    rows = cluster.sql(
        "SELECT trigger->'variables'->>'date', count(*) FROM executions WHERE namespace = %s "
        "GROUP BY 1 HAVING count(*) > 1",
        namespace,
    )
    problems = [f"schedule slot {date} fired {count} times" for date, count in rows]
    fired = cluster.sql("SELECT count(*) FROM executions WHERE namespace = %s", namespace)[0][0]
    return problems if fired else [*problems, "the schedule never fired"]


def table(results: list[PartitionResult]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.row) + " |" for r in results]
    notes = [f"- {r.partition}: {note}" for r in results for note in r.notes]
    problems = [
        f"- {r.partition}: {r.verdict.summary()}; split-brain {r.split_brain[:5]}" for r in results if not r.clean
    ]
    return "\n".join([*lines, *([""] if notes else []), *notes, *([""] if problems else []), *problems]) + "\n"
