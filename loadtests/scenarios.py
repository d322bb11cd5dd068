"""The scenarios: each runs once on one side (`chorus` or a baseline) and returns its metrics for that repetition.

A scenario names the worker processes it needs on each side; the runner starts or keeps them, so every
side runs on the same pool settings. The baselines (`raw`, `lean`, `durable`: loadtests/README.md) share
one raw function, which reads `ctx.baseline`. A broken invariant raises `InvariantBroken`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from loadtests import flows
from loadtests import measure as m
from loadtests.stack import BASELINES, Baseline, Stack, WorkerSpec

Metrics = dict[str, float]


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does (full run by default, `Sizes.quick()` for a smoke run)."""

    throughput: int = 5000
    linear: int = 200
    linear_length: int = 5
    fanout: int = 1000
    backlog: int = 10000
    api: int = 2000
    webhook: int = 2000
    http_concurrency: int = 32
    ai_calls: int = 200
    ai_latency_s: float = 0.2
    ai_threads: int = 50
    scaling: int = 1500
    scaling_workers: tuple[int, ...] = (1, 2, 4)
    control1: int = 2000
    control2: int = 2000
    crosspool: int = 1000
    timeout_s: float = 900

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            throughput=200, linear=20, fanout=100, backlog=300, api=200, webhook=200, ai_calls=40,
            scaling=100, scaling_workers=(1, 2), control1=100, control2=100, crosspool=50, timeout_s=120,
        )  # fmt: skip


@dataclass
class Context:
    stack: Stack
    sizes: Sizes
    rep: int
    ai: Any = None  #: the OpenAI-wire fake server, started by the runner for the ai scenarios
    baseline: str = "raw"  #: which baseline a scenario's raw function measures

    @property
    def raw(self) -> Baseline:
        return self.stack.baselines[self.baseline]

    def namespace(self, scenario: str) -> str:
        return f"loadtest.{scenario.replace('-', '_')}.r{self.rep}x{uuid.uuid4().hex[:6]}"

    def run_id(self, scenario: str) -> str:
        return f"{scenario}-r{self.rep}-{uuid.uuid4().hex[:8]}"


STANDARD = WorkerSpec(queues="control", instances=1, concurrency=2)
#: One worker consuming the control and io pools' queues, as `chorus local` and the stack's workers run them.
CROSSPOOL = WorkerSpec(queues="control,io", instances=1, concurrency=2)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: str = ""  #: the DESIGN.md target on the ratio Chorus/primary baseline, shown in the table
    floor: float | None = None  #: a DESIGN.md target on Chorus's own value (e.g. ≥ 150 executions/s)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    chorus: Callable[[Context], Metrics]
    raw: Callable[[Context], Metrics]
    metrics: tuple[Metric, ...]
    chorus_workers: WorkerSpec | None = STANDARD
    raw_workers: WorkerSpec | None = STANDARD
    #: The most repetitions worth the time (the backlog drain is long and measures a shape, not a spread).
    max_reps: int = 99
    #: The baselines the raw function can measure (a chord needs the result backend `lean` lacks; the HTTP
    #: twin and the ai call exist for `raw` only), and the one the target and the JSON's `ratio` are against.
    baselines: tuple[str, ...] = BASELINES
    primary: str = "raw"
    notes: list[str] = field(default_factory=list)


# ---- throughput ---------------------------------------------------------------------------------


def _throughput_chorus(ctx: Context, count: int | None = None) -> Metrics:
    count = count or ctx.sizes.throughput
    ns = ctx.namespace("throughput")
    m.deploy(ctx.stack, flows.one_task(ns))
    t0 = time.time()
    submit_s = m.submit_all(count, m.submit_chorus(ctx.stack, ns, "one"))
    ends = m.wait_chorus(ctx.stack, ns, "one", count, ctx.sizes.timeout_s)
    wall = m.seconds_since(t0, ends[-1])
    return {"runs_per_s": count / wall, "wall_s": wall, "submit_per_s": count / submit_s}


def _throughput_raw(ctx: Context, count: int | None = None) -> Metrics:
    count = count or ctx.sizes.throughput
    run = ctx.run_id("throughput")
    t0 = time.time()
    submit_s = m.submit_all(count, m.submit_raw(ctx.stack, ctx.raw, run))
    ends = m.wait_raw(ctx.stack, run, count, ctx.sizes.timeout_s)
    wall = m.seconds_since(t0, ends[-1])
    return {"runs_per_s": count / wall, "wall_s": wall, "submit_per_s": count / submit_s}


# ---- 5-task linear latency ----------------------------------------------------------------------


