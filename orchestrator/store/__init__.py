"""The store: every SQL statement of Chorus, over a transaction its caller owns.

What it owns: the database connection (`database`), the typed rows (`tables`), the Alembic migrations, and one
module per aggregate (executions, task runs, flows, logs, audit, kv, auth, llm, agent, triggers, events,
search). Functions here never commit: the engine (or an API request) owns the transaction. Writes of state
always go through `transitions.record_transition`, which checks the core transition table, updates the row
with compare-and-set on the previous state and appends the audit event in the same transaction.

What it may import: `orchestrator.core` and `orchestrator.settings`; never the engine, triggers, api or workers.
This `__init__` re-exports the functions of the execution aggregate the engine calls as `store.<name>`.
"""

from orchestrator.store import commit_writes as _commit_writes  # noqa: F401  (its before_commit hook)
from orchestrator.store.audit_chain import (
    append_audit,
    audit_chain_keys,
    audit_events,
    audit_head,
    audit_key_of,
    flow_chain_key,
    hashed_event,
    namespace_chain_key,
    write_pending_audit,
)
from orchestrator.store.clock import DbClock, db_now, db_started_at, iso, iso_millis, transaction_now, utcnow
from orchestrator.store.due import (
    clear_due_loops,
    due_paused_task_runs,
    due_scheduled_executions,
    executions_past_sla,
    executions_with_due_retries,
    stale_running_executions,
)
from orchestrator.store.executions import (
    child_execution_outputs,
    child_execution_states,
    clear_sla,
    count_active_executions,
    get_execution,
    lock_execution,
    lock_touch_execution,
    oldest_queued_executions,
    running_children,
    touch_execution,
    update_labels,
)
from orchestrator.store.flows import (
    latest_flow,
    latest_flow_revision,
    live_flows,
    live_flows_mentioning,
    live_flows_query,
    mark_flow_deleted,
    save_flow_revision,
)
from orchestrator.store.locks import lock_flow_concurrency, try_advisory_lock
from orchestrator.store.logs import error_log_lines, insert_log_lines, log_lines_of
from orchestrator.store.task_runs import (
    close_attempt,
    get_task_run,
    heartbeat,
    hold_new_execution,
    hold_task_runs,
    known_absent,
    loaded_task_run,
    set_decision,
    task_run_states_of,
    task_runs_for_variables,
    task_runs_of,
    task_runs_of_celery_task,
    waiting_task_runs,
)
from orchestrator.store.transitions import (
    create_execution,
    create_task_run,
    discard_task_run,
    note_execution,
    note_flow,
    note_take_over,
    pause_task_run,
    record_transition,
    recorded_changes,
)

__all__ = [
    "DbClock",
    "append_audit",
    "audit_chain_keys",
    "audit_events",
    "audit_head",
    "audit_key_of",
    "child_execution_outputs",
    "child_execution_states",
    "clear_due_loops",
    "clear_sla",
    "close_attempt",
    "count_active_executions",
    "create_execution",
    "create_task_run",
    "db_now",
    "db_started_at",
    "discard_task_run",
    "due_paused_task_runs",
    "due_scheduled_executions",
    "error_log_lines",
    "executions_past_sla",
    "executions_with_due_retries",
    "flow_chain_key",
    "get_execution",
    "get_task_run",
    "hashed_event",
    "heartbeat",
    "hold_new_execution",
    "hold_task_runs",
    "insert_log_lines",
    "iso",
    "iso_millis",
    "known_absent",
    "latest_flow",
    "latest_flow_revision",
    "live_flows",
    "live_flows_mentioning",
    "live_flows_query",
    "loaded_task_run",
    "lock_execution",
    "lock_flow_concurrency",
    "lock_touch_execution",
    "log_lines_of",
    "mark_flow_deleted",
    "namespace_chain_key",
    "note_execution",
    "note_flow",
    "note_take_over",
    "oldest_queued_executions",
    "pause_task_run",
    "record_transition",
    "recorded_changes",
    "running_children",
    "save_flow_revision",
    "set_decision",
    "stale_running_executions",
    "task_run_states_of",
    "task_runs_for_variables",
    "task_runs_of",
    "task_runs_of_celery_task",
    "touch_execution",
    "transaction_now",
    "try_advisory_lock",
    "update_labels",
    "utcnow",
    "waiting_task_runs",
    "write_pending_audit",
]
