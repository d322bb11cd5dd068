"""AIAgent memory across executions: Kestra's `memory` (KestraKVStore, PostgreSQL, Redis) kept in `agent_memory`.

A memory is one conversation per namespace (the flow's) and memory id. An agent reads it when its
conversation starts (`recall`) and appends its exchange, the prompt and the final answer, when it ends
(`remember`, inside the transaction of the agent's last journal save, so a task run taken over or
rolled back writes nothing, and a re-run of the same attempt writes once). As Kestra's KV-backed memory,
the whole memory expires `ttl` after its last write, and keeps the newest `messages` messages; Chorus
also bounds it in estimated tokens (`maxTokens`). `drop: BEFORE_TASKRUN` erases it before the agent reads,
`AFTER_TASKRUN` instead of writing.

Each read records the version (newest row id) and time it read at in the agent's journal: the agent's
next attempt (restart) and the same agent in a replay of its execution read that snapshot again, so
they never see turns written after the replayed run started. Every read, write and erase is audited:
the agent's on its execution's chain, the API's on the namespace's chain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from orchestrator import store
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import ChorusError
from orchestrator.engine.audit_trail import ApiAction, record
from orchestrator.engine.kv import ValueInvalid
from orchestrator.store import agent_memory as store_memory
from orchestrator.store.database import Session, sessionmaker, transaction
from orchestrator.store.tables import AgentMemoryRow

DEFAULT_MESSAGES = 10  #: Kestra's MemoryProvider default
DEFAULT_TTL = timedelta(hours=1)  #: Kestra's MemoryProvider default
DEFAULT_MAX_TOKENS = 8000  #: Chorus's own bound, in estimated tokens
DEFAULT_MEMORY_ID = "{{ labels.system.correlationId }}"  #: Kestra's default memoryId
_DROPS = ("NEVER", "BEFORE_TASKRUN", "AFTER_TASKRUN")


class MemoryInvalid(ValueInvalid):
    """Raised when a rendered memory property cannot be used (a TaskFailed for the agent, a 422 for the API)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"memory.{path}", message)


@dataclass(frozen=True)
class MemorySpec:
    """An agent's rendered `memory` property."""

    memory_id: str
    messages: int = DEFAULT_MESSAGES
    max_tokens: int = DEFAULT_MAX_TOKENS
    ttl: timedelta = DEFAULT_TTL
    drop: str = "NEVER"

    @classmethod
    def of(cls, rendered: Mapping[str, Any], memory_id: str) -> MemorySpec:
        spec = cls(check_memory_id(str(memory_id).strip()))
        if rendered.get("messages") is not None:
            spec = replace(spec, messages=_positive(rendered["messages"], "messages"))
        if rendered.get("maxTokens") is not None:
            spec = replace(spec, max_tokens=_positive(rendered["maxTokens"], "maxTokens"))
        if rendered.get("ttl") is not None:
            try:
                ttl = parse_duration(str(rendered["ttl"]))
            except ValueError as e:
                raise MemoryInvalid("ttl", str(e)) from None
            if ttl <= timedelta(0):
                raise MemoryInvalid("ttl", "must be a positive duration")
            spec = replace(spec, ttl=ttl)
        if rendered.get("drop") is not None:
            drop = str(rendered["drop"]).strip().upper()
            if drop not in _DROPS:
                raise MemoryInvalid("drop", f"must be one of {', '.join(_DROPS)}, got {rendered['drop']!r}")
            spec = replace(spec, drop=drop)
        return spec


def check_memory_id(memory_id: str) -> str:
    """A memory id: 1 to 512 characters, no NUL (PostgreSQL text cannot hold it)."""
    if not memory_id or len(memory_id) > 512 or "\x00" in memory_id:
        raise MemoryInvalid("memoryId", "must be a non-empty text of at most 512 characters, without NUL")
    return memory_id