def _latency_stats(latencies: list[float]) -> Metrics:
    return {"p50_ms": m.percentile(latencies, 50) * 1000, "p99_ms": m.percentile(latencies, 99) * 1000}


def _linear_chorus(ctx: Context) -> Metrics:
    ns = ctx.namespace("linear")
    m.deploy(ctx.stack, flows.linear(ns, ctx.sizes.linear_length))
    latencies = []
    for _ in range(ctx.sizes.linear):  # one at a time: latency without queueing
        t0 = time.time()
        row = ctx.stack.engine.submit(ns, "linear", inputs={}, actor="system:loadtest")
        latencies.append(m.seconds_since(t0, m.chorus_ended_at(ctx.stack, row.id, 60)))
    return _latency_stats(latencies)


def _linear_raw(ctx: Context) -> Metrics:
    run = ctx.run_id("linear")
    last = ctx.sizes.linear_length - 1
    latencies = []
    for i in range(ctx.sizes.linear):
        t0 = time.time()
        m.raw_chain(ctx.stack, ctx.raw, f"{run}-{i}", ctx.sizes.linear_length)
        latencies.append(m.seconds_since(t0, m.raw_written_at(ctx.stack, f"{run}-{i}", last, 60)))
    return _latency_stats(latencies)


# ---- ForEach fan-out / fan-in -------------------------------------------------------------------


def _fanout_chorus(ctx: Context) -> Metrics:
    ns = ctx.namespace("fanout")
    m.deploy(ctx.stack, flows.fanout(ns, ctx.sizes.fanout))
    t0 = time.time()
    ctx.stack.engine.submit(ns, "fanout", inputs={}, actor="system:loadtest")
    ends = m.wait_chorus(ctx.stack, ns, "fanout", 1, ctx.sizes.timeout_s)
    wall = m.seconds_since(t0, ends[-1])
    return {"wall_s": wall, "runs_per_s": ctx.sizes.fanout / wall}


def _fanout_raw(ctx: Context) -> Metrics:
    run = ctx.run_id("fanout")
    t0 = time.time()
    m.raw_chord(ctx.raw, run, ctx.sizes.fanout)
    wall = m.seconds_since(t0, m.raw_written_at(ctx.stack, run, -1, ctx.sizes.timeout_s))
    m.wait_raw(ctx.stack, run, ctx.sizes.fanout + 1, 10)  # every member wrote exactly once
    return {"wall_s": wall, "runs_per_s": ctx.sizes.fanout / wall}


# ---- backlog drain ------------------------------------------------------------------------------


def _drain_metrics(ends: list[Any], count: int) -> Metrics:
    drain = m.Drain.of(ends)
    total = (ends[-1] - ends[0]).total_seconds()
    return {
        "runs_per_s": count / total,
        "cost_start_ms": drain.cost_start_ms,
        "cost_end_ms": drain.cost_end_ms,
        "end_over_start": drain.cost_end_ms / drain.cost_start_ms,
    }


def _backlog_chorus(ctx: Context) -> Metrics:
    count = ctx.sizes.backlog
    ns = ctx.namespace("backlog")
    m.deploy(ctx.stack, flows.one_task(ns))
    ctx.stack.workers("chorus", None)  # queue everything first
    # A backlog is work that travels: submitted without the local runner, each one-task execution waits as a
    # message (with it, a Log flow ends in its submit and nothing would queue).
    runner, ctx.stack.engine.local_runner = ctx.stack.engine.local_runner, None
    try:
        m.submit_all(count, m.submit_chorus(ctx.stack, ns, "one"))
    finally:
        ctx.stack.engine.local_runner = runner
    ctx.stack.workers("chorus", STANDARD)
    return _drain_metrics(m.wait_chorus(ctx.stack, ns, "one", count, ctx.sizes.timeout_s), count)


def _backlog_raw(ctx: Context) -> Metrics:
    count = ctx.sizes.backlog
    run = ctx.run_id("backlog")
    ctx.stack.workers(ctx.raw.side, None)
    m.submit_all(count, m.submit_raw(ctx.stack, ctx.raw, run))
    ctx.stack.workers(ctx.raw.side, STANDARD)
    return _drain_metrics(m.wait_raw(ctx.stack, run, count, ctx.sizes.timeout_s), count)


# ---- control-only and cross-pool executions (issue 18: a fair comparison) --------------------------


def _executions_metrics(count: int, tasks: int, wall: float, submit_s: float) -> Metrics:
    return {
        "executions_per_s": count / wall,
        "runs_per_s": count * tasks / wall,
        "wall_s": wall,
        "submit_per_s": count / submit_s,
    }


