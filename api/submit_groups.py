"""Group commit for starts: executions created by concurrent requests are written in one transaction.

While a group is being written, the requests that arrive wait beside it and form the next group, so a
lone request goes at once (no added latency) and a burst is written in a few transactions instead of
one each: one commit, one audit write and one pool checkout per group. `Engine.submit_many` gives every
request its own answer, its own error included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from starlette.concurrency import run_in_threadpool

from orchestrator.engine import SubmitRequest
from orchestrator.store.tables import ExecutionRow

SubmitMany = Callable[[Sequence[SubmitRequest]], list[ExecutionRow | Exception]]


class SubmitGroups:
    """Collects starts into groups of at most `max_group`, with at most `in_flight` groups written at once."""

    def __init__(self, submit_many: SubmitMany, *, max_group: int = 64, in_flight: int = 2) -> None:
        self._submit_many = submit_many
        self._max_group = max_group
        self._in_flight = in_flight
        self._writing = 0
        self._waiting: list[tuple[SubmitRequest, asyncio.Future[ExecutionRow]]] = []
        self._tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones

    async def submit(self, request: SubmitRequest) -> ExecutionRow:
        future: asyncio.Future[ExecutionRow] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        self._start_groups()
        return await future

    def _start_groups(self) -> None:
        while self._waiting and self._writing < self._in_flight:
            group, self._waiting = self._waiting[: self._max_group], self._waiting[self._max_group :]
            self._writing += 1
            task = asyncio.get_running_loop().create_task(self._write(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write(self, group: list[tuple[SubmitRequest, asyncio.Future[ExecutionRow]]]) -> None:
        try:
            results: Sequence[ExecutionRow | BaseException] = await run_in_threadpool(
                self._submit_many, [request for request, _ in group]
            )
        except BaseException as error:  # every waiting request learns it
            results = [error] * len(group)
        finally:
            self._writing -= 1
        for (_, future), result in zip(group, results, strict=True):
            if future.done():  # its caller went away (a closed connection): nobody to tell
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._start_groups()
