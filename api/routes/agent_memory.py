"""AIAgent memories: read and erase what an agent remembers across executions (Chorus's own routes).

`/namespaces/{namespace}/ai/memory/{memoryId}`: a memory belongs to its namespace and is guarded as the
namespace's KV entries are (reading needs kv.read, erasing kv.write; an invisible namespace is a 404).
Both are audited on the namespace's chain, in the transaction that read or erased. `.../ai/memory` lists the
namespace's live memories (kv.read; audited only when denied).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from api.deps import PrincipalDep, SettingsDep, api_action, authenticate, note
from api.permissions import Permission, guard
from orchestrator import store
from orchestrator.core.errors import NotFound
from orchestrator.engine.agent_memory import AgentMemory, check_memory_id
from orchestrator.engine.kv import check_namespace

router = APIRouter(tags=["AI"], dependencies=[Depends(authenticate)])


def _memory(request: Request) -> AgentMemory:
    return AgentMemory(request.app.state.engine.sessions)


def _subject(namespace: str, memory_id: str) -> str:
    return f"{namespace}/ai/memory/{memory_id}"


MAX_LISTED = 1000


@router.get("/namespaces/{namespace}/ai/memory")
def list_memories(
    request: Request,
    namespace: str,
    principal: PrincipalDep,
    config: SettingsDep,
    size: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 100,
) -> dict[str, Any]:
    """The namespace's live memories (not expired, not erased), the most recently written first."""
    note(request, "ai_memory.list", namespace=namespace, subject=f"{namespace}/ai/memory", read_only=True)
    guard(request, principal, Permission.KV_READ, "kv", namespace, namespace)
    check_namespace(namespace)
    found = _memory(request).memories(config.tenant, namespace, limit=size)
    return {
        "namespace": namespace,
        "results": [
            {"memoryId": memory_id, "messages": count, "lastWrite": store.iso(written)}
            for memory_id, count, written in found
        ],
    }


@router.get("/namespaces/{namespace}/ai/memory/{memory_id}")
def read_memory(
    request: Request, namespace: str, memory_id: str, principal: PrincipalDep, config: SettingsDep
) -> dict[str, Any]:
    """The memory's live messages, oldest first; 404 when it holds none (never written, erased or expired)."""
    # read_only: the middleware records only a denial; the read records itself, its 404 included.
    entry = note(request, "ai_memory.read", namespace=namespace, subject=_subject(namespace, memory_id), read_only=True)
    guard(request, principal, Permission.KV_READ, "kv", namespace, _subject(namespace, memory_id))
    check_namespace(namespace)
    check_memory_id(memory_id)
    rows = _memory(request).messages(config.tenant, namespace, memory_id, audit=api_action(request, entry))
    if not rows:
        raise NotFound("memory", f"{namespace}/{memory_id}")
    return {
        "namespace": namespace,
        "memoryId": memory_id,
        "version": rows[-1].id,
        "expirationDate": store.iso(rows[-1].expires_at),
        "totalTokens": sum(r.tokens for r in rows),
        "messages": [
            {
                **r.message,
                "tokens": r.tokens,
                "createdDate": store.iso(r.created_at),
                "executionId": r.execution_id,
                "taskRunId": r.task_run_id,
            }
            for r in rows
        ],
    }


@router.delete("/namespaces/{namespace}/ai/memory/{memory_id}")
def erase_memory(
    request: Request, namespace: str, memory_id: str, principal: PrincipalDep, config: SettingsDep
) -> dict[str, Any]:
    """Erase the memory, its past versions too: no agent, replay included, reads it again."""
    entry = note(request, "ai_memory.erase", namespace=namespace, subject=_subject(namespace, memory_id))
    guard(request, principal, Permission.KV_WRITE, "kv", namespace, _subject(namespace, memory_id))
    check_namespace(namespace)
    check_memory_id(memory_id)
    erased = _memory(request).erase(config.tenant, namespace, memory_id, audit=api_action(request, entry))
    entry.audited = True
    return {"namespace": namespace, "memoryId": memory_id, "erased": erased}
