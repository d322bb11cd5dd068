"""The scripts pool: Python and shell `Script`/`Commands` as local subprocesses in a per-run working directory.

A run gets a fresh directory with its `inputFiles` (copies, never a path into storage), an environment built
from an allow-list (the worker's own variables, SECRET_* and CHORUS_* included, never leak into user code),
its own process group so a timeout kills the whole tree, and, when the worker is root, an unprivileged user
of its own (`workers.sandbox`). Output lines become task logs; a line `::{"outputs": {...}}::` sets outputs
(`vars`) as in Kestra. Matching `outputFiles` are kept in storage and output as `kestra:///` URIs.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from orchestrator.core.errors import TaskFailed
from workers.context import Handler, TaskContext
from workers.sandbox import (
    ScriptLimits,
    ScriptUser,
    close_storage_root,
    hand_over,
    python_for,
    reclaim,
    script_user,
)
from workers.storage import SCHEME, store_file

#: How long a timed-out process group gets between SIGTERM and SIGKILL.
_KILL_GRACE_S = 2.0
_PYTHON_TYPES = {"PythonScript", "PythonCommands"}
_LEVELS = {"TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR"}


@dataclass
class _Collected:
    """What the process said through the `::{...}::` protocol."""

    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Bytes the process may still print (stdout and stderr together); below zero it was killed for it.
    budget: int = 0
    overflowed: bool = False


def _refuse_containers(props: Mapping[str, Any]) -> None:
    runner = props.get("taskRunner")
    runner_type = str(runner.get("type", "")) if isinstance(runner, Mapping) else ""
    if runner_type.rsplit(".", 1)[-1].lower() == "docker" or str(props.get("runner", "")).upper() == "DOCKER":
        raise TaskFailed(
            "Docker task runners are not available in Chorus: scripts run as local processes. Remove taskRunner "
            "(or set type io.kestra.plugin.core.runner.Process) and install what the script needs on the scripts "
            "pool's workers",
            retryable=False,
        )


def _write_input_files(ctx: TaskContext, workdir: Path, raw: Any) -> None:
    files = json.loads(raw) if isinstance(raw, str) else raw or {}
    if not isinstance(files, Mapping):
        raise TaskFailed("inputFiles must be a map of file names to contents", retryable=False)
    for name, content in files.items():
        target = (workdir / str(name)).resolve()
        if workdir.resolve() not in target.parents:
            raise TaskFailed(f"inputFiles name {name!r} must stay inside the working directory", retryable=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = str(content)
        if text.startswith(SCHEME + "/"):  # a file another task produced: of an execution this flow may read
            shutil.copyfile(ctx.guard.stored_file(text, f"inputFiles {name!r}"), target)
        else:
            target.write_text(text)


def _environment(
    workdir: Path, extra: Any, python: bool, user: ScriptUser | None, idempotency_key: str
) -> dict[str, str]:
    """The allow-list: PATH, HOME and WORKING_DIR (the run directory), LANG, and the task's declared `env`."""
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    if python:
        # Kestra's images answer to `python`; point it at this worker's interpreter (if the script may run it).
        shims = workdir / ".chorus-bin"
        shims.mkdir()
        (shims / "python").symlink_to(python_for(user))
        path = f"{shims}{os.pathsep}{path}"
    env = {"PATH": path, "HOME": str(workdir), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "WORKING_DIR": str(workdir)}
    env["CHORUS_IDEMPOTENCY_KEY"] = idempotency_key  # the same on every attempt of this task run
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise TaskFailed("env must be a map of variable names to values", retryable=False)
        env.update({str(k): "" if v is None else str(v) for k, v in extra.items()})
    return env


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _command(ctx: TaskContext, props: Mapping[str, Any], workdir: Path) -> list[str]:
    """The interpreter command line: `beforeCommands`, then the script file or the commands, in one shell."""
    task_type = ctx.claimed.task.type
    body: list[str] = []
    if task_type in ("PythonScript", "ShellScript"):
        script = workdir / (".chorus-script.py" if task_type == "PythonScript" else ".chorus-script.sh")
        script.write_text(str(props["script"]))
        body = [f"python {script.name}" if task_type == "PythonScript" else f"/bin/sh {script.name}"]
    else:
        body = _lines(props.get("commands"))
    fail_fast = props.get("failFast", True) not in (False, "false")
    lines = (["set -e"] if fail_fast else []) + _lines(props.get("beforeCommands")) + body
    interpreter = _lines(props.get("interpreter")) or ["/bin/sh", "-c"]
    return [*interpreter, "\n".join(lines)]


def _consume(
    ctx: TaskContext, stream: IO[str], level: str, collected: _Collected, process: subprocess.Popen[str]
) -> None:
    for raw in stream:
        with collected.lock:
            collected.budget -= len(raw.encode("utf-8", "replace"))
            over = collected.budget < 0
            first = over and not collected.overflowed
            collected.overflowed = collected.overflowed or over
        if over:
            # Every line is kept in the worker's memory until the attempt ends, then stored: a script printing
            # without end would exhaust both. Stop it, and read on only to let the pipe close.
            if first:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            continue
        line = raw.rstrip("\n")
        stripped = line.strip()
        if stripped.startswith("::{") and stripped.endswith("}::"):
            try:
                message = json.loads(stripped[2:-2])
            except ValueError:
                message = None
            if isinstance(message, dict):
                _apply(ctx, message, collected)
                continue
        if line:
            ctx.log(level, line)


