"""How kv.Put combines the value it is given with the one a KV key holds (Kestra's `kv.Put#mergeValues`).

- a list of `{key, value}` entries patches a JSON value field by field (`nested.b` is a path); a single
  `{value}` entry replaces the whole value;
- a map is deep merged into a stored map;
- anything else replaces the stored value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.core.errors import TaskFailed


def merge_kv_value(existing: Any, new: Any) -> Any:
    """The value kv.Put stores, given the stored one (None when the key is absent). Raises TaskFailed with
    Kestra's message when the entries are malformed or patch a value that is not a JSON object."""
    if isinstance(new, list) and _is_entry_list(new):
        return _apply_entries(existing, new)
    if isinstance(existing, Mapping) and isinstance(new, Mapping):
        return _deep_merge(_string_keys(existing, "existing value"), _string_keys(new, "value"))
    return new


def _is_entry_list(entries: Sequence[Any]) -> bool:
    return bool(entries) and all(
        isinstance(item, Mapping) and "value" in item and set(item) <= {"key", "value"} for item in entries
    )


def _apply_entries(existing: Any, entries: Sequence[Mapping[str, Any]]) -> Any:
    updates: dict[str, Any] = {}
    replacement: tuple[Any] | None = None
    for entry in entries:
        key = entry.get("key")
        if key is None:
            if replacement is not None or updates or len(entries) > 1:
                raise _invalid("`value` entries without `key` can only be used as a single replacement item.")
            replacement = (entry["value"],)
            continue
        if replacement is not None:
            raise _invalid("Cannot mix keyed and non-keyed entries in `value`.")
        if not isinstance(key, str) or not key.strip():
            raise _invalid("Each keyed `value` entry must have a non-empty string `key`.")
        updates[key] = entry["value"]
    if replacement is not None:
        return replacement[0]
    nested = _nested(updates)
    if existing is None:
        return nested
    if not isinstance(existing, Mapping):
        raise _invalid("Cannot apply keyed `value` updates to a non-JSON existing KV value.")
    return _deep_merge(_string_keys(existing, "existing value"), nested)


def _nested(updates: Mapping[str, Any]) -> dict[str, Any]:
    """Kestra's `MapUtils.flattenToNestedMap`: `{"nested.b": 2}` -> `{"nested": {"b": 2}}`."""
    nested: dict[str, Any] = {}
    for path, value in updates.items():
        *parents, leaf = path.split(".")
        node = nested
        for name in parents:
            child = node.get(name)
            if not isinstance(child, dict):
                child = node[name] = {}
            node = child
        node[leaf] = value
    return nested


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Kestra's `MapUtils.deepMerge`: nested maps merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        both_maps = isinstance(current, Mapping) and isinstance(value, Mapping)
        merged[key] = _deep_merge(current, value) if both_maps else value  # type: ignore[arg-type]
    return merged


def _string_keys(value: Mapping[Any, Any], name: str) -> Mapping[str, Any]:
    if not all(isinstance(key, str) for key in value):
        raise _invalid(f"`{name}` map keys must be strings.")
    return value


def _invalid(message: str) -> TaskFailed:
    return TaskFailed(message, retryable=False)
