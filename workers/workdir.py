"""WorkingDirectory: its tasks run one after the other in this worker, sharing one directory.

Like Kestra, the whole WorkingDirectory runs on one worker, so files one task writes are there for
the next. Each child is still a task run of its own: claimed, run and finished through the engine,
audited like any other. If this worker dies, the sweeper re-sends the WorkingDirectory itself, which
takes its claim over and runs the children that have not finished, in a fresh directory.
"""

from __future__ import annotations

import glob
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ChorusError, TaskFailed
from orchestrator.core.expressions import is_true
from orchestrator.core.flow import TaskSpec
from orchestrator.core.pebble_parents import PARENT_TASK_IDS
from orchestrator.core.states import State
from orchestrator.engine import ClaimedTaskRun, Engine, TaskOutcome, TaskRunCoordinates, Verdict
from workers.context import TaskContext
from workers.functions import EngineFunctions
from workers.storage import store_file
from workers.workdir_cache import restore_cache, save_cache

#: Runs one claimed child in the shared directory (the worker runtime's `run_claimed`).
RunChild = Callable[[ClaimedTaskRun, Path], TaskOutcome]

_current_dir: dict[str, Path] = {}


def working_dir_of(claimed: ClaimedTaskRun) -> Path | None:
    """The shared directory of the WorkingDirectory this task run belongs to, if any."""
    return _current_dir.get(claimed.coordinates.parent_id or "")


def run_working_directory(
    engine: Engine, claimed: ClaimedTaskRun, owner: str, celery_id: str | None, run_child: RunChild
) -> tuple[Verdict, Any]:
    """Run the children inline; returns the verdict and, when a phase (errors/finally) starts, its plan."""
    at = claimed.coordinates
    workdir = Path(tempfile.mkdtemp(prefix="chorus-wd-"))
    _current_dir[at.task_run_id] = workdir
    try:
        ctx = TaskContext(claimed)
        try:
            _write_inputs(workdir, ctx.render(claimed.task.properties.get("inputFiles") or {}))
            cache = ctx.render(claimed.task.properties.get("cache")) or None
            if cache is not None:
                restore_cache(engine.settings.data_dir, claimed, workdir, cache)
        except Exception as error:  # the directory could not be prepared: the WorkingDirectory fails
            message = error.message if isinstance(error, ChorusError) else f"{type(error).__name__}: {error}"
            ctx.log("ERROR", message)
            outcome = TaskOutcome(State.FAILED, logs=tuple(ctx.logs), error=message, retryable=False)
            return engine.finish(claimed, outcome), None
        engine.decide(claimed, {"branch": "tasks", "inline": True})
        completed = True
        for child in claimed.task.branches.get("tasks", ()):
            if child.disabled:
                continue
            coords = TaskRunCoordinates(at.execution_id, child.id, at.task_run_id, None, 1)
            state = engine.task_run_state(coords.task_run_id)
            if state is not None and State(state) in (State.SUCCESS, State.WARNING, State.SKIPPED):
                continue
            if state is not None:
                coords = TaskRunCoordinates(
                    at.execution_id, child.id, at.task_run_id, None, engine.task_run_attempt(coords.task_run_id)
                )
            runs = True
            if state is None and child.run_if is not None:
                try:
                    runs = _run_if(engine, claimed, child)
                except Exception as error:  # the WorkingDirectory fails; the child never gets a task run
                    message = error.message if isinstance(error, ChorusError) else f"{type(error).__name__}: {error}"
                    ctx.log("ERROR", f"Failed evaluating runIf of task '{child.id}': {message}")
                    outcome = TaskOutcome(State.FAILED, logs=tuple(ctx.logs), error=message, retryable=False)
                    return engine.finish(claimed, outcome), None
            child_claim = engine.claim(coords, owner=owner, celery_task_id=celery_id)
            if child_claim is None:
                return Verdict.STOP, None
            _as_worker_child(child_claim, claimed)
            if not runs:
                outcome = TaskOutcome(State.SKIPPED)
            elif child.branches:
                outcome = TaskOutcome(
                    State.FAILED, error="flowable tasks inside a WorkingDirectory are not supported", retryable=False
                )
            else:
                outcome = run_child(_run_if_done(child_claim, state), workdir)
            if engine.finish(child_claim, outcome) != Verdict.OK:
                completed = False
                break
        if completed and cache is not None:
            save_cache(engine.settings.data_dir, claimed, workdir, cache)
        patterns = claimed.task.properties.get("outputFiles") or []
        outputs = _collect_outputs(
            engine, claimed, workdir, [str(p) for p in patterns] if isinstance(patterns, list) else [str(patterns)]
        )
        if outputs:
            engine.set_running_outputs(claimed, {"outputFiles": outputs})
        return engine.join(at.execution_id, at.task_run_id, actor=f"worker:{owner}")
    finally:
        _current_dir.pop(at.task_run_id, None)
        shutil.rmtree(workdir, ignore_errors=True)


