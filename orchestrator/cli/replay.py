"""`chorus replay <id>`: Kestra's replay, or (with --from-ledger) a replay served from the original's ledger.

A ledger replay answers every model and agent tool call from what the original recorded, up to `--live-from`
(that task and the ones after it call the providers again). With `--wait`/`--follow` it waits for the end and
prints the diff of the two executions, task by task; the exit code is then the replay's final state, or
EXIT_FAILURE (1) with `--expect-identical` when some task's outputs differ.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, TextIO

import httpx

from orchestrator.cli.exit_codes import EXIT_FAILURE, EXIT_OK
from orchestrator.core.errors import ConfigurationError


def add_replay_command(commands: Any, server_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    replay = commands.add_parser(
        "replay", help="replay an execution (--from-ledger: model and tool calls served from its records)"
    )
    replay.add_argument("execution_id")
    replay.add_argument("--task-run", help="start again from this task run (Kestra's taskRunId)")
    replay.add_argument("--revision", type=int, help="replay on this flow revision")
    replay.add_argument(
        "--from-ledger", action="store_true", help="serve every model and agent tool call from the original's ledger"
    )
    replay.add_argument("--live-from", metavar="TASK_ID", help="with --from-ledger: this task and the next run live")
    waiting = replay.add_mutually_exclusive_group()
    waiting.add_argument("--wait", action="store_true", help="wait for the end, then print the diff with the original")
    waiting.add_argument("--follow", action="store_true", help="show task runs live, then print the diff")
    replay.add_argument(
        "--expect-identical", action="store_true", help="with --wait/--follow: exit 1 unless every output is the same"
    )
    replay.add_argument("--json", action="store_true", help="print the diff as JSON")
    server_arguments(replay)


def replay(
    client: httpx.Client, args: argparse.Namespace, out: TextIO, follow: Callable[[httpx.Client, str, TextIO], int]
) -> int:
    """POST .../replay (mode=ledger with --from-ledger); with --wait/--follow, follow it and print the diff."""
    if args.live_from and not args.from_ledger:
        raise ConfigurationError("--live-from", "goes with --from-ledger (a Kestra replay runs everything live)")
    params = {
        "taskRunId": args.task_run,
        "revision": args.revision,
        "mode": "ledger" if args.from_ledger else None,
        "liveFrom": args.live_from,
    }
    response = client.post(
        f"/executions/{args.execution_id}/replay", params={k: v for k, v in params.items() if v is not None}
    )
    response.raise_for_status()
    new_id = response.json()["id"]
    out.write(f"execution {new_id} replays {args.execution_id}{' from the ledger' if args.from_ledger else ''}\n")
    if not (args.wait or args.follow):
        return EXIT_OK
    code = follow(client, new_id, out)
    diff = client.get(f"/executions/{new_id}/diff/{args.execution_id}").raise_for_status().json()
    if args.json:
        out.write(json.dumps(diff, indent=2) + "\n")
    else:
        write_diff(diff, out)
    if args.expect_identical and not diff["identical"]:
        return EXIT_FAILURE
    return code


def write_diff(diff: dict[str, Any], out: TextIO) -> None:
    """One line per task run: `=` same state and outputs, `~` different (both outputs shown), `+`/`-` only one."""
    mine, theirs = diff["execution"], diff["other"]
    out.write(
        f"replay {mine['id']} ({mine['state']}, {mine['providerCalls']} provider call(s)) vs "
        f"original {theirs['id']} ({theirs['state']}, {theirs['providerCalls']} provider call(s))\n"
    )
    for task in diff["tasks"]:
        a, b = task["execution"], task["other"]
        if task["same"]:
            out.write(f"= {task['path']} {a['state']}\n")
        elif a is None:
            out.write(f"- {task['path']} only in the original ({b['state']})\n")
        elif b is None:
            out.write(f"+ {task['path']} only in the replay ({a['state']})\n")
        else:
            out.write(f"~ {task['path']} {b['state']} -> {a['state']}\n")
            out.write(f"    original: {json.dumps(b['outputs'], sort_keys=True)}\n")
            out.write(f"    replay:   {json.dumps(a['outputs'], sort_keys=True)}\n")
    out.write("identical outputs\n" if diff["identical"] else "outputs differ\n")
