"""SQLAlchemy 2 typed mappings of the tables; used only by the store (and the API's read queries)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import BigInteger, Boolean, DateTime, Identity, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orchestrator.core.decision import TaskRunDecision
from orchestrator.store.live import LIVE_PREDICATE

Json = dict[str, Any]


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB, datetime: DateTime(timezone=True)}

    if TYPE_CHECKING:
        # Each row class maps one table (SQLAlchemy types it as any FromClause): Core statements over it type-check.
        __table__: ClassVar[Table]


def table_of(row: type[Base]) -> Table:
    """The Core table of a row class, typed as the `Table` every mapped class here has (for Core statements)."""
    table = row.__table__
    assert isinstance(table, Table)
    return table


class FlowRevisionRow(Base):
    """One saved revision of a flow; the newest non-deleted revision is the live flow."""

    __tablename__ = "flow_revisions"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(256), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    document: Mapped[dict[str, Any]]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class ExecutionRow(Base):
    __tablename__ = "executions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(256))
    flow_id: Mapped[str] = mapped_column(String(256))
    flow_revision: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    state_history: Mapped[list[Any]]
    inputs: Mapped[dict[str, Any]]
    outputs: Mapped[dict[str, Any] | None]
    labels: Mapped[list[Any]]
    trigger: Mapped[dict[str, Any] | None]
    parent_execution_id: Mapped[str | None] = mapped_column(String(32))
    parent_task_run_id: Mapped[str | None] = mapped_column(String(32))
    original_id: Mapped[str | None] = mapped_column(String(32))
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    sla_due_at: Mapped[datetime | None] = mapped_column(default=None)  #: earliest MAX_DURATION deadline
    sla: Mapped[dict[str, Any] | None] = mapped_column(default=None)  #: the SLA that deadline belongs to
    scheduled_at: Mapped[datetime | None] = mapped_column(default=None)  #: CREATED until then (scheduleDate)
    #: when the first execution of a retry chain (CREATE_NEW_EXECUTION) was created: retries' maxDuration
    original_created_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_executions_flow", "tenant", "namespace", "flow_id", "created_at"),
        # No index may hold updated_at: touches must stay HOT updates (migration 0012, store/live.py).
        Index("ix_executions_live", "state", postgresql_where=LIVE_PREDICATE),
        Index(
            "ix_executions_flow_live", "tenant", "namespace", "flow_id", "created_at", postgresql_where=LIVE_PREDICATE
        ),
        Index("ix_executions_sla_due", "sla_due_at", postgresql_where=f"sla_due_at IS NOT NULL AND {LIVE_PREDICATE}"),
        Index("ix_executions_created", "tenant", "created_at"),
        Index(
            "ix_executions_parent_task_run",
            "parent_task_run_id",
            postgresql_where="parent_task_run_id IS NOT NULL",
        ),
        Index("ix_executions_parent", "parent_execution_id", postgresql_where="parent_execution_id IS NOT NULL"),
        Index(
            "ix_executions_scheduled",
            "scheduled_at",
            postgresql_where="state = 'CREATED' AND scheduled_at IS NOT NULL",
        ),
        Index("ix_executions_labels", "labels", postgresql_using="gin", postgresql_ops={"labels": "jsonb_path_ops"}),
    )


class TaskRunRow(Base):
    __tablename__ = "task_runs"

    # Ordering of the taskRunList follows creation, as in Kestra.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str] = mapped_column(String(256))
    parent_id: Mapped[str | None] = mapped_column(String(32))
    iteration: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    state_history: Mapped[list[Any]]
    attempt: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[list[Any]]
    outputs: Mapped[dict[str, Any] | None]
    decision: Mapped[TaskRunDecision | None] = mapped_column(JSONB)  #: a flowable's choice (core.decision)
    retry_at: Mapped[datetime | None]
    claim_owner: Mapped[str | None] = mapped_column(String(256))
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_task_runs_execution", "execution_id", "seq"),
        Index(
            "ix_task_runs_retry_due",
            "retry_at",
            postgresql_where="state IN ('RETRYING', 'RUNNING') AND retry_at IS NOT NULL",
        ),
        Index("ix_task_runs_paused_due", "retry_at", postgresql_where="state = 'PAUSED' AND retry_at IS NOT NULL"),
    )


class LogLineRow(Base):
    __tablename__ = "log_lines"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(32))
    task_run_id: Mapped[str | None] = mapped_column(String(32))
    task_id: Mapped[str | None] = mapped_column(String(256))
    attempt: Mapped[int | None] = mapped_column(Integer)
    namespace: Mapped[str] = mapped_column(String(256))
    flow_id: Mapped[str] = mapped_column(String(256))
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]

    __table_args__ = (
        Index("ix_log_lines_execution", "execution_id", "id"),
        Index("ix_log_lines_namespace_at", "namespace", "at"),
    )


class AuditEventRow(Base):
    """Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE (see the first migration)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    chain_key: Mapped[str] = mapped_column(String(600))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(600))
    payload: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))  #: the MAC key's id; None: written without a key
    mac: Mapped[str | None] = mapped_column(String(64))  #: HMAC-SHA256 of `hash` (core.audit.event_mac)

    __table_args__ = (
        UniqueConstraint("chain_key", "seq", name="uq_audit_events_chain_seq"),
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor", "actor"),
    )


