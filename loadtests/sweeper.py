"""`python -m loadtests.sweeper`: time the sweeper's due queries as the task-run history grows.

A fresh throwaway database (migrated, dropped at the end) gets a fixed live set (the work a cluster is
doing now: running, retrying, paused, scheduled, queued rows, a few hundred of each) and then a growing
history of ended executions and task runs, bulk-inserted with `INSERT ... SELECT generate_series`. At each
size the database is ANALYZEd and every store function the sweeper calls each second (and the flow
admission count) runs `--reps` times on a pooled session; the table gives the median in milliseconds and
the index each query's plan reads. A due query is "flat" when its time does not grow with the history.

`--without-new-indexes` first downgrades the schema to just before the cliffs migration (main's indexes
and fillfactor), the "before" column. The queries are this branch's in both runs.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg.sql
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

import orchestrator.store
from orchestrator import store
from orchestrator.store import metrics
from orchestrator.store.database import make_engine, make_sessionmaker, migrate
from tests.harness import services

RESULTS = Path(__file__).parent / "results"
TENANT, NAMESPACE, FLOW = "main", "bench", "flow-0"
STALE_AFTER = timedelta(minutes=5)
#: Every execution has this many task runs (so executions = task runs / 4).
TASK_RUNS_PER_EXECUTION = 4

_STATE_HISTORY = json.dumps(
    [{"state": s, "date": f"2026-11-01T10:00:0{i}.000Z"} for i, s in enumerate(("CREATED", "RUNNING", "SUCCESS"))]
)
_ATTEMPTS = json.dumps(
    [{"state": "SUCCESS", "startDate": "2026-11-01T10:00:01.000Z", "endDate": "2026-11-01T10:00:02Z"}]
)

# The live set: a fixed amount of current work, whatever the history's size.
_LIVE_EXECUTIONS = """
INSERT INTO executions (id, tenant, namespace, flow_id, flow_revision, state, state_history, inputs, labels,
                        restarts, created_at, updated_at, sla_due_at, scheduled_at)
SELECT 'live' || i, 'main', 'bench', 'flow-' || (i % 3), 1,
       CASE WHEN i < 200 THEN 'RUNNING' WHEN i < 300 THEN 'CREATED' WHEN i < 400 THEN 'QUEUED' ELSE 'PAUSED' END,
       CAST(:history AS jsonb), '{}', '[{"key": "team", "value": "bench"}]', 0,
       now() - interval '1 hour',
       -- half the running executions made no progress for an hour: the stale sweep's candidates
       CASE WHEN i % 2 = 0 THEN now() - interval '1 hour' ELSE now() END,
       CASE WHEN i % 4 = 0 THEN now() + CASE WHEN i % 8 = 0 THEN interval '-1 minute' ELSE interval '1 hour' END END,
       CASE WHEN i >= 200 AND i < 300 THEN now() + CASE WHEN i % 2 = 0 THEN interval '-1 minute'
                                                   ELSE interval '1 day' END END
FROM generate_series(0, 449) AS i
"""
_LIVE_TASK_RUNS = """
INSERT INTO task_runs (id, execution_id, task_id, state, state_history, attempt, attempts, retry_at, claim_owner,
                       heartbeat_at, created_at, updated_at)
SELECT 'livetr' || i,
       -- the claimed task runs heartbeat for the odd running executions; the even ones are stale
       'live' || CASE WHEN i < 300 THEN (2 * i + 1) % 200 ELSE i % 200 END, 't' || (i % 7),
       CASE WHEN i < 300 THEN 'RUNNING' WHEN i < 350 THEN 'RUNNING' WHEN i < 550 THEN 'RETRYING' ELSE 'PAUSED' END,
       CAST(:history AS jsonb), 1, CAST(:attempts AS jsonb),
       CASE WHEN i < 300 THEN NULL  -- claimed task runs
            WHEN i >= 700 THEN NULL  -- paused until someone resumes
            WHEN i % 2 = 0 THEN now() - interval '10 seconds' ELSE now() + interval '1 hour' END,
       CASE WHEN i < 300 THEN 'worker-' || (i % 8) END,
       CASE WHEN i < 300 THEN now() - interval '2 seconds' END,
       now() - interval '1 hour', now()
