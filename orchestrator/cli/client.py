"""`chorus run` and `chorus executions ...`: the HTTP API for people, against a running server.

Which server: `--url` (or `--data-dir` of a running `chorus local`), else CHORUS_URL / CHORUS_TOKEN, else the
config file (CHORUS_CONFIG, default ~/.config/chorus/config.toml, keys `url` and `token`), else the
`chorus local` running on the default data directory (.chorus). The exit code of a command that waits
is the execution's final state (orchestrator.cli.exit_codes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from orchestrator.cli.exit_codes import EXIT_FAILURE, EXIT_OK
from orchestrator.cli.follow import (
    Progress,
    exit_code,
    failed_task_ids,
    follow_events,
)
from orchestrator.cli.replay import add_replay_command, replay
from orchestrator.core.errors import ConfigurationError

TENANT_PATH = "/api/v1/main"
DEFAULT_CONFIG = Path("~/.config/chorus/config.toml")


@dataclass(frozen=True)
class ServerConfig:
    """Where the API is (its `/api/v1/main` base) and the API token to send, if any."""

    api_url: str
    token: str | None


def add_commands(commands: Any) -> None:
    """Add `run`, `executions` and `replay` to the `chorus` subcommands."""
    run = commands.add_parser("run", help="start an execution of a flow on a server (--wait/--follow to see it end)")
    run.add_argument("namespace")
    run.add_argument("flow_id")
    run.add_argument("--input", action="append", default=[], metavar="NAME=VALUE", help="an input (repeatable)")
    run.add_argument("--file", action="append", default=[], metavar="NAME=PATH", help="a FILE input (repeatable)")
    run.add_argument("--label", action="append", default=[], metavar="KEY:VALUE", help="a label (repeatable)")
    waiting = run.add_mutually_exclusive_group()
    waiting.add_argument("--wait", action="store_true", help="wait for the end; exit code by its state")
    waiting.add_argument("--follow", action="store_true", help="show task runs live; exit code by the final state")
    _server_arguments(run)

    executions = commands.add_parser("executions", help="follow, read the logs of, list, kill, restart, resume")
    actions = executions.add_subparsers(dest="executions_command", required=True)
    for name, text in (
        ("follow", "show an execution's task runs live until it ends; exit code by its final state"),
        ("logs", "print an execution's logs"),
        ("kill", "kill an execution"),
        ("restart", "restart a failed execution from its failed task runs"),
        ("resume", "resume a paused execution"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("execution_id")
        _server_arguments(action)
    actions.choices["logs"].add_argument("--level", help="the lowest level shown (e.g. WARN)")
    actions.choices["logs"].add_argument("--task", help="only this task's logs")
    actions.choices["resume"].add_argument("--input", action="append", default=[], metavar="NAME=VALUE")
    actions.choices["kill"].add_argument(
        "--compensate", action="store_true", help="undo what had succeeded (the tasks' `compensate`) first"
    )
    listing = actions.add_parser("list", help="the newest executions")
    listing.add_argument("--namespace", help="namespace prefix")
    listing.add_argument("--flow", help="flow id")
    listing.add_argument("--state", action="append", default=[], help="only this state (repeatable)")
    listing.add_argument("--size", type=int, default=20, help="how many (default 20)")
    _server_arguments(listing)
    add_replay_command(commands, _server_arguments)


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the server, e.g. http://127.0.0.1:8080 [env: CHORUS_URL]")
    parser.add_argument("--token", help="an API token [env: CHORUS_TOKEN] (prefer the variable: argv is visible)")
    parser.add_argument("--data-dir", type=Path, help="the `chorus local` running on this data directory")


def server_config(args: argparse.Namespace, environ: Mapping[str, str]) -> ServerConfig:
    """The server named by the arguments, the environment, the config file or a running `chorus local`."""
    from orchestrator.cli.local_runtime import read_runtime

    token = args.token or environ.get("CHORUS_TOKEN") or None
    if args.url:
        return ServerConfig(_api_base(args.url), token)
    if args.data_dir is not None:
        runtime = read_runtime(args.data_dir, required=True)
        assert runtime is not None
        return ServerConfig(runtime.api_url, token)
    if environ.get("CHORUS_URL"):
        return ServerConfig(_api_base(environ["CHORUS_URL"]), token)
    config_path = Path(environ.get("CHORUS_CONFIG") or DEFAULT_CONFIG).expanduser()
    if config_path.is_file():
        try:
            config = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigurationError("CHORUS_CONFIG", f"cannot read {config_path}: {e}") from e
        if not isinstance(config.get("url"), str):
            raise ConfigurationError("CHORUS_CONFIG", f'{config_path} has no `url = "http://..."`')
        return ServerConfig(_api_base(config["url"]), token or config.get("token"))
    runtime = read_runtime(Path(environ.get("CHORUS_DATA_DIR") or ".chorus"), required=False)
    if runtime is not None:
        return ServerConfig(runtime.api_url, token)
    raise ConfigurationError(
        "CHORUS_URL", "which server? set CHORUS_URL (and CHORUS_TOKEN), pass --url or --data-dir, or start chorus local"
    )


def _api_base(url: str) -> str:
    """Accept the server's root (http://host:8080) or its API base (http://host:8080/api/v1/main)."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError("CHORUS_URL", f"not an http(s) URL: {url!r}")
    return url if "/api/v1/" in url else url + TENANT_PATH


