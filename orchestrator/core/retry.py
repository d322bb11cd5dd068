"""Retry decisions: when (if ever) the next attempt of a failed task run is due."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from orchestrator.core.flow import RetrySpec


def retry_delay(spec: RetrySpec, failed_attempt: int, *, rng: random.Random | None = None) -> timedelta:
    """The wait before the attempt after `failed_attempt` (1-based), per Kestra's three policies."""
    interval = spec.interval or timedelta(0)
    if spec.type == "exponential":
        factor = spec.delay_factor if spec.delay_factor is not None else 2.0
        delay = interval * (factor ** (failed_attempt - 1))
        return min(delay, spec.max_interval) if spec.max_interval else delay
    if spec.type == "random":
        low = spec.min_interval or timedelta(0)
        high = spec.max_interval or low
        span = max((high - low).total_seconds(), 0.0)
        return low + timedelta(seconds=(rng or random.Random()).uniform(0, span))
    return interval


def next_attempt_at(
    spec: RetrySpec | None, failed_attempt: int, first_attempt_started: datetime, now: datetime
) -> datetime | None:
    """When the next attempt is due, or None when the policy is exhausted (attempts or duration)."""
    if spec is None:
        return None
    if spec.max_attempts is not None and failed_attempt >= spec.max_attempts:
        return None
    due = now + retry_delay(spec, failed_attempt)
    if spec.max_duration is not None and due - first_attempt_started > spec.max_duration:
        return None
    if spec.max_attempts is None and spec.max_duration is None:
        return None  # Kestra requires a bound; an unbounded policy never retries forever here
    return due
