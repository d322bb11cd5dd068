from __future__ import annotations

import contextlib
import time
from datetime import timedelta

import pytest

from orchestrator.core import jq_sandbox
from orchestrator.core.errors import TaskFailed
from orchestrator.core.expressions import RenderLimits, render
from workers.deadline import deadline


def test_a_handler_running_past_its_timeout_fails_retryably() -> None:
    started = time.monotonic()
    with pytest.raises(TaskFailed) as raised, deadline(timedelta(seconds=0.2), grace=timedelta(0)):
        time.sleep(5)
    assert time.monotonic() - started < 2
    assert raised.value.retryable and "Timeout after 0.2s" in raised.value.message


def test_a_handler_swallowing_exceptions_is_still_stopped() -> None:
    # What a careless handler does: swallow every Exception. The alarm is not an Exception.
    limit = timedelta(seconds=0.2)
    with pytest.raises(TaskFailed), deadline(limit, grace=timedelta(0)), contextlib.suppress(Exception):
        time.sleep(5)


def test_a_fast_handler_is_untouched_and_the_alarm_is_cleared() -> None:
    with deadline(timedelta(seconds=0.5), grace=timedelta(0)):
        value = 1 + 1
    time.sleep(0.7)  # an alarm left armed would fire here
    assert value == 2


def test_no_timeout_means_no_alarm() -> None:
    with deadline(None):
        time.sleep(0.01)


def test_a_task_timeout_stops_a_jq_program_and_its_helper() -> None:
    # jq used to run in-process, where neither the alarm nor the render deadline could stop it (a PT5S task ran 31 s).
    started = time.monotonic()
    with pytest.raises(TaskFailed, match="Timeout"), deadline(timedelta(seconds=0.5), grace=timedelta(0)):
        render("{{ {} | jq('last(range(1e12))') }}", {}, limits=RenderLimits(max_seconds=60))
    assert time.monotonic() - started < 2
    assert all(helper.process.poll() is None for helper in jq_sandbox._pool()._idle)  # the busy one was killed