def _executions_chorus(ctx: Context, name: str, source: Callable[[str], str], flow_id: str, tasks: int) -> Metrics:
    """`getattr(sizes, name)` executions of a flow of `tasks` tasks submitted at once, first submit to last end."""
    count: int = getattr(ctx.sizes, name)
    ns = ctx.namespace(name)
    m.deploy(ctx.stack, source(ns))
    t0 = time.time()
    submit_s = m.submit_all(count, m.submit_chorus(ctx.stack, ns, flow_id))
    ends = m.wait_chorus(ctx.stack, ns, flow_id, count, ctx.sizes.timeout_s)
    return _executions_metrics(count, tasks, m.seconds_since(t0, ends[-1]), submit_s)


def _executions_raw(ctx: Context, name: str, pools: tuple[str, ...]) -> Metrics:
    """The same count of raw chains, link k on the baseline's queue for Chorus's pool `pools[k]`."""
    count: int = getattr(ctx.sizes, name)
    run = ctx.run_id(name)
    t0 = time.time()
    submit_s = m.submit_all(count, m.submit_raw_chain(ctx.stack, ctx.raw, run, pools))
    ends = m.wait_raw(ctx.stack, run, count * len(pools), ctx.sizes.timeout_s)
    return _executions_metrics(count, len(pools), m.seconds_since(t0, ends[-1]), submit_s)


def _control1_chorus(ctx: Context) -> Metrics:
    return _executions_chorus(ctx, "control1", flows.one_task, "one", 1)


def _control1_raw(ctx: Context) -> Metrics:
    return _executions_raw(ctx, "control1", ("control",))


def _control2_chorus(ctx: Context) -> Metrics:
    return _executions_chorus(ctx, "control2", lambda ns: flows.linear(ns, 2), "linear", 2)


def _control2_raw(ctx: Context) -> Metrics:
    return _executions_raw(ctx, "control2", ("control", "control"))


def _crosspool_chorus(ctx: Context) -> Metrics:
    return _executions_chorus(ctx, "crosspool", flows.crosspool, "crosspool", 3)


def _crosspool_raw(ctx: Context) -> Metrics:
    return _executions_raw(ctx, "crosspool", ("control", "io", "control"))


# ---- HTTP: executions API and webhook -----------------------------------------------------------


async def _hammer(
    url_of: Callable[[int], str], count: int, concurrency: int, *, with_body: bool = True
) -> tuple[float, list[float], list[int]]:
    """POST `{"n": i}` (or, `with_body=False`, nothing) to url_of(i) for i < count from `concurrency`
    connections; returns (wall seconds, latencies of accepted requests, the accepted i)."""
    latencies: list[float] = []
    accepted: list[int] = []
    numbers = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def lane() -> None:
            for i in numbers:
                t = time.perf_counter()
                response = await (client.post(url_of(i), json={"n": i}) if with_body else client.post(url_of(i)))
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                    accepted.append(i)

        t0 = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return time.perf_counter() - t0, latencies, accepted


def _http_metrics(wall: float, latencies: list[float], accepted: list[int], count: int) -> Metrics:
    return {
        "req_per_s": len(accepted) / wall,
        "p50_ms": m.percentile(latencies, 50) * 1000,
        "p99_ms": m.percentile(latencies, 99) * 1000,
        "accepted": float(len(accepted)),
        "rejected": float(count - len(accepted)),
    }


def _api_chorus(ctx: Context) -> Metrics:
    ns, count = ctx.namespace("api"), ctx.sizes.api
    m.deploy(ctx.stack, flows.one_task(ns))
    url = f"{ctx.stack.api_url}/executions/{ns}/one"
    # Kestra's create takes inputs as multipart only and refuses a JSON body (415): the flow has no inputs.
    hammer = _hammer(lambda _: url, count, ctx.sizes.http_concurrency, with_body=False)
    wall, latencies, accepted = asyncio.run(hammer)
    m.wait_chorus(ctx.stack, ns, "one", len(accepted), ctx.sizes.timeout_s)
    return _http_metrics(wall, latencies, accepted, count)


def _api_raw(ctx: Context) -> Metrics:
    run, count = ctx.run_id("api"), ctx.sizes.api
    url = f"{ctx.stack.raw_api_url}/raw/{run}"
    wall, latencies, accepted = asyncio.run(_hammer(lambda _: url, count, ctx.sizes.http_concurrency))
    m.wait_raw(ctx.stack, run, len(accepted), ctx.sizes.timeout_s)
    return _http_metrics(wall, latencies, accepted, count)