class AuditHeadRow(Base):
    """The last (seq, hash) of each chain; its row lock serialises appends to one chain."""

    __tablename__ = "audit_heads"

    chain_key: Mapped[str] = mapped_column(String(600), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
    mac: Mapped[str | None] = mapped_column(String(64))  #: HMAC of (chain, seq, hash): a shortened chain shows


class KeyValueRow(Base):
    """A namespace KV entry with Kestra's value typing (STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION, JSON)."""

    __tablename__ = "kv_entries"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(256), primary_key=True)
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    value_type: Mapped[str] = mapped_column(String(16))
    value: Mapped[dict[str, Any]]  #: {"v": <json value>} so scalars fit a JSONB object column
    description: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(256), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(512))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class ApiTokenRow(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(256))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_api_tokens_user", "user_id"),)


class RoleBindingRow(Base):
    """A role granted to a user on every namespace starting with `namespace_prefix` ('' for all)."""

    __tablename__ = "role_bindings"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32))
    namespace_prefix: Mapped[str] = mapped_column(String(256), default="")

    __table_args__ = (UniqueConstraint("user_id", "role", "namespace_prefix", name="uq_role_bindings"),)


class TriggerRow(Base):
    """A flow trigger's schedule state: the next fire time is committed with the execution it creates."""

    __tablename__ = "triggers"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(256), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    trigger_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_fire_at: Mapped[datetime | None]
    last_fire_at: Mapped[datetime | None]
    last_execution_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_triggers_due", "next_fire_at", postgresql_where="enabled"),)


class LlmCallRow(Base):
    """One model call: for accounting (tokens, cost, latency) and for replay of recorded answers."""

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(32))
    task_run_id: Mapped[str | None] = mapped_column(String(32))
    attempt: Mapped[int | None] = mapped_column(Integer)
    namespace: Mapped[str] = mapped_column(String(256))
    flow_id: Mapped[str] = mapped_column(String(256))
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    request_hash: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]]
    response: Mapped[dict[str, Any] | None]
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(default=0.0)
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    finish_reason: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]

    __table_args__ = (
        Index("ix_llm_calls_execution", "execution_id", "id"),
        Index("ix_llm_calls_replay", "task_run_id", "request_hash"),
        Index("ix_llm_calls_flow_at", "namespace", "flow_id", "at"),
    )


class AgentRunRow(Base):
    """An AIAgent task run's conversation so far: messages, pending tool calls, approvals decided."""

    __tablename__ = "agent_runs"

    task_run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str] = mapped_column(String(256))
    attempt: Mapped[int] = mapped_column(Integer)
    memory_id: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(32))  #: RUNNING, AWAITING_APPROVAL, DONE
    conversation: Mapped[dict[str, Any]]
    approvals: Mapped[dict[str, Any]] = mapped_column(default=dict)  #: tool call id -> decision
    updated_at: Mapped[datetime]


class AgentMemoryRow(Base):
    """One remembered message of an AIAgent memory (namespace + memory id); `id` is its version.

    Rows are never rewritten: a write that evicts older messages (over the message or token bound) marks them
    `dropped_by` its own last id, so a snapshot at version V is `id <= V` and not dropped by V. Erase deletes.
    """

    __tablename__ = "agent_memory"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(256))
    memory_id: Mapped[str] = mapped_column(String(512))
    execution_id: Mapped[str] = mapped_column(String(32))
    task_run_id: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    message: Mapped[dict[str, Any]]
    tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    dropped_by: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_agent_memory_key", "tenant", "namespace", "memory_id", "id"),
        Index("ux_agent_memory_write", "task_run_id", "attempt", "position", unique=True),
    )


class FlowTriggerWindowRow(Base):
    """A windowed Flow trigger's preconditions met so far in one time window (condition id -> ISO time)."""

    __tablename__ = "flow_trigger_windows"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(256), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    trigger_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    window_end: Mapped[datetime]
    met: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class LlmBudgetReservationRow(Base):
    """What one in-flight model call may spend against a budget (its `maxTokens`), until its usage is recorded."""

    __tablename__ = "llm_budget_reservations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(300))  #: "execution:<id>" or "task_run:<id>"
    execution_id: Mapped[str] = mapped_column(String(32))
    task_run_id: Mapped[str | None] = mapped_column(String(32))
    tokens: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float]
    expires_at: Mapped[datetime]  #: a worker lost mid-call leaves one: it stops counting then

    __table_args__ = (Index("ix_llm_budget_reservations_scope", "scope_key", "expires_at"),)


class LedgerReplayRow(Base):
    """An execution replayed from the ledger: its model and tool calls are served from `source_execution_id`'s.

    `live_from` names the task from which (in the flow's order) calls go to the providers again; None: none do.
    """

    __tablename__ = "ledger_replays"

    execution_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_execution_id: Mapped[str] = mapped_column(String(32))
    live_from: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_ledger_replays_source", "source_execution_id"),)
