"""Kestra's deprecated state tasks (state.Set/Get/Delete) and kv.GetKeys, on the namespace KV store.

As in Kestra's `StateStore`, a state is a JSON map kept in the flow's namespace KV store under
`<flow slug>_states_tasks-states_<name>[_<murmur3 of taskrun.value>]` (no flow prefix with `namespace: true`),
so a state written by one execution is read by the next, and by `kv()`.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator import internal_storage as storage
from orchestrator.core.errors import ChorusError, TaskFailed
from orchestrator.core.expressions import is_true
from orchestrator.engine.kv import TypedValue
from workers.context import TaskContext
from workers.kvtasks import audit_action

_MASK = (1 << 64) - 1
_C1, _C2 = 0x87C37B91114253D5, 0x4CF5AD432745937F


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    return k ^ (k >> 33)


def murmur3_128_hex(text: str) -> str:
    """Guava's `murmur3_128().hashString(text, UTF_8).toString()` (Kestra's `Hashing.hashToString`)."""
    data = text.encode()
    h1 = h2 = 0
    blocks = len(data) // 16
    for i in range(blocks):
        k1 = int.from_bytes(data[i * 16 : i * 16 + 8], "little")
        k2 = int.from_bytes(data[i * 16 + 8 : i * 16 + 16], "little")
        h1 ^= _rotl((k1 * _C1) & _MASK, 31) * _C2 & _MASK
        h1 = (_rotl(h1, 27) + h2) & _MASK
        h1 = (h1 * 5 + 0x52DCE729) & _MASK
        h2 ^= _rotl((k2 * _C2) & _MASK, 33) * _C1 & _MASK
        h2 = (_rotl(h2, 31) + h1) & _MASK
        h2 = (h2 * 5 + 0x38495AB5) & _MASK
    tail = data[blocks * 16 :]
    k1 = int.from_bytes(tail[:8], "little")
    k2 = int.from_bytes(tail[8:], "little")
    if len(tail) > 8:
        h2 ^= _rotl((k2 * _C2) & _MASK, 33) * _C1 & _MASK
    if tail:
        h1 ^= _rotl((k1 * _C1) & _MASK, 31) * _C2 & _MASK
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    return (h1.to_bytes(8, "little") + h2.to_bytes(8, "little")).hex()


#: Kestra's `Slugify.of`, shared with the storage paths.
slugify = storage.slug


def _flag(ctx: TaskContext, name: str, default: bool) -> bool:
    raw = ctx.properties.get(name)
    return default if raw is None else is_true(ctx.render(raw))


def _state_key(ctx: TaskContext) -> tuple[str, str]:
    name = str(ctx.render(ctx.properties.get("name") or "default"))
    key = f"states_tasks-states_{name}"
    if not _flag(ctx, "namespace", False):
        key = f"{slugify(ctx.claimed.flow.id)}_{key}"
    value = (ctx.claimed.variables.get("taskrun") or {}).get("value")
    if _flag(ctx, "taskrunValue", True) and value is not None:
        key = f"{key}_{murmur3_128_hex(str(value))}"
    return ctx.claimed.flow.namespace, key


def _read(ctx: TaskContext, namespace: str, key: str) -> dict[str, Any] | None:
    try:
        value = ctx.engine.kv.get(namespace, key).value.get("v")
    except ChorusError:
        return None
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else None


def _merge(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Kestra's `MapUtils.merge`: nested maps merged key by key, anything else replaced."""
    merged = dict(current)
    for k, v in update.items():
        merged[k] = _merge(merged[k], v) if isinstance(merged.get(k), dict) and isinstance(v, dict) else v
    return merged


def run_state_get(ctx: TaskContext) -> dict[str, Any] | None:
    namespace, key = _state_key(ctx)
    data = _read(ctx, namespace, key)
    if data is None:
        if _flag(ctx, "errorOnMissing", False):
            raise TaskFailed(f"State {key} not found", retryable=False)
        data = {}
    return {"count": len(data), "data": data}


def run_state_set(ctx: TaskContext) -> dict[str, Any] | None:
    namespace, key = _state_key(ctx)
    update = ctx.render(ctx.properties.get("data") or {})
    merged = _merge(_read(ctx, namespace, key) or {}, update)
    ctx.engine.kv.put(
        namespace,
        key,
        TypedValue("JSON", merged),
        ttl=None,
        description=None,
        audit=audit_action(ctx, "kv.put", namespace, key),
    )
    return {"count": len(merged), "key": key}


def run_state_delete(ctx: TaskContext) -> dict[str, Any] | None:
    namespace, key = _state_key(ctx)
    deleted = ctx.engine.kv.delete(namespace, key, audit=audit_action(ctx, "kv.delete", namespace, key))
    if not deleted and _flag(ctx, "errorOnMissing", False):
        name = ctx.render(ctx.properties.get("name") or "default")
        raise TaskFailed(f"Unable to find the state file '{name}'", retryable=False)
    return {"deleted": deleted}


def run_kv_get_keys(ctx: TaskContext) -> dict[str, Any] | None:
    """kv.GetKeys: the live keys of a namespace, those starting with `prefix` when given."""
    namespace = str(ctx.render(ctx.properties.get("namespace") or ctx.claimed.flow.namespace))
    prefix = ctx.render(ctx.properties.get("prefix"))
    keys = [row.key for row in ctx.engine.kv.entries(namespace)]
    return {"keys": [k for k in keys if prefix is None or k.startswith(str(prefix))]}


HANDLERS = {
    "StateGet": run_state_get,
    "StateSet": run_state_set,
    "StateDelete": run_state_delete,
    "KVGetKeys": run_kv_get_keys,
}
