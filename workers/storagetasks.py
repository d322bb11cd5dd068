"""Kestra's storage tasks on internal storage: Write, Concat, Split, Reverse, Size, Delete, FilterItems,
DeduplicateItems and PurgeCurrentExecutionFiles, each ported from `io.kestra.plugin.core.storage.<Class>`.

Item files (FilterItems, DeduplicateItems) hold one Ion value per line, as Kestra writes them; a line is
read as JSON, or as Ion with bare field names (`{id:1,name:"a"}`).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator import internal_storage as storage
from orchestrator.core.errors import ChorusError, TaskFailed
from orchestrator.core.expressions import is_true, render
from workers.context import TaskContext
from workers.storage import local_path, store_file

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?B)?\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_ION_FIELD = re.compile(r"([{,]\s*)([A-Za-z_$][\w$]*)\s*:(?!:)")


def _size(text: str) -> int:
    """A data size as Kestra writes it (`10MB`, `512KB`, `1024`), in bytes."""
    match = _SIZE.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise TaskFailed(f"bytes: expected a size such as 10MB, got {text!r}", retryable=False)
    return int(match.group(1)) * _UNITS[(match.group(2) or "B").upper()]


def _data_dir(ctx: TaskContext) -> Path:
    return ctx.engine.settings.data_dir


def _source(ctx: TaskContext, prop: str) -> tuple[str, Path]:
    uri = ctx.render(ctx.properties.get(prop))
    if not isinstance(uri, str) or not uri.strip():
        raise TaskFailed(f"{prop}: expected the URI of a file in internal storage, got {uri!r}", retryable=False)
    path = ctx.guard.stored_file(uri.strip(), prop)
    if not path.is_file():
        raise TaskFailed(f"{prop}: no file at {uri.strip()}", retryable=False)
    return uri.strip(), path


def _extension(uri: str) -> str:
    name = uri.rsplit("/", 1)[-1]
    return name[name.rfind(".") :] if "." in name else ""


def _temp_name(extension: str | None) -> str:
    # Kestra names each file it puts from a temp file; keep the extension, which readers rely on.
    ext = extension or ""
    return f"{uuid.uuid4().hex}{ext if not ext or ext.startswith('.') else '.' + ext}"


def read_item(line: str) -> Any:
    """One line of an item file: JSON, or Ion with bare field names."""
    try:
        return json.loads(line)
    except ValueError:
        pass
    try:
        return json.loads(_ION_FIELD.sub(r'\1"\2":', line))
    except ValueError as e:
        raise TaskFailed(f"cannot read the item {line[:80]!r}", retryable=False) from e


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def run_write(ctx: TaskContext) -> dict[str, Any] | None:
    content = ctx.render(ctx.properties.get("content"))
    if content is None:
        raise TaskFailed("content: a file content is required", retryable=False)
    text = content if isinstance(content, str) else json.dumps(content)
    name = _temp_name(ctx.render(ctx.properties.get("extension")) or ".tmp")
    return {"uri": store_file(_data_dir(ctx), ctx.claimed, name, text.encode())}


def run_concat(ctx: TaskContext) -> dict[str, Any] | None:
    files = ctx.render(ctx.properties.get("files"))
    if isinstance(files, str):
        try:
            files = json.loads(files)
        except ValueError as e:
            raise TaskFailed(f"files: expected a list of URIs or a JSON array, got {files!r}", retryable=False) from e
    if not isinstance(files, list):
        raise TaskFailed(f"Invalid `files` properties with type '{type(files).__name__}'", retryable=False)
    separator = ctx.properties.get("separator")
    body = bytearray()
    for uri in files:
        path = ctx.guard.stored_file(str(ctx.render(uri)), "files")
        if not path.is_file():
            raise TaskFailed(f"files: no file at {uri}", retryable=False)
        body += path.read_bytes()
        if separator is not None:
            body += str(separator).encode()  # Kestra does not render the separator
    name = _temp_name(ctx.render(ctx.properties.get("extension")) or ".tmp")
    return {"uri": store_file(_data_dir(ctx), ctx.claimed, name, bytes(body))}


def split_file(path: Path, how: dict[str, Any]) -> list[bytes]:
    """Kestra's `StorageService.split`: the file's lines (any line break), each written with `separator`, cut
    into files by `bytes` (a new file once one holds at least that many), `rows`, or `partitions` (round
    robin, empty partitions dropped); the first of the three that is set wins."""
    separator = str(how.get("separator") if how.get("separator") is not None else "\n")
    rows = [(line + separator).encode() for line in path.read_text().splitlines()]
    if how.get("bytes") is not None:
        limit = _size(str(how["bytes"]))
        return _cut(rows, lambda size, count: size >= limit)
    if how.get("partitions") is not None:
        count = int(how["partitions"])
        if count < 1:
            raise TaskFailed("partitions must be at least 1", retryable=False)
        parts = [bytearray() for _ in range(count)]
        for index, row in enumerate(rows):
            parts[index % count] += row
        return [bytes(part) for part in parts if part]
    if how.get("rows") is not None:
        limit = int(how["rows"])
        if limit < 1:
            raise TaskFailed("rows must be at least 1", retryable=False)
        return _cut(rows, lambda size, count: count >= limit)
    raise TaskFailed("Invalid configuration with no size, count, nor rows", retryable=False)


def _cut(rows: list[bytes], full: Callable[[int, int], bool]) -> list[bytes]:
    files: list[bytearray] = []
    size = count = 0
    for row in rows:
        if not files or full(size, count):
            files.append(bytearray())
            size = count = 0
        files[-1] += row
        size, count = size + len(row), count + 1
    return [bytes(f) for f in files]


def run_split(ctx: TaskContext) -> dict[str, Any] | None:
    uri, path = _source(ctx, "from")
    how = {k: ctx.render(ctx.properties.get(k)) for k in ("bytes", "partitions", "rows", "separator")}
    extension = _extension(uri) or ".tmp"
    cuts = split_file(path, how)
    return {"uris": [store_file(_data_dir(ctx), ctx.claimed, _temp_name(extension), cut) for cut in cuts]}


def run_reverse(ctx: TaskContext) -> dict[str, Any] | None:
    uri, path = _source(ctx, "from")
    separator = str(ctx.render(ctx.properties.get("separator") or "\n"))
    charset = str(ctx.render(ctx.properties.get("charset") or "utf-8"))
    try:
        lines = path.read_text(encoding=charset).splitlines()
    except LookupError as e:
        raise TaskFailed(f"charset: unknown charset {charset!r}", retryable=False) from e
    body = "".join(line + separator for line in reversed(lines)).encode(charset)
    return {"uri": store_file(_data_dir(ctx), ctx.claimed, _temp_name(_extension(uri)), body)}


def _any_path(ctx: TaskContext, prop: str, *, write: bool = False) -> tuple[str, Path]:
    """A file of an execution this flow may read (to delete: of its own namespace), or of its namespace."""
    uri = str(ctx.render(ctx.properties.get(prop)))
    return uri, ctx.guard.stored_file(uri, prop, write=write)


def run_size(ctx: TaskContext) -> dict[str, Any] | None:
    uri, path = _any_path(ctx, "uri")
    if not path.is_file():
        raise TaskFailed(f"Unable to find file '{uri}'", retryable=False)
    return {"size": path.stat().st_size}


def run_delete(ctx: TaskContext) -> dict[str, Any] | None:
    uri, path = _any_path(ctx, "uri", write=True)
    deleted = path.is_file()
    if deleted:
        path.unlink()
    error_on_missing = ctx.properties.get("errorOnMissing")
    if not deleted and error_on_missing is not None and is_true(ctx.render(error_on_missing)):
        raise TaskFailed(f"Unable to find file '{uri}'", retryable=False)
    return {"uri": uri, "deleted": deleted}


def _render_item(ctx: TaskContext, expression: str, item: Any) -> str:
    variables = {**ctx.claimed.variables, **item} if isinstance(item, dict) else ctx.claimed.variables
    return render(expression, variables, functions=ctx.functions)


def run_filter_items(ctx: TaskContext) -> dict[str, Any] | None:
    _, path = _source(ctx, "from")
    condition = str(ctx.properties.get("filterCondition"))
    keep_on_match = str(ctx.render(ctx.properties.get("filterType") or "INCLUDE")) == "INCLUDE"
    on_null = str(ctx.render(ctx.properties.get("errorOrNullBehavior") or "FAIL"))
    kept: list[str] = []
    processed = dropped = 0
    for line in _lines(path):
        try:
            rendered: str | None = _render_item(ctx, condition, read_item(line))
        except ChorusError:
            if on_null == "FAIL":
                raise
            rendered = None
        # The condition failed on this item: `errorOrNullBehavior` decides.
        include = on_null == "INCLUDE" if rendered is None else is_true(rendered.strip()) == keep_on_match
        processed += 1
        if include:
            kept.append(line)
        else:
            dropped += 1
    body = "".join(f"{line}\n" for line in kept).encode()
    return {
        "uri": store_file(_data_dir(ctx), ctx.claimed, _temp_name(".ion"), body),
        "processedItemsTotal": processed,
        "droppedItemsTotal": dropped,
    }


def run_deduplicate_items(ctx: TaskContext) -> dict[str, Any] | None:
    """Keep, for each key, the last item that has it, in file order (Kestra's two passes)."""
    _, path = _source(ctx, "from")
    expression = str(ctx.properties.get("expr"))
    lines = _lines(path)
    keys = [_render_item(ctx, expression, read_item(line)) for line in lines]
    last = {key: offset for offset, key in enumerate(keys)}
    kept = [line for offset, line in enumerate(lines) if last[keys[offset]] == offset]
    return {
        "uri": store_file(_data_dir(ctx), ctx.claimed, _temp_name(".ion"), "".join(f"{k}\n" for k in kept).encode()),
        "numKeys": len(last),
        "processedItemsTotal": len(lines),
        "droppedItemsTotal": len(lines) - len(kept),
    }


def run_purge_current_execution_files(ctx: TaskContext) -> dict[str, Any] | None:
    at = ctx.claimed.coordinates
    prefix = storage.execution_prefix(ctx.claimed.flow.namespace, ctx.claimed.flow.id, at.execution_id)
    root = _data_dir(ctx) / "storage" / prefix.relative_to("/")
    uris = sorted(f"{storage.SCHEME}/{p.relative_to(_data_dir(ctx) / 'storage').as_posix()}" for p in root.rglob("*"))
    files = [u for u in uris if local_path(_data_dir(ctx), u).is_file()]
    shutil.rmtree(root, ignore_errors=True)
    return {"uris": files}


HANDLERS = {
    "Write": run_write,
    "Concat": run_concat,
    "Split": run_split,
    "Reverse": run_reverse,
    "Size": run_size,
    "StorageDelete": run_delete,
    "FilterItems": run_filter_items,
    "DeduplicateItems": run_deduplicate_items,
    "PurgeCurrentExecutionFiles": run_purge_current_execution_files,
}