def _pairs(raw: list[str], option: str, separator: str = "=") -> list[tuple[str, str]]:
    pairs = []
    for item in raw:
        key, found, value = item.partition(separator)
        if not found or not key:
            raise ConfigurationError(option, f"{item!r} is not NAME{separator}VALUE")
        pairs.append((key, value))
    return pairs


def chorus_client(args: argparse.Namespace) -> int:
    """`chorus run` and `chorus executions ...`, against the server the environment names."""
    return run(args, os.environ)


def run(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    """Run `chorus run` or `chorus executions ...`; ChorusErrors (bad options, HTTP errors) go to the caller."""
    config = server_config(args, environ)
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    try:
        with httpx.Client(base_url=config.api_url, headers=headers, timeout=30) as client:
            if args.command == "run":
                return _run(client, args, out)
            if args.command == "replay":
                return replay(
                    client, args, out, lambda c, execution_id, o: follow(c, execution_id, o, live=args.follow)
                )
            return _execution_command(client, args, out)
    except httpx.HTTPStatusError as e:
        print(f"chorus: {_describe(e.response)}", file=sys.stderr)  # noqa: T201
        return EXIT_FAILURE
    except httpx.TransportError as e:
        print(f"chorus: cannot reach {config.api_url}: {e}", file=sys.stderr)  # noqa: T201
        return EXIT_FAILURE


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("message") or body.get("detail") or response.text
    except ValueError:
        message = response.text
    return f"{response.request.method} {response.request.url.path}: {response.status_code} {message}"


def _run(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    inputs = _pairs(args.input, "--input")
    files = _pairs(args.file, "--file")
    with ExitStack() as opened:
        parts: list[tuple[str, Any]] = [(name, (None, value)) for name, value in inputs]
        for name, path in files:
            try:
                handle = opened.enter_context(Path(path).expanduser().open("rb"))
            except OSError as e:
                raise ConfigurationError("--file", f"{name}: cannot read {path}: {e.strerror}") from e
            parts.append((name, (Path(path).name, handle)))
        labels = [("labels", label) for label in args.label]
        # Kestra takes inputs as multipart only; with none, no body at all.
        response = client.post(f"/executions/{args.namespace}/{args.flow_id}", params=labels, files=parts or None)
    response.raise_for_status()
    execution = response.json()
    out.write(f"execution {execution['id']} created: {execution.get('url', '')}\n")
    if not (args.wait or args.follow):
        return EXIT_OK
    return follow(client, execution["id"], out, live=args.follow)


def follow(client: httpx.Client, execution_id: str, out: TextIO, *, live: bool) -> int:
    """Follow the execution to its end (showing task runs if `live`); the exit code of its final state."""
    progress = Progress(out, tty=out.isatty())
    execution: dict[str, Any] = {"id": execution_id}
    for _, execution in follow_events(client, execution_id):
        if live:
            progress.show(execution)
    state = execution.get("state", {}).get("current", "")
    out.write(f"execution {execution_id} {state}\n")
    for task_id in failed_task_ids(execution):
        out.write(f"failed task: {task_id}{_last_error(client, execution_id, task_id)}\n")
    out.flush()
    return exit_code(state)


def _last_error(client: httpx.Client, execution_id: str, task_id: str) -> str:
    """`: <the task's last ERROR log line>`, or nothing when there is none."""
    base = task_id.split("[", 1)[0]
    response = client.get(f"/executions/{execution_id}/logs", params={"minLevel": "ERROR", "taskId": base})
    lines = response.json() if response.status_code == 200 else []
    return f": {lines[-1]['message']}" if lines else ""


def _execution_command(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    command = args.executions_command
    if command == "list":
        return _list(client, args, out)
    path = f"/executions/{args.execution_id}"
    if command == "follow":
        return follow(client, args.execution_id, out, live=True)
    if command == "logs":
        params = {k: v for k, v in {"minLevel": args.level, "taskId": args.task}.items() if v}
        response = client.get(f"{path}/logs", params=params)
        response.raise_for_status()
        for line in response.json():
            out.write(f"{line['timestamp']} {line['level']:<5} {line['taskId'] or '-'} {line['message']}\n")
        return EXIT_OK
    if command == "kill":
        client.delete(f"{path}/kill", params={"compensate": "true"} if args.compensate else None).raise_for_status()
    elif command == "restart":
        client.post(f"{path}/restart").raise_for_status()
    elif command == "resume":
        parts = [(name, (None, value)) for name, value in _pairs(args.input, "--input")]
        client.post(f"{path}/resume", files=parts or None).raise_for_status()
    state = client.get(path).raise_for_status().json()["state"]["current"]
    out.write(f"execution {args.execution_id} {command}: now {state}\n")
    return EXIT_OK


def _list(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    params: list[tuple[str, str | int | float | bool | None]] = [("size", args.size), ("sort", "state.startDate:desc")]
    params += [(k, v) for k, v in (("namespace", args.namespace), ("flowId", args.flow)) if v]
    params += [("state", s) for s in args.state]
    response = client.get("/executions/search", params=params)
    response.raise_for_status()
    for e in response.json()["results"]:
        start = (e["state"].get("startDate") or "")[:19]
        out.write(f"{e['id']}  {e['state']['current']:<9} {start:<19}  {e['namespace']}.{e['flowId']}\n")
    return EXIT_OK
