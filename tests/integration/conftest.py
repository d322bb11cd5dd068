"""Fixtures of the integration level."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import empty_redis_db, flush_redis_db
from tests.harness import services


@pytest.fixture
def idle_broker_url(redis_url: str) -> Iterator[str]:
    """A Redis database of this test's own that no worker consumes, as the broker of an engine driven without
    workers: the Celery messages it dispatches (hundreds, for the realtime bursts) would otherwise wait in the
    session's broker, ahead of the e2e stack's messages."""
    url = empty_redis_db(services.redis_url(), exclude=redis_url)
    yield url
    flush_redis_db(url)
