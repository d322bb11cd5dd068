"""The invariants checked after every scenario, from PostgreSQL (the truth), the API and the ledger."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import httpx

from orchestrator.core.states import TERMINAL, TRANSITIONS, State
from tests.chaos.driver import ClusterView, Submissions
from tests.chaos.recorder import Ledger, split_duplicates
from tests.chaos.workload import EXPECTED


@dataclass
class Verdict:
    executions: int = 0
    lost: list[str] = field(default_factory=list)  #: acknowledged but absent, or ended without its side effects
    stuck: list[str] = field(default_factory=list)  #: not ended by the deadline
    wrong: list[str] = field(default_factory=list)  #: ended, but not as the flow must end
    duplicated: list[str] = field(default_factory=list)  #: a side effect completed twice by live workers
    rerun_after_kill: int = 0  #: side effects re-done because the harness killed the first run's worker
    audit_broken: list[str] = field(default_factory=list)
    illegal_transitions: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.stuck or self.wrong or self.duplicated or self.audit_broken
                    or self.illegal_transitions)  # fmt: skip

    def summary(self) -> str:
        parts = {
            "lost": self.lost, "stuck": self.stuck, "wrong": self.wrong, "duplicated": self.duplicated,
            "audit_broken": self.audit_broken, "illegal_transitions": self.illegal_transitions,
        }  # fmt: skip
        return "; ".join(f"{k}: {v[:5]}" for k, v in parts.items() if v) or "clean"


def check(
    cluster: ClusterView, namespace: str, ledger: Ledger, submissions: Submissions, killed_pids: Collection[int]
) -> Verdict:
    verdict = Verdict()
    executions = {
        str(r[0]): (str(r[1]), str(r[2]), list(r[3]))  # type: ignore[call-overload]
        for r in cluster.sql("SELECT id, flow_id, state, state_history FROM executions WHERE namespace = %s", namespace)
    }
    verdict.executions = len(executions)
    verdict.lost += [i for i in submissions.acknowledged if i not in executions]
    runs: dict[str, list[tuple[str, str, list[Any]]]] = {}
    for row in cluster.sql(
        "SELECT t.execution_id, t.task_id, t.state, t.state_history FROM task_runs t "
        "JOIN executions e ON e.id = t.execution_id WHERE e.namespace = %s",
        namespace,
    ):
        runs.setdefault(str(row[0]), []).append((str(row[1]), str(row[2]), list(row[3])))  # type: ignore[call-overload]
    effects: dict[str, Counter[str]] = {}
    for effect in ledger.effects():
        effects.setdefault(effect.execution_id, Counter())[effect.task_id] += 1
    for execution_id, (flow_id, state, history) in executions.items():
        expected = EXPECTED[flow_id]
        if state not in TERMINAL:
            verdict.stuck.append(execution_id)
            continue
        task_runs = runs.get(execution_id, [])
        if state != "SUCCESS" or len(task_runs) != expected.task_runs or any(s != "SUCCESS" for _, s, _ in task_runs):
            verdict.wrong.append(f"{execution_id} ({flow_id} {state}, {len(task_runs)} task runs)")
        if effects.get(execution_id, Counter()) != Counter(expected.effects):
            verdict.lost.append(f"{execution_id} ({flow_id}: side effects {dict(effects.get(execution_id, {}))})")
        verdict.illegal_transitions += _illegal(f"execution {execution_id}", history)
        for task_id, _, task_history in task_runs:
            verdict.illegal_transitions += _illegal(f"task run {execution_id}/{task_id}", task_history)
    bugs, explained = split_duplicates(ledger, killed_pids)
    verdict.duplicated = [f"{d.execution_id}/{d.task_id}" for d in bugs]
    # A Subflow task run starts exactly one child execution; a second one is work done twice.
    verdict.duplicated += [
        f"{parent} started {count} children"
        for parent, count in cluster.sql(
            "SELECT parent_execution_id, count(*) FROM executions WHERE namespace = %s "
            "AND parent_execution_id IS NOT NULL GROUP BY parent_execution_id HAVING count(*) > 1",
            namespace,
        )
    ]
    verdict.rerun_after_kill = len(explained)
    verdict.audit_broken = _unverified(cluster.api, list(executions))
    return verdict


def _illegal(subject: str, history: list[Any]) -> list[str]:
    states = [State(entry["state"]) for entry in history]
    return [f"{subject}: {a} -> {b}" for a, b in itertools.pairwise(states) if b not in TRANSITIONS[a]]


def _unverified(api: httpx.Client, execution_ids: list[str]) -> list[str]:
    broken = []
    for execution_id in execution_ids:
        response = api.get(f"/executions/{execution_id}/audit", timeout=30)
        if response.status_code != 200 or response.json().get("verified") is not True:
            broken.append(execution_id)
    return broken
