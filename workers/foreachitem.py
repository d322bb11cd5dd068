"""ForEachItem's three steps: split the items into batch files, run a subflow per batch, merge their outputs.

Kestra's ForEachItem reads a file of items (one per line) from internal storage. Each step is its own task
run (`<id>_split`, `<id>_items`, `<id>_merge`), so a batch failure, a restart or a kill acts on the step
it concerns, and the outputs Kestra documents (`numberOfBatches`, `iterations`, `subflowOutputs`) are
where Kestra users look for them.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.core.errors import TaskFailed
from orchestrator.core.ids import task_run_id
from orchestrator.core.namespace_access import Use
from orchestrator.engine import Engine, Verdict
from workers.context import TaskContext
from workers.storage import local_path, store_file
from workers.storagetasks import split_file
from workers.subflow import inherited_labels, labels_for


def run_split(ctx: TaskContext) -> dict[str, Any] | None:
    """Read the items file, write one file per batch, and list those files in `splits`."""
    uri = ctx.render(ctx.properties.get("items"))
    if not isinstance(uri, str) or not uri.strip():
        raise TaskFailed(f"items: expected the URI of a file in internal storage, got {uri!r}", retryable=False)
    data_dir = ctx.engine.settings.data_dir
    source = ctx.guard.stored_file(uri.strip(), "ForEachItem items")
    if not source.is_file():
        raise TaskFailed(f"items: no file at {uri.strip()}", retryable=False)
    batch = ctx.render(ctx.properties.get("batch") or {})
    if all(batch.get(k) is None for k in ("rows", "bytes", "partitions")):
        batch = {**batch, "rows": 1}  # Kestra's default batch: one item per subflow execution
    cuts = split_file(source, batch)
    uris = [store_file(data_dir, ctx.claimed, f"{index}.txt", cut) for index, cut in enumerate(cuts)]
    splits = store_file(data_dir, ctx.claimed, "splits.txt", "".join(f"{u}\n" for u in uris).encode())
    ctx.log("INFO", f"split the items into {len(uris)} batches")
    return {"splits": splits, "numberOfBatches": len(uris)}


def _step_id(ctx: TaskContext, step: str) -> str:
    return ctx.claimed.task.id.rsplit("_", 1)[0] + f"_{step}"


def start_batches(ctx: TaskContext, engine: Engine) -> Verdict:
    """Start one subflow execution per batch file, each with `taskrun.items` naming its batch."""
    props = ctx.properties
    variables = ctx.claimed.variables
    split = (variables.get("outputs") or {}).get(_step_id(ctx, "split")) or {}
    if not split.get("splits"):
        raise TaskFailed("the split step left no batches (did it run?)", retryable=False)
    listing = local_path(engine.settings.data_dir, str(split["splits"])).read_text()
    batch_uris = [line for line in listing.splitlines() if line]
    namespace = str(ctx.render(props["namespace"]))
    flow_id = str(ctx.render(props["flowId"]))
    ctx.guard.require(namespace, Use.EXECUTION_RUN, f"ForEachItem {namespace}.{flow_id}")
    inputs = []
    for index, batch_uri in enumerate(batch_uris):
        taskrun = {**(variables.get("taskrun") or {}), "items": batch_uri, "iteration": index}
        scoped = {**variables, "taskrun": taskrun}
        inputs.append(ctx.render_stored(props.get("inputs") or {}, "subflow inputs", scoped))
    revision = props.get("revision")
    return engine.start_subflows(
        ctx.claimed,
        namespace=namespace,
        flow_id=flow_id,
        batches=inputs,
        labels=labels_for(ctx),
        inherited=inherited_labels(ctx),
        wait=props.get("wait", True) is not False,
        revision=int(revision) if revision is not None else None,
    )


def run_merge(ctx: TaskContext) -> dict[str, Any] | None:
    """One line per batch with that subflow's outputs (JSON), in batch order."""
    at = ctx.claimed.coordinates
    items_run = task_run_id(at.execution_id, _step_id(ctx, "items"), at.parent_id, at.iteration)
    outputs = ctx.engine.child_execution_outputs(items_run)
    body = "".join(json.dumps(o, separators=(",", ":"), default=str) + "\n" for o in outputs)
    return {"subflowOutputs": store_file(ctx.engine.settings.data_dir, ctx.claimed, "outputs.jsonl", body.encode())}


HANDLERS = {"ForEachItemSplit": run_split, "ForEachItemMerge": run_merge}
