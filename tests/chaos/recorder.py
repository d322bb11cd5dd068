"""The side-effect ledger: workload tasks insert one row per task run into a SQLite table with a unique key.

The ledger lives outside the cluster's PostgreSQL (a fault there must not hide a side effect). A second
insert for the same task run lands in `duplicates` instead. Each row names the processes that did the
work (the script, its parent and grandparent), so a duplicate whose first run belonged to a worker the
harness killed is told apart from one the engine let two live workers complete.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS side_effects (
    task_run_id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    pids TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS duplicates (
    task_run_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    pids TEXT NOT NULL,
    at REAL NOT NULL
);
"""

#: The Python body of a side-effect task. Rendered by the worker, so ids come from the run context;
#: it runs in the scripts pool's subprocess with an empty environment, hence the literal ledger path.
SCRIPT = """
import os, sqlite3, time
time.sleep({sleep_s})
def ancestors():
    pids, pid = [os.getpid()], os.getpid()
    for _ in range(3):
        with open(f"/proc/{{pid}}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        pids.append(pid)
    return " ".join(map(str, pids))
row = ("{{{{ taskrun.id }}}}", "{{{{ execution.id }}}}", "{{{{ task.id }}}}", ancestors(), time.time())
db = sqlite3.connect("{ledger}", timeout=60)
try:
    with db:
        db.execute("INSERT INTO side_effects VALUES (?, ?, ?, ?, ?)", row)
except sqlite3.IntegrityError:
    with db:
        db.execute("INSERT INTO duplicates VALUES (?, ?, ?, ?, ?)", row)
"""


@dataclass(frozen=True)
class Effect:
    task_run_id: str
    execution_id: str
    task_id: str
    pids: frozenset[int]
    at: float  #: when the script recorded it (epoch seconds)


class Ledger:
    """The SQLite file of one scenario."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def script(self, sleep_s: float) -> str:
        return SCRIPT.format(sleep_s=sleep_s, ledger=self.path)

    def effects(self) -> list[Effect]:
        return self._read("side_effects")

    def duplicates(self) -> list[Effect]:
        return self._read("duplicates")

    def _read(self, table: str) -> list[Effect]:
        with sqlite3.connect(self.path, timeout=60) as db:
            rows = db.execute(f"SELECT task_run_id, execution_id, task_id, pids, at FROM {table}").fetchall()
        return [Effect(r[0], r[1], r[2], frozenset(int(p) for p in r[3].split()), r[4]) for r in rows]


def split_duplicates(ledger: Ledger, killed_pids: Collection[int]) -> tuple[list[Effect], list[Effect]]:
    """(duplicates the engine let happen, re-runs after the harness killed the first run's worker).

    A worker killed after its script finished but before it reported leaves a side effect the engine
    never heard of; its take-over runs the task again (at-least-once). Any other duplicate is a bug.
    """
    first = {e.task_run_id: e for e in ledger.effects()}
    bugs, explained = [], []
    for duplicate in ledger.duplicates():
        original = first.get(duplicate.task_run_id)
        if original is not None and original.pids & set(killed_pids):
            explained.append(duplicate)
        else:
            bugs.append(duplicate)
    return bugs, explained
