"""Server-Sent Event streams of an execution and of its logs, polled from the database (the source of truth).

Kestra's order: `start` (a skeleton), `progress` on every change, `end` once the execution and all its
task runs are terminal, then the stream closes (kestrapy's generator ends only when the server closes).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.schemas import execution_public, log_public
from orchestrator import store
from orchestrator.core.states import State
from orchestrator.draining import draining
from orchestrator.engine import Engine
from orchestrator.store import search as store_search
from orchestrator.store.queries import Search

POLL_S = 0.1
HEARTBEAT_S = 15.0
MAX_STREAM_S = 3600.0  #: Kestra closes idle streams after an hour too
LOG_FLUSH_GRACE_S = 0.5  #: logs written with the last transition get this long to show up


def event(kind: str, data: Any) -> str:
    return f"id: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _snapshot(eng: Engine, execution_id: str) -> tuple[dict[str, Any], bool]:
    with eng.sessions() as session:
        row = store.get_execution(session, execution_id)
        if row is None:
            return {"id": execution_id}, True
        runs = store.task_runs_of(session, execution_id)
        done = State(row.state).is_terminal and all(State(r.state).is_terminal for r in runs)
        return execution_public(row, runs), done


async def execution_stream(eng: Engine, execution_id: str, request: Request) -> AsyncIterator[str]:
    yield event("start", {"id": execution_id})
    last = ""
    beat = started = time.monotonic()
    while time.monotonic() - started < MAX_STREAM_S:
        body, done = await run_in_threadpool(_snapshot, eng, execution_id)
        if done:
            yield event("end", body)
            return
        fingerprint = json.dumps(body, sort_keys=True)
        if fingerprint != last:
            last, beat = fingerprint, time.monotonic()
            yield event("progress", body)
        elif time.monotonic() - beat > HEARTBEAT_S:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        if draining.is_set() or await request.is_disconnected():  # a stream must not hold a shutdown
            return
        await asyncio.sleep(POLL_S)


def _new_logs(eng: Engine, execution_id: str, search: Search, after_id: int) -> tuple[list[dict[str, Any]], int, bool]:
    with eng.sessions() as session:
        rows, _ = store_search.search_logs(session, search, after_id=after_id, paged=False)
        row = store.get_execution(session, execution_id)
        finished = row is None or State(row.state).is_terminal
    last = rows[-1].id if rows else after_id
    return [log_public(r) for r in rows], last, finished


async def log_stream(eng: Engine, execution_id: str, search: Search, request: Request) -> AsyncIterator[str]:
    """Every stored log line, then live ones; closes shortly after the execution is terminal."""
    yield event("start", {})
    after_id = 0
    finished_at: float | None = None
    beat = started = time.monotonic()
    while time.monotonic() - started < MAX_STREAM_S:
        entries, after_id, finished = await run_in_threadpool(_new_logs, eng, execution_id, search, after_id)
        for entry in entries:
            beat = time.monotonic()
            yield event("progress", entry)
        if finished:
            finished_at = finished_at or time.monotonic()
            if time.monotonic() - finished_at >= LOG_FLUSH_GRACE_S:
                return
        if time.monotonic() - beat > HEARTBEAT_S:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        if draining.is_set() or await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S * 2)