def _run_if(engine: Engine, claimed: ClaimedTaskRun, child: TaskSpec) -> bool:
    """A child's runIf, as Kestra's WorkingDirectoryTaskProcessor evaluates it: before the child has a task run,
    in the WorkingDirectory's own context (which sees the outputs of the children run before it). Raises when
    it cannot be rendered."""
    current = replace(claimed, variables=engine.current_variables(claimed))
    return is_true(TaskContext(current, EngineFunctions(engine, current)).render(child.run_if))


def _run_if_done(child: ClaimedTaskRun, state: str | None) -> ClaimedTaskRun:
    """The child's claim without its runIf once the WorkingDirectory evaluated it (a fresh task run), so the
    condition is rendered once, as in Kestra; a child taken over after a worker died evaluates it itself."""
    if state is not None or child.task.run_if is None:
        return child
    return replace(child, task=child.task.model_copy(update={"run_if": None}))


def _as_worker_child(child: ClaimedTaskRun, workdir: ClaimedTaskRun) -> None:
    """What a WorkingDirectory's child sees, as Kestra's worker builds it: the WorkingDirectory's task run as
    `workerTaskrun`, its loop value as `taskrun.value`, and its `parents` (the child runs in its context)."""
    outer = workdir.variables
    child.variables["workerTaskrun"] = dict(outer["taskrun"])
    if outer["taskrun"].get("value") is not None:
        child.variables["taskrun"] = {**child.variables["taskrun"], "value": outer["taskrun"]["value"]}
    for name in ("parents", "parent", PARENT_TASK_IDS):
        child.variables.pop(name, None)
        if name in outer:
            child.variables[name] = outer[name]


def _write_inputs(workdir: Path, files: Any) -> None:
    if not isinstance(files, dict):
        raise TaskFailed("inputFiles must map file names to contents", retryable=False)
    for name, content in files.items():
        target = _inside(workdir, str(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else str(content), encoding="utf-8")


def _inside(workdir: Path, name: str) -> Path:
    target = (workdir / name).resolve()
    if not target.is_relative_to(workdir.resolve()):
        raise TaskFailed(f"file name {name!r} leaves the working directory", retryable=False)
    return target


def _collect_outputs(engine: Engine, claimed: ClaimedTaskRun, workdir: Path, patterns: list[str]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for pattern in patterns:
        for match in sorted(glob.glob(str(workdir / pattern), recursive=True)):
            path = Path(match)
            if path.is_file():
                name = str(path.relative_to(workdir))
                kept[name] = store_file(engine.settings.data_dir, claimed, name, path)
    return kept


def run_local_files(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra's LocalFiles: write `inputs` into the working directory, upload `outputs` globs."""
    workdir = working_dir_of(ctx.claimed)
    if workdir is None:
        raise TaskFailed("LocalFiles must run inside a WorkingDirectory", retryable=False)
    _write_inputs(workdir, ctx.render(ctx.properties.get("inputs") or {}))
    patterns = ctx.render(ctx.properties.get("outputs") or [])
    return {"uris": _collect_outputs(ctx.engine, ctx.claimed, workdir, list(patterns))}