def _webhook_chorus(ctx: Context) -> Metrics:
    ns, count = ctx.namespace("webhook"), ctx.sizes.webhook
    m.deploy(ctx.stack, flows.webhook(ns))
    url = f"{ctx.stack.api_url}/executions/webhook/{ns}/hook/{flows.WEBHOOK_KEY}"
    wall, latencies, accepted = asyncio.run(_hammer(lambda _: url, count, ctx.sizes.http_concurrency))
    m.wait_chorus(ctx.stack, ns, "hook", len(accepted), ctx.sizes.timeout_s)
    per_request = _executions_per_request(ctx, ns)
    if sorted(per_request) != sorted(accepted) or any(c != 1 for c in per_request.values()):
        doubled = sum(1 for c in per_request.values() if c > 1)
        missing = len(set(accepted) - set(per_request))
        raise m.InvariantBroken(f"webhook: {missing} accepted requests without an execution, {doubled} doubled")
    executions = sum(per_request.values())
    return {**_http_metrics(wall, latencies, accepted, count), "executions_per_request": executions / len(accepted)}


def _executions_per_request(ctx: Context, namespace: str) -> dict[int, int]:
    with ctx.stack.svc.connect() as conn:
        rows = conn.execute(
            "SELECT (trigger->'variables'->'body'->>'n')::int, count(*) FROM executions "
            "WHERE tenant = %s AND namespace = %s AND flow_id = 'hook' GROUP BY 1",
            (ctx.stack.settings.tenant, namespace),
        ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def _webhook_raw(ctx: Context) -> Metrics:
    run, count = ctx.run_id("webhook"), ctx.sizes.webhook
    url = f"{ctx.stack.raw_api_url}/raw/{run}"
    wall, latencies, accepted = asyncio.run(_hammer(lambda _: url, count, ctx.sizes.http_concurrency))
    rows = m.wait_raw(ctx.stack, run, len(accepted), ctx.sizes.timeout_s)  # each request's task wrote once
    return {**_http_metrics(wall, latencies, accepted, count), "executions_per_request": len(rows) / len(accepted)}


# ---- ai pool: slow model calls ------------------------------------------------------------------


def _ai_chorus(ctx: Context) -> Metrics:
    ns, count = ctx.namespace("ai"), ctx.sizes.ai_calls
    m.deploy(ctx.stack, flows.chat(ns, ctx.ai.base_url, ctx.ai.api_key))
    t0 = time.time()
    m.submit_all(count, m.submit_chorus(ctx.stack, ns, "chat"))
    wall = m.seconds_since(t0, m.wait_chorus(ctx.stack, ns, "chat", count, ctx.sizes.timeout_s)[-1])
    return _ai_metrics(ctx, wall)


def _ai_raw(ctx: Context) -> Metrics:
    from loadtests.raw_app import CHAT_AND_WRITE, RAW_QUEUE

    run, count = ctx.run_id("ai"), ctx.sizes.ai_calls
    kwargs = {"run": run, "base_url": ctx.ai.base_url, "api_key": ctx.ai.api_key}
    t0 = time.time()

    def submit(i: int) -> None:
        ctx.stack.raw_celery.signature(CHAT_AND_WRITE, kwargs={**kwargs, "seq": i}, queue=RAW_QUEUE).apply_async()

    m.submit_all(count, submit)
    wall = m.seconds_since(t0, m.wait_raw(ctx.stack, run, count, ctx.sizes.timeout_s)[-1])
    return _ai_metrics(ctx, wall)


def _ai_metrics(ctx: Context, wall: float) -> Metrics:
    serial = ctx.sizes.ai_calls * ctx.sizes.ai_latency_s
    #: How many model calls were in flight on average: 1 per worker process means no I/O overlap.
    return {"wall_s": wall, "calls_per_s": ctx.sizes.ai_calls / wall, "overlap": serial / wall}


# ---- the catalogue ------------------------------------------------------------------------------

_RUNS = Metric("runs_per_s", "task runs/s", "/s", True, "≥ 0.8")
_HTTP = (
    Metric("req_per_s", "requests/s", "/s", True),
    Metric("p99_ms", "p99 latency", "ms", False),
)


def _scaling(workers: int) -> Scenario:
    spec = WorkerSpec(queues="control", instances=workers, concurrency=1)
    return Scenario(
        name=f"scaling-{workers}",
        title=f"scaling: one-task executions, {workers} worker process(es)",
        chorus=lambda ctx: _throughput_chorus(ctx, ctx.sizes.scaling),
        raw=lambda ctx: _throughput_raw(ctx, ctx.sizes.scaling),
        metrics=(replace(_RUNS, target=""),),
        chorus_workers=spec,
        raw_workers=spec,
        max_reps=2,
    )


def _ai(name: str, label: str, spec: WorkerSpec, raw_spec: WorkerSpec, sizes: Sizes, max_reps: int = 99) -> Scenario:
    return Scenario(
        name=name,
        title=(
            f"ai pool: {sizes.ai_calls} concurrent ChatCompletion executions, "
            f"{sizes.ai_latency_s * 1000:.0f} ms model latency, {label}"
        ),
        chorus=_ai_chorus,
        raw=_ai_raw,
        metrics=(
            Metric("wall_s", "wall time", "s", False),
            Metric("overlap", "calls in flight (avg)", "", True),
        ),
        chorus_workers=spec,
        raw_workers=raw_spec,
        max_reps=max_reps,
        baselines=("raw",),
    )


def catalogue(sizes: Sizes) -> list[Scenario]:
    """Every scenario, in the order a full run takes them."""
    threads = sizes.ai_threads
    return [
        Scenario(
            "throughput",
            f"throughput: {sizes.throughput} one-task (Log) executions, submitted at once",
            _throughput_chorus,
            _throughput_raw,
            (_RUNS,),
        ),
        Scenario(
            "linear",
            f"latency: {sizes.linear_length}-task linear flow vs raw chain of {sizes.linear_length}, one at a time",
            _linear_chorus,
            _linear_raw,
            (
                Metric("p50_ms", "p50 submit→end", "ms", False, "≤ 2"),
                Metric("p99_ms", "p99 submit→end", "ms", False, "≤ 2"),
            ),
        ),
        Scenario(
            "fanout",
            f"fan-out: ForEach over {sizes.fanout} values (concurrencyLimit 0) then fan-in, vs a raw chord",
            _fanout_chorus,
            _fanout_raw,
            (Metric("wall_s", "wall time", "s", False), replace(_RUNS, target="")),
            max_reps=2,
            baselines=("raw",),
        ),
        Scenario(
            "backlog",
            f"backlog: {sizes.backlog} queued one-task executions drained by 2 worker processes",
            _backlog_chorus,
            _backlog_raw,
            (
                replace(_RUNS, target=""),
                Metric("cost_start_ms", "cost/execution, first 10%", "ms", False),
                Metric("cost_end_ms", "cost/execution, last 10%", "ms", False),
                Metric("end_over_start", "end/start cost (flat = 1)", "", False),
            ),
            max_reps=1,
        ),
        Scenario(
            "control1",
            f"control1: {sizes.control1} one-task (Log) executions submitted at once, vs the durable baseline",
            _control1_chorus,
            _control1_raw,
            (replace(_RUNS, target="≥ 1.0"),),
            primary="durable",
        ),
        Scenario(
            "control2",
            f"control2: {sizes.control2} two-task (Log, Log) executions submitted at once, end to end",
            _control2_chorus,
            _control2_raw,
            (Metric("executions_per_s", "executions/s", "/s", True, floor=150.0),),
            primary="durable",
        ),
        Scenario(
            "crosspool",
            f"crosspool: {sizes.crosspool} executions of Log → Log on the io pool → Log, vs a lean chain on two "
            "queues, one worker consuming both",
            _crosspool_chorus,
            _crosspool_raw,
            (
                Metric("executions_per_s", "executions/s", "/s", True, "≥ 0.7"),
                replace(_RUNS, target=""),
            ),
            chorus_workers=CROSSPOOL,
            raw_workers=CROSSPOOL,
            primary="lean",
        ),
        Scenario(
            "api",
            f"API: {sizes.api} executions created over HTTP, {sizes.http_concurrency} connections",
            _api_chorus,
            _api_raw,
            _HTTP,
            baselines=("raw",),
        ),
        Scenario(
            "webhook",
            f"webhook: {sizes.webhook} requests to one webhook trigger, {sizes.http_concurrency} connections",
            _webhook_chorus,
            _webhook_raw,
            (*_HTTP, Metric("executions_per_request", "executions per accepted request", "", False)),
            baselines=("raw",),
        ),
        _ai(
            "ai-prefork",
            "prefork pool, 2 processes (what `chorus worker` runs today)",
            WorkerSpec(queues="control,ai", concurrency=2),
            WorkerSpec(concurrency=2),
            sizes,
            max_reps=1,  # one call per process at a time: slow by construction, one repetition shows it
        ),
        _ai(
            "ai-threads",
            f"Celery threads pool, {threads} threads",
            WorkerSpec(queues="control,ai", concurrency=threads, pool_impl="threads"),
            WorkerSpec(concurrency=threads, pool_impl="threads"),
            sizes,
        ),
        *[_scaling(n) for n in sizes.scaling_workers],
    ]
