"""`python -m loadtests`: start a Chorus stack and the raw-Celery baselines, run the scenarios, report ratios.

Each scenario runs on the raw baselines it supports (of `--baselines`) and on Chorus back to back, `--reps`
times, on the same Redis, the same PostgreSQL database and the same worker pool settings; the Markdown
table goes to stdout and, with the JSON of every sample, to `loadtests/results/`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import report
from loadtests.measure import InvariantBroken, warm_up
from loadtests.scenarios import Context, Scenario, Sizes, catalogue
from loadtests.stack import BASELINES, Stack, open_services

RESULTS = Path(__file__).parent / "results"
EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of a minute or two")
    parser.add_argument("--scenarios", help="comma-separated scenario names (default: all); see --list")
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help=f"comma-separated baselines to measure where a scenario supports them (default: {','.join(BASELINES)})",
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions per scenario (default 3, quick 1)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where the JSON and Markdown go")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count (e.g. 0.5 for a shorter run)")
    parser.add_argument(
        "--size", action="append", default=[], metavar="NAME=N", help="set one size after --scale (e.g. linear=50)"
    )
    return parser


def _sizes(args: argparse.Namespace) -> Sizes:
    sizes = Sizes.quick() if args.quick else Sizes()
    values = dict(sizes.__dict__)
    if args.scale != 1.0:
        # The fan-out width and the ai pool's concurrency define their scenarios: --scale leaves them alone.
        counts = ("throughput", "linear", "backlog", "api", "webhook", "scaling", "control1", "control2", "crosspool")
        values.update({k: max(10, int(values[k] * args.scale)) for k in counts})
    for item in args.size:
        name, _, number = item.partition("=")
        if name not in values or not isinstance(values[name], int) or not number.isdigit():
            raise SystemExit(f"loadtests: --size {item!r}: expected NAME=N with NAME one of the integer sizes")
        values[name] = int(number)
    return Sizes(**values)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = _sizes(args)
    every = catalogue(sizes)
    if args.list:
        for scenario in every:
            print(f"{scenario.name:20} {scenario.title}")
        return EXIT_OK
    chosen = every
    if args.scenarios:
        names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
        unknown = [n for n in names if n not in {s.name for s in every}]
        if unknown:
            print(f"loadtests: unknown scenario(s) {', '.join(unknown)}; see --list", file=sys.stderr)
            return EXIT_USAGE
        chosen = [s for s in every if s.name in names]
    wanted = {n.strip() for n in args.baselines.split(",") if n.strip()}
    if not wanted or wanted - set(BASELINES):
        print(f"loadtests: --baselines takes names among {', '.join(BASELINES)}", file=sys.stderr)
        return EXIT_USAGE
    baselines = tuple(b for b in BASELINES if b in wanted)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    document = run(chosen, sizes, reps, mode="quick" if args.quick else "full", baselines=baselines)
    table = report.markdown(document, chosen)
    stem = f"{document['mode']}-{document['started_at'].replace(':', '').replace('-', '')[:15]}"
    json_path, md_path = report.write(document, table, args.out_dir, stem)
    print(table)
    print(f"written: {json_path} and {md_path}", file=sys.stderr)
    broken = any(entry["errors"] for entry in document["scenarios"].values())
    return EXIT_BROKEN if broken else EXIT_OK


def run(
    scenarios: list[Scenario], sizes: Sizes, reps: int, *, mode: str, baselines: tuple[str, ...] = BASELINES
) -> dict[str, Any]:
    """Run the scenarios on a fresh stack; returns the JSON document (samples, summaries, errors)."""
    document: dict[str, Any] = {
        "mode": mode,
        "reps": reps,
        "baselines": list(baselines),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "sizes": {k: v for k, v in sizes.__dict__.items()},
        "scenarios": {},
    }
    ai = _start_ai_fake(sizes) if any(s.name.startswith("ai") for s in scenarios) else None
    with open_services() as svc:
        stack = Stack(svc)
        try:
            stack.start_server()
            stack.start_raw_api()
            for scenario in scenarios:
                document["scenarios"][scenario.name] = _run_scenario(stack, scenario, sizes, reps, ai, baselines)
        finally:
            stack.close()
            if ai is not None:
                ai.stop()
    document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return document


def _run_scenario(
    stack: Stack, scenario: Scenario, sizes: Sizes, reps: int, ai: Any, baselines: tuple[str, ...]
) -> dict[str, Any]:
    measured = [b for b in baselines if b in scenario.baselines] or [scenario.primary]
    # "raw" is always in the document (empty when not measured): readers of the first shape find it.
    samples: dict[str, list[dict[str, float]]] = {"chorus": [], "raw": [], **{b: [] for b in measured}}
    errors: list[str] = []
    started = time.monotonic()
    for rep in range(min(reps, scenario.max_reps)):
        for side in (*measured, "chorus"):  # back to back, the baselines first
            # The other sides' workers stay up but idle (blocked on their own queues): restarts cost seconds.
            group = "chorus" if side == "chorus" else stack.baselines[side].side
            spec = scenario.chorus_workers if side == "chorus" else scenario.raw_workers
            if stack.workers(group, spec) and spec is not None:
                warm_up(stack, "chorus" if side == "chorus" else side, spec)
            ctx = Context(stack, sizes, rep, ai, baseline="raw" if side == "chorus" else side)
            try:
                sample = (scenario.chorus if side == "chorus" else scenario.raw)(ctx)
            except InvariantBroken as e:
                errors.append(f"{side} rep {rep}: {e}")
                print(f"loadtests: {scenario.name} {side}: {e}", file=sys.stderr)
                continue
            samples[side].append(sample)
            print(f"loadtests: {scenario.name} rep {rep} {side}: {_brief(sample)}", file=sys.stderr)
    return {
        "title": scenario.title,
        **samples,
        "baselines": measured,
        "summary": report.scenario_summary(scenario, samples),
        "errors": errors,
        "duration_s": time.monotonic() - started,
    }


def _brief(sample: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sample.items())


def _start_ai_fake(sizes: Sizes) -> Any:
    # The test suite's OpenAI-wire server (real HTTP, threaded), answering every load-test prompt slowly.
    from tests.fakes.openai_wire import OpenAIWire, Reply

    wire = OpenAIWire().start()
    wire.script("loadtest", Reply(content="ok", delay_s=sizes.ai_latency_s))
    return wire


if __name__ == "__main__":
    sys.exit(main())
