"""One way for tests to build an `Engine` (the controller) on a database, as `chorus` builds it from settings.

`open_engine` is a context manager for code outside fixtures (a load run, a chaos step); the `engine_factory`
fixture hands a test as many engines as it needs and closes each (its Celery app, its connection pool) at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Protocol

import pytest
from celery import Celery

from orchestrator.celery_app import create_celery_app
from orchestrator.engine import Engine, LocalRunner
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.triggers.wiring import build_engine

__all__ = ["EngineFactory", "engine_factory", "open_engine"]


@contextmanager
def open_engine(
    database_url: str,
    *,
    pool_size: int = 2,
    celery: Celery | None = None,
    local_runner: LocalRunner | None = None,
    **settings: object,
) -> Iterator[Engine]:
    """An engine on `database_url`, with `settings` (broker_url, stale_after_s, ...) over the environment's.

    Its Celery app is built from the same settings unless `celery` is given (then the caller owns it). With
    `local_runner` it runs pure control work in its own transactions, as the API's and workers' engines do.
    """
    built = load_settings(database_url=database_url, **settings)
    db = make_engine(database_url, pool_size=pool_size)
    app = celery if celery is not None else create_celery_app(built)
    engine = build_engine(built, make_sessionmaker(db), app, local_runner=local_runner)
    try:
        yield engine
    finally:
        engine.close()  # its flows listener's thread and connection
        if celery is None:
            app.close()
        db.dispose()


class EngineFactory(Protocol):
    def __call__(
        self,
        database_url: str,
        *,
        pool_size: int = 2,
        celery: Celery | None = None,
        local_runner: LocalRunner | None = None,
        **settings: object,
    ) -> Engine: ...


@pytest.fixture
def engine_factory() -> Iterator[EngineFactory]:
    """`engine_factory(database_url, broker_url=..., **settings)`: an engine closed when the test ends."""
    with ExitStack() as opened:

        def make(
            database_url: str,
            *,
            pool_size: int = 2,
            celery: Celery | None = None,
            local_runner: LocalRunner | None = None,
            **settings: object,
        ) -> Engine:
            return opened.enter_context(
                open_engine(database_url, pool_size=pool_size, celery=celery, local_runner=local_runner, **settings)
            )

        yield make