def _apply(ctx: TaskContext, message: dict[str, Any], collected: _Collected) -> None:
    """Kestra's `::{...}::` line: outputs merge into `vars`, metrics are kept, logs go to the task's logs."""
    with collected.lock:
        if isinstance(message.get("outputs"), dict):
            collected.outputs.update(message["outputs"])
        if isinstance(message.get("metrics"), list):
            collected.metrics.extend(message["metrics"])
    for entry in message.get("logs") or []:
        if isinstance(entry, dict):
            level = str(entry.get("level", "INFO")).upper()
            ctx.log(level if level in _LEVELS else "INFO", str(entry.get("message", "")))


def _kill(process: subprocess.Popen[str]) -> None:
    for sig, wait_s in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _run(
    ctx: TaskContext, command: list[str], workdir: Path, env: dict[str, str], user: ScriptUser | None
) -> tuple[int, _Collected]:
    timeout = ctx.claimed.task.timeout
    settings = ctx.engine.settings
    collected = _Collected(budget=settings.script_max_output_bytes)
    limits = ScriptLimits(
        settings.script_max_memory_bytes, settings.script_max_file_bytes, settings.script_max_processes,
        settings.script_max_cpu_s,
    )  # fmt: skip
    # As another user: setgroups([]) drops root's supplementary groups before setgid/setuid.
    identity: dict[str, Any] = {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, encoding="utf-8", errors="replace", start_new_session=True,  # its own group: killable as a tree
        preexec_fn=limits.preexec(user), **identity,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    readers = [
        threading.Thread(target=_consume, args=(ctx, process.stdout, "INFO", collected, process), daemon=True),
        threading.Thread(target=_consume, args=(ctx, process.stderr, "WARN", collected, process), daemon=True),
    ]
    for reader in readers:
        reader.start()
    started = time.monotonic()
    try:
        code = process.wait(timeout.total_seconds() if timeout is not None else None)
    except subprocess.TimeoutExpired:
        _kill(process)
        for reader in readers:
            reader.join(5)
        raise TaskFailed(
            f"timed out after {time.monotonic() - started:.1f}s (timeout {timeout}): the process group was killed",
            retryable=True,
        ) from None
    except BaseException:
        _kill(process)  # a worker shutting down takes its subprocesses with it
        raise
    # What the script left running in its group (a `&` without `wait`) dies with it: it would otherwise hold the
    # output pipes open, and, as the scripts user, watch the directories of the scripts that run after it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for reader in readers:
        reader.join()
    return code, collected


def _keep_output_files(ctx: TaskContext, workdir: Path, patterns: Any) -> dict[str, str]:
    kept: dict[str, str] = {}
    for pattern in _lines(patterns):
        for match in sorted(glob.glob(pattern, root_dir=workdir, recursive=True)):
            content = _read_own_file(workdir, workdir / match)
            if content is not None:
                kept[match] = store_file(ctx.engine.settings.data_dir, ctx.claimed, match, content)
    return kept


def _read_own_file(workdir: Path, path: Path) -> bytes | None:
    """A regular file inside the run directory; a symlink (to a secret, another namespace's file) is refused,
    since the worker reading it would carry what the script itself may not read into storage."""
    target = path.resolve()
    if not target.is_relative_to(workdir.resolve()):
        name = path.relative_to(workdir)
        raise TaskFailed(f"output file {name} is a link out of the working directory", retryable=False)
    if not target.is_file():
        return None
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)  # a link swapped in since the check is not followed
    with os.fdopen(fd, "rb") as file:
        return file.read()


def run_script(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra's script tasks on the process runner: outputs `exitCode`, `vars` and `outputFiles`."""
    props: dict[str, Any] = ctx.render(ctx.properties)
    _refuse_containers(props)
    if props.get("containerImage"):
        ctx.log("DEBUG", f"containerImage {props['containerImage']} ignored: scripts run as local processes")
    user = script_user(ctx.engine.settings.scripts_user)
    if user is not None:
        close_storage_root(ctx.engine.settings.data_dir)
    workdir = Path(tempfile.mkdtemp(prefix="chorus-run-"))
    try:
        _write_input_files(ctx, workdir, props.get("inputFiles"))
        env = _environment(workdir, props.get("env"), ctx.claimed.task.type in _PYTHON_TYPES, user, ctx.idempotency_key)
        command = _command(ctx, props, workdir)
        hand_over(workdir, user)  # last: the files the worker wrote become the script's
        code, collected = _run(ctx, command, workdir, env, user)
        reclaim(workdir, user)  # output files are read from a directory the script's user no longer owns
        if collected.overflowed:
            limit = ctx.engine.settings.script_max_output_bytes
            raise TaskFailed(
                f"the script printed more than {limit} bytes (CHORUS_SCRIPT_MAX_OUTPUT_BYTES): its process group was "
                "killed; write large results to an output file instead",
                retryable=False,
            )
        if code != 0:
            raise TaskFailed(f"Command failed with exit code {code}", retryable=True)
        outputs: dict[str, Any] = {"exitCode": code, "vars": collected.outputs}
        if props.get("outputFiles"):
            outputs["outputFiles"] = _keep_output_files(ctx, workdir, props["outputFiles"])
        return outputs
    finally:
        reclaim(workdir, user)
        shutil.rmtree(workdir, ignore_errors=True)


HANDLERS: dict[str, Handler] = {
    "PythonScript": run_script,
    "PythonCommands": run_script,
    "ShellScript": run_script,
    "ShellCommands": run_script,
}