FROM generate_series(0, 749) AS i
"""
# The history: ended executions and task runs over the last 30 days; ended executions keep their SLA deadline.
_HISTORY_EXECUTIONS = """
INSERT INTO executions (id, tenant, namespace, flow_id, flow_revision, state, state_history, inputs, labels,
                        restarts, created_at, updated_at, ended_at, sla_due_at)
SELECT 'x' || i, 'main', 'bench', 'flow-' || (i % 10), 1,
       CASE WHEN i % 100 < 95 THEN 'SUCCESS' WHEN i % 100 < 98 THEN 'FAILED' ELSE 'WARNING' END,
       CAST(:history AS jsonb), '{"n": 1}', '[{"key": "team", "value": "bench"}]', 0,
       at, at + interval '1 minute', at + interval '1 minute',
       CASE WHEN i % 10 = 0 THEN at + interval '1 hour' END
FROM generate_series(:start, :stop - 1) AS i,
     LATERAL (SELECT now() - interval '30 days' * random() - interval '2 hours') AS t(at)
"""
_HISTORY_TASK_RUNS = """
INSERT INTO task_runs (id, execution_id, task_id, state, state_history, attempt, attempts, outputs, retry_at,
                       heartbeat_at, created_at, updated_at)
SELECT 'tr' || i, 'x' || (i / 4), 't' || (i % 4),
       CASE WHEN i % 100 < 95 THEN 'SUCCESS' WHEN i % 100 < 98 THEN 'FAILED' WHEN i % 100 < 99 THEN 'WARNING'
            ELSE 'SKIPPED' END,
       CAST(:history AS jsonb), 1, CAST(:attempts AS jsonb), '{"value": "done"}',
       -- a run that once retried keeps its last retry time
       CASE WHEN i % 20 = 0 THEN now() - interval '3 days' END,
       now() - interval '3 days', now() - interval '3 days', now() - interval '3 days'
FROM generate_series(:start, :stop - 1) AS i
"""


@dataclass(frozen=True)
class DueQuery:
    name: str
    run: Callable[[Session], object]


def due_queries() -> list[DueQuery]:
    """The store functions one sweep calls (`engine/sweeper.py`), plus flow admission and the operator gauges."""

    def stale(session: Session) -> object:
        return store.stale_running_executions(session, store.db_now(session) - STALE_AFTER)

    return [
        DueQuery("due retries and loops", lambda s: store.executions_with_due_retries(s, store.utcnow())),
        DueQuery("due pauses", lambda s: store.due_paused_task_runs(s, store.utcnow())),
        DueQuery("stale executions", stale),
        DueQuery("due scheduled executions", lambda s: store.due_scheduled_executions(s, store.utcnow())),
        DueQuery("past SLA", lambda s: store.executions_past_sla(s, store.utcnow())),
        DueQuery("admission count (flow-0)", lambda s: store.count_active_executions(s, TENANT, NAMESPACE, FLOW)),
        DueQuery("gauge: stuck executions", lambda s: metrics.stuck_executions(s, STALE_AFTER.total_seconds())),
        DueQuery("gauge: live states", metrics.executions_by_live_state),
    ]


@contextmanager
def captured_statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The (SQL, parameters) the driver is handed while the block runs: what EXPLAIN must see."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def plan_of(engine: Engine, run: Callable[[Session], object], *, generic: bool = False) -> list[dict[str, Any]]:
    """The JSON plans of the SELECTs `run` sends (EXPLAIN, not ANALYZE: nothing runs twice, nothing locks).

    `generic`: the plan PostgreSQL uses for a prepared statement once it stops planning per call (psycopg
    prepares a statement on its fifth execution), which knows no parameter value: a partial index serves it
    only when the query's text itself implies the index's predicate.
    """
    with Session(engine) as session:
        with captured_statements(engine) as seen:
            run(session)
        connection = session.connection()
        plans = []
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            if generic:
                numbered, values = _numbered(statement, parameters)
                connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
                connection.exec_driver_sql(f"PREPARE chorus_plan_of AS {numbered}")
                driver = connection.connection.driver_connection
                literals = ", ".join(psycopg.sql.Literal(v).as_string(driver) for v in values)  # typed, unlike $n
                cursor = connection.exec_driver_sql(
                    f"EXPLAIN (FORMAT JSON) EXECUTE chorus_plan_of{f'({literals})' if values else ''}"
                )
                plans.append(cursor.scalar_one()[0]["Plan"])
                connection.exec_driver_sql("DEALLOCATE chorus_plan_of")
            else:
                cursor = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
                plans.append(cursor.scalar_one()[0]["Plan"])
        session.rollback()
    return plans


def pages_of(engine: Engine, run: Callable[[Session], object]) -> int:
    """Buffers (8 kB pages, from cache or disk) the statements `run` sends touch: a count the machine's load
    cannot blur, so it shows a cliff even when the timings are noisy (EXPLAIN ANALYZE, rolled back)."""
    with Session(engine) as session:
        with captured_statements(engine) as seen:
            run(session)
        connection = session.connection()
        pages = 0
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            cursor = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
            plan = cursor.scalar_one()[0]["Plan"]
            pages += int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))
        session.rollback()
    return pages


def _numbered(statement: str, parameters: dict[str, Any]) -> tuple[str, list[Any]]:
    """psycopg's `%(name)s` placeholders as PREPARE's `$1, $2, ...`, with the values in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    return re.sub(r"%\((\w+)\)s", number, statement), [parameters[name] for name in names]


