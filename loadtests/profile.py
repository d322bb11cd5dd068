"""`python -m loadtests.profile`: where a worker process spends its time per task run, Chorus vs raw Celery.

Runs the throughput scenario on one side while py-spy samples that side's worker processes (a Celery
worker and its prefork children), then prints the share of samples per function, inclusive ("total") and
exclusive ("self"). Needs py-spy (a dev dependency) and the right to ptrace the workers (root, or
`kernel.yama.ptrace_scope=0`).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from loadtests.scenarios import STANDARD, Context, Sizes, _throughput_chorus, _throughput_raw
from loadtests.stack import Stack, open_services


def _folded(path: Path) -> collections.Counter[str]:
    stacks: collections.Counter[str] = collections.Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks[frames] += int(count)
    return stacks


def _frame(frame: str) -> str:
    # py-spy's raw format: "function (path/to/module.py:line)"; keep function and file, drop the line.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].split('site-packages/')[-1].split('/work/')[-1]})"


def summarise(path: Path, top: int) -> str:
    stacks = _folded(path)
    total = sum(stacks.values()) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    exclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks.items():
        names = [_frame(f) for f in frames.split(";")[1:]]  # the first frame is the process
        for name in set(names):
            inclusive[name] += count
        if names:
            exclusive[names[-1]] += count
    lines = [f"{total} samples", "", "total%  function (inclusive)"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "self%   function (exclusive)"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in exclusive.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("chorus", "raw"), default="chorus")
    parser.add_argument("--count", type=int, default=1000, help="one-task executions to run while sampling")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("profile.txt"), help="py-spy's folded stacks")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    sizes = Sizes(throughput=args.count)
    with open_services() as svc:
        stack = Stack(svc)
        try:
            stack.workers(args.side, STANDARD)
            worker = stack.worker_pids(args.side)[0]
            argv = [py_spy, "record", "-p", str(worker), "--subprocesses", "--format", "raw", "-r", "200"]
            spy = subprocess.Popen([*argv, "-o", str(args.out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            run = _throughput_chorus if args.side == "chorus" else _throughput_raw
            sample = run(Context(stack, sizes, 0))
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        finally:
            stack.close()
    print(f"{args.side}: {sample}")
    print(summarise(args.out, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