def _positive(value: Any, path: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise MemoryInvalid(path, f"must be a positive integer, got {value!r}") from None
    if number < 1:
        raise MemoryInvalid(path, f"must be a positive integer, got {number}")
    return number


def estimated_tokens(message: Mapping[str, Any]) -> int:
    """A model-independent estimate: four characters a token, and a few for the message's framing."""
    return 4 + math.ceil(len(str(message.get("content") or "")) / 4)


@dataclass(frozen=True)
class Recalled:
    """What an agent read: the messages, and the snapshot (version, time) it read them at."""

    messages: list[dict[str, Any]]
    version: int
    at: str

    def snapshot(self) -> dict[str, Any]:
        return {"version": self.version, "at": self.at}


def _live(rows: Sequence[AgentMemoryRow], at: datetime) -> list[AgentMemoryRow]:
    """The rows of a memory still alive at `at`: all of them, unless its last write's TTL has passed."""
    if not rows or rows[-1].expires_at <= at:
        return []
    return list(rows)


def _within(rows: Sequence[AgentMemoryRow], spec: MemorySpec) -> list[AgentMemoryRow]:
    """The newest rows within the agent's bounds (a flow may have lowered them since the memory was written)."""
    kept = list(rows)
    while kept and (len(kept) > spec.messages or sum(r.tokens for r in kept) > spec.max_tokens):
        kept.pop(0)
    return kept


class AgentMemory:
    """Agent and API access to the memories of one tenant's namespaces."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # ---- the agent's side ---------------------------------------------------------------------

    def recall(
        self,
        *,
        execution_id: str,
        task_run_id: str,
        spec: MemorySpec,
        snapshot: Mapping[str, Any] | None,
        actor: str,
    ) -> Recalled:
        """The memory's messages for an agent starting its conversation (audited).

        `snapshot` is what this task run read before (a new attempt reads it again); without one, the same
        agent's snapshot in the execution this one replays, else the memory as it is now.
        """
        with transaction(self._sessions) as session:
            execution = store.get_execution(session, execution_id)
            if execution is None:
                raise ChorusError(f"execution {execution_id} not found")
            tenant, namespace = execution.tenant, execution.namespace
            replay_of: str | None = None
            # a replay names the execution it copies as its parent; a Subflow's retried child keeps an originalId too
            replayed = execution.parent_task_run_id is None
            if snapshot is None and execution.original_id and execution.parent_execution_id and replayed:
                run = store.get_task_run(session, task_run_id)
                if run is not None:
                    before = store_memory.replayed_conversation(
                        session, execution.parent_execution_id, run.task_id, run.iteration
                    )
                    snapshot = (before or {}).get("memory")
                    replay_of = execution.parent_execution_id if snapshot is not None else None
            replayed = snapshot is not None
            erased = 0
            if spec.drop == "BEFORE_TASKRUN" and not replayed:
                store_memory.lock_memory(session, tenant, namespace, spec.memory_id, write=True)
                erased = store_memory.erase(session, tenant, namespace, spec.memory_id)
                _audit(session, execution_id, actor, "agent.memory_erased", task_run_id, namespace, spec, rows=erased)
            else:
                store_memory.lock_memory(session, tenant, namespace, spec.memory_id, write=False)
            if snapshot is not None:
                version, at = int(snapshot["version"]), datetime.fromisoformat(str(snapshot["at"]))
            else:
                version, at = store_memory.head_version(session, tenant, namespace, spec.memory_id), store.utcnow()
            rows = store_memory.messages_at(session, tenant, namespace, spec.memory_id, version=version)
            if replay_of is not None:
                # The replayed run's snapshot, without the turns of its agents this replay runs again, and with
                # the turns this replay's agents already wrote in their place.
                kept = store_memory.copied_agent_runs(session, execution_id)
                rows = [r for r in rows if r.execution_id != replay_of or r.task_run_id in kept]
                own = store_memory.rows_of_execution(session, tenant, namespace, spec.memory_id, execution_id)
                rows = sorted([*rows, *own], key=lambda r: r.id)
            rows = _live(rows, at)
            messages = [dict(r.message) for r in _within(rows, spec)]
            _audit(
                session, execution_id, actor, "agent.memory_read", task_run_id, namespace, spec,
                version=version, messages=len(messages), snapshot=replayed,
            )  # fmt: skip
        return Recalled(messages, version, store.iso(at))

    def remember(
        self,
        session: Session,
        *,
        execution_id: str,
        task_run_id: str,
        attempt: int,
        spec: MemorySpec,
        exchange: Sequence[Mapping[str, Any]],
        actor: str,
    ) -> None:
        """Append an agent's exchange to its memory, in the caller's transaction (audited); bounded, oldest out."""
        execution = store.get_execution(session, execution_id)
        if execution is None:
            return
        tenant, namespace = execution.tenant, execution.namespace
        store_memory.lock_memory(session, tenant, namespace, spec.memory_id, write=True)
        if spec.drop == "AFTER_TASKRUN":
            erased = store_memory.erase(session, tenant, namespace, spec.memory_id)
            _audit(session, execution_id, actor, "agent.memory_erased", task_run_id, namespace, spec, rows=erased)
            return
        now = store.utcnow()
        head = store_memory.head_version(session, tenant, namespace, spec.memory_id)
        current = store_memory.messages_at(session, tenant, namespace, spec.memory_id, version=head)
        live = _live(current, now)
        expired = [r.id for r in current if r not in live]
        where = {"tenant": tenant, "namespace": namespace, "memory_id": spec.memory_id}
        ran = {"execution_id": execution_id, "task_run_id": task_run_id, "attempt": attempt}
        values = [
            {
                **where,
                **ran,
                "position": position,
                "message": dict(message),
                "tokens": estimated_tokens(message),
                "created_at": now,
                "expires_at": now + spec.ttl,
            }
            for position, message in enumerate(exchange)
        ]
        ids = store_memory.append_messages(session, values)
        if not ids:
            return  # this attempt already wrote its exchange (a re-run of its last step)
        version = ids[-1]
        kept: list[tuple[int, int]] = [(r.id, r.tokens) for r in live] + [
            (i, estimated_tokens(m)) for i, m in zip(ids, exchange, strict=True)
        ]
        dropped: list[int] = []
        while kept and (len(kept) > spec.messages or sum(t for _, t in kept) > spec.max_tokens):
            dropped.append(kept.pop(0)[0])
        store_memory.drop_messages(session, [*expired, *dropped], by=version)
        _audit(
            session, execution_id, actor, "agent.memory_written", task_run_id, namespace, spec,
            version=version, added=len(ids), dropped=len(dropped), expired=len(expired), messages=len(kept),
        )  # fmt: skip

    # ---- the API's side ------------------------------------------------------------------------

    def messages(self, tenant: str, namespace: str, memory_id: str, *, audit: ApiAction) -> list[AgentMemoryRow]:
        """The memory's live messages now (audited on the namespace's chain, in the read's own transaction)."""
        with transaction(self._sessions) as session:
            store_memory.lock_memory(session, tenant, namespace, memory_id, write=False)
            version = store_memory.head_version(session, tenant, namespace, memory_id)
            rows = store_memory.messages_at(session, tenant, namespace, memory_id, version=version)
            rows = _live(rows, store.utcnow())
            detail = {"memory_id": memory_id, "version": version, "messages": len(rows)}
            if not rows:  # the API answers 404
                audit = replace(audit, status=404, outcome="failed")
            record(session, tenant, _with(audit, detail), chain=store.namespace_chain_key(tenant, namespace))
            session.expunge_all()
        return rows

    def memories(self, tenant: str, namespace: str, *, limit: int) -> list[tuple[str, int, datetime]]:
        """The namespace's live memories: memory id, message count, last write (newest first, at most `limit`)."""
        with transaction(self._sessions) as session:
            return store_memory.live_memories(session, tenant, namespace, at=store.utcnow(), limit=limit)

    def erase(self, tenant: str, namespace: str, memory_id: str, *, audit: ApiAction) -> int:
        """Delete the memory, past versions included (a replay then reads nothing); audited either way."""
        with transaction(self._sessions) as session:
            store_memory.lock_memory(session, tenant, namespace, memory_id, write=True)
            erased = store_memory.erase(session, tenant, namespace, memory_id)
            detail = {"memory_id": memory_id, "erased": erased}
            record(session, tenant, _with(audit, detail), chain=store.namespace_chain_key(tenant, namespace))
        return erased


def _audit(
    session: Session,
    execution_id: str,
    actor: str,
    action: str,
    task_run_id: str,
    namespace: str,
    spec: MemorySpec,
    **detail: Any,
) -> None:
    payload = {"namespace": namespace, "memory_id": spec.memory_id, **detail}
    store.append_audit(session, execution_id, actor=actor, action=action, subject=task_run_id, payload=payload)


def _with(action: ApiAction, detail: dict[str, Any]) -> ApiAction:
    return replace(action, detail={**(action.detail or {}), **detail})