def scans(plan: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(node type, table, index) of every scan in a plan tree."""
    found = []
    if "Relation Name" in plan or "Index Name" in plan:
        found.append((plan["Node Type"], plan.get("Relation Name", ""), plan.get("Index Name")))
    for child in plan.get("Plans", []):
        found.extend(scans(child))
    return found


def read_by(plans: Sequence[dict[str, Any]]) -> str:
    """The indexes the plans read, and any sequential scan (the cliff: its cost grows with the history)."""
    names = []
    for plan in plans:
        for node, table, index in scans(plan):
            if index:
                names.append(index)
            elif node == "Seq Scan":
                names.append(f"**Seq Scan on {table}**")
    return ", ".join(dict.fromkeys(names)) or "-"


def median_ms(sessions: sessionmaker[Session], run: Callable[[Session], object], reps: int) -> float:
    """The median time of `reps` calls, from the first statement to the last row, on an open transaction."""
    samples = []
    for i in range(reps + 2):
        with sessions() as session:
            session.connection()  # the pool checkout, its ping and BEGIN are not the query's
            started = time.perf_counter()
            run(session)
            elapsed = time.perf_counter() - started
            session.rollback()
        if i >= 2:  # the first calls warm the pool and the caches
            samples.append(elapsed * 1000)
    return statistics.median(samples)


def seed_live(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.execute(text(_LIVE_EXECUTIONS), {"history": _STATE_HISTORY})
        session.execute(text(_LIVE_TASK_RUNS), {"history": _STATE_HISTORY, "attempts": _ATTEMPTS})


def grow_history(sessions: sessionmaker[Session], start: int, stop: int) -> None:
    """Task runs [start, stop) of the history and their executions, in chunks of 250k task runs."""
    chunk = 250_000
    for lo in range(start, stop, chunk):
        hi = min(lo + chunk, stop)
        with sessions.begin() as session:
            per = TASK_RUNS_PER_EXECUTION
            session.execute(
                text(_HISTORY_EXECUTIONS), {"history": _STATE_HISTORY, "start": lo // per, "stop": hi // per}
            )
            session.execute(
                text(_HISTORY_TASK_RUNS),
                {"history": _STATE_HISTORY, "attempts": _ATTEMPTS, "start": lo, "stop": hi},
            )
    with sessions.begin() as session:
        session.execute(text("ANALYZE executions"))
        session.execute(text("ANALYZE task_runs"))


def downgrade_to_main(engine: Engine) -> None:
    """The schema before the cliffs migration: its downgrade restores main's indexes and fillfactor exactly.

    The target is that migration's parent, found by its file name, so the check survives a re-chaining.
    """
    config = Config()
    config.set_main_option("script_location", str(Path(orchestrator.store.__file__).parent / "migrations"))
    scripts = ScriptDirectory.from_config(config)
    (cliffs,) = [r for r in scripts.walk_revisions() if "_cliffs_" in Path(r.path).name]
    assert isinstance(cliffs.down_revision, str)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, cliffs.down_revision)


@dataclass
class Row:
    size: int
    medians: dict[str, float]
    pages: dict[str, int]
    indexes: dict[str, str]


def sizes_up_to(task_runs: int) -> list[int]:
    sizes = [n for n in (10_000, 100_000, 1_000_000, 10_000_000) if n < task_runs]
    return [*sizes, task_runs]


def run(task_runs: int, *, without_new_indexes: bool, reps: int) -> list[Row]:
    admin = services.postgres_admin_url()
    name = services.unique_database_name("sweeperbench")
    url = services.create_database(admin, name)
    rows: list[Row] = []
    try:
        engine = make_engine(url, pool_size=1)
        try:
            migrate(engine)
            if without_new_indexes:
                downgrade_to_main(engine)
            sessions = make_sessionmaker(engine)
            seed_live(sessions)
            done = 0
            for size in sizes_up_to(task_runs):
                started = time.monotonic()
                grow_history(sessions, done, size)
                done = size
                print(f"{size:>9,} task runs seeded in {time.monotonic() - started:.1f} s", file=sys.stderr)
                queries = due_queries()
                medians = {q.name: median_ms(sessions, q.run, reps) for q in queries}
                pages = {q.name: pages_of(engine, q.run) for q in queries}
                indexes = {q.name: read_by(plan_of(engine, q.run)) for q in queries}
                rows.append(Row(size, medians, pages, indexes))
        finally:
            engine.dispose()
    finally:
        services.drop_database(admin, name)
    return rows


def markdown(rows: Sequence[Row], *, without_new_indexes: bool, reps: int) -> str:
    schema = "main's indexes (migration 0012 undone)" if without_new_indexes else "with migration 0012"
    sizes = " / ".join(f"{r.size:,}" for r in rows)
    lines = [
        f"Sweeper due queries, {schema}. Time: median of {reps} calls in ms, from the first statement to the",
        "last row on an open transaction (round trips included; the machine is shared, so a few ms are noise).",
        "Pages: 8 kB buffers the query touches (EXPLAIN ANALYZE BUFFERS), the load-independent cost.",
        f"History: task runs as in the header, executions = task runs / {TASK_RUNS_PER_EXECUTION}, all ended; "
        "live set fixed: 450 executions, 750 task runs.",
        "",
        f"| query | ms at {sizes} task runs | pages at {sizes} | ms largest/smallest | plan reads |",
        "|---|---|---|---|---|",
    ]
    for name in rows[0].medians:
        ms = " / ".join(f"{r.medians[name]:.1f}" for r in rows)
        pages = " / ".join(f"{r.pages[name]:,}" for r in rows)
        ratio = rows[-1].medians[name] / rows[0].medians[name]
        lines.append(f"| {name} | {ms} | {pages} | {ratio:.1f}x | {rows[-1].indexes[name]} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.sweeper", description=__doc__.splitlines()[0])
    parser.add_argument("--task-runs", type=int, default=1_000_000, help="the largest history (sizes: 10k, 100k, ...)")
    parser.add_argument("--reps", type=int, default=20, help="timed calls per query and size (the median is shown)")
    parser.add_argument("--without-new-indexes", action="store_true", help="main's schema: undo migration 0012 first")
    parser.add_argument("--out", type=Path, help="also write the table here (e.g. loadtests/results/sweeper-<date>.md)")
    args = parser.parse_args(argv)
    rows = run(args.task_runs, without_new_indexes=args.without_new_indexes, reps=args.reps)
    table = markdown(rows, without_new_indexes=args.without_new_indexes, reps=args.reps)
    print(table)
    if args.out:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with args.out.open("a", encoding="utf-8") as out:
            out.write(f"\n## {stamp}: `{' '.join(['python -m loadtests.sweeper', *(argv or sys.argv[1:])])}`\n\n")
            out.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
