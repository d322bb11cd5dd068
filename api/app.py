"""create_app(settings): routers under both Kestra path families, lifespan, error table, health."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.errors import chorus_error_handler
from api.routes import executions, flows
from orchestrator.celery_app import create_celery_app
from orchestrator.core.errors import ChorusError
from orchestrator.database import make_engine, make_sessionmaker
from orchestrator.engine import Engine
from orchestrator.settings import Settings, load_settings

logger = logging.getLogger(__name__)


class Sweeper:
    """The controller loop: re-dispatches due retries and stalled executions (one replica at a time)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chorus-sweeper", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._engine.settings.sweep_interval_s):
            try:
                self._engine.sweep_once()
            except Exception:
                logger.exception("sweep failed; retrying at the next interval")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def create_app(settings: Settings | None = None, *, sweeper: bool = True) -> FastAPI:
    """The HTTP API and, in its lifespan, the controller's sweeper."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = make_engine(settings.database_url)
        engine = Engine(settings, make_sessionmaker(db), create_celery_app(settings))
        app.state.engine = engine
        loop = Sweeper(engine) if sweeper else None
        if loop:
            loop.start()
        try:
            yield
        finally:
            if loop:
                loop.stop()
            db.dispose()

    app = FastAPI(title="Chorus", version=_version(), lifespan=lifespan)
    app.add_exception_handler(ChorusError, chorus_error_handler)
    for prefix in ("/api/v1/{tenant}", "/api/v1"):
        app.include_router(flows.router, prefix=prefix)
        app.include_router(executions.router, prefix=prefix)

    @app.get("/health", tags=["Health"])
    def health() -> dict[str, Any]:
        return {"status": "UP"}

    return app


def _version() -> str:
    from importlib.metadata import version

    return version("chorus")
