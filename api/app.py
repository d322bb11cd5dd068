"""create_app(settings): routers under both Kestra path families, lifespan, error table, health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from api import a2a, console, health, mcp_server, wiring
from api.errors import chorus_error_handler
from api.metrics import RequestMetrics, metrics_router
from api.routes import actions, approvals, bulk_actions, reviews, webhooks
from api.submit_groups import SubmitGroups
from orchestrator.audit_keys import load_keyring
from orchestrator.celery_app import create_celery_app
from orchestrator.core.errors import ChorusError
from orchestrator.engine.metrics_hooks import MetricsHooks
from orchestrator.engine.sweeper import Sweeper
from orchestrator.engine.tracing_hooks import TracingHooks
from orchestrator.observability.budget_gauges import BudgetGaugesCollector
from orchestrator.observability.execution_gauges import ExecutionGaugesCollector
from orchestrator.observability.metrics import MetricsSettings, metrics
from orchestrator.observability.queue_depth import QueueDepthCollector
from orchestrator.observability.task_run_log import TaskRunLog
from orchestrator.observability.tracing import setup_tracing, shutdown_tracing
from orchestrator.settings import Settings, load_settings
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.triggers.wiring import build_engine
from workers.attempts import LocalRunner

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, sweeper: bool = True) -> FastAPI:
    """The HTTP API and, in its lifespan, the controller's sweeper."""
    settings = settings or load_settings()
    process_metrics = metrics()
    queue_depth = QueueDepthCollector(settings.broker_url, settings.pools)
    execution_gauges = ExecutionGaugesCollector(settings.stale_after_s)
    budget_gauges = BudgetGaugesCollector(settings.tenant)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = make_engine(settings.database_url)
        tracing = setup_tracing("server")  # off without an OTLP endpoint configured
        hooks = [MetricsHooks(process_metrics), TaskRunLog(), TracingHooks()]
        keyring = load_keyring(settings)
        sessions = make_sessionmaker(db, audit_key=keyring.current)
        execution_gauges.attach(sessions)
        budget_gauges.attach(sessions)
        # The API runs a new execution's leading pure control tasks in the submit's own transaction
        # (engine/local_drive.py): a Log-only flow then costs one commit and no message.
        engine = build_engine(settings, sessions, create_celery_app(settings), hooks=hooks, local_runner=LocalRunner())
        app.state.engine = engine
        app.state.submit_groups = SubmitGroups(engine.submit_many)
        app.state.audit_keys = keyring.by_id  # the audit routes check MACs with every key verify accepts
        wiring.start(app, engine)
        loop = Sweeper(engine, process_metrics) if sweeper else None
        if loop:
            loop.start()
        try:
            async with mcp_server.running(app):
                yield
        finally:
            if loop:
                loop.stop()
            queue_depth.close()
            engine.close()
            db.dispose()
            if tracing:
                shutdown_tracing()  # flush what is still queued

    app = FastAPI(title="Chorus", version=_version(), lifespan=lifespan)
    app.add_exception_handler(ChorusError, chorus_error_handler)
    app.add_middleware(RequestMetrics)
    app.include_router(health.router)
    app.include_router(metrics_router([queue_depth, execution_gauges, budget_gauges], MetricsSettings().merge_urls))
    for prefix in ("/api/v1/{tenant}", "/api/v1"):
        # Webhooks are open (as in Kestra): the key in the path is the credential.
        app.include_router(webhooks.router, prefix=prefix)
    # Fixed action names before `/executions/{namespace}/{flowId}`, which would swallow them.
    wiring.install(
        app, settings, action_routers=[bulk_actions.router, actions.router, approvals.router, reviews.router]
    )
    console.mount(app)  # the web console under /ui, and the AI usage API it reads
    mcp_server.mount(app)  # flows as MCP tools at /mcp (sessions) and /mcp/stateless
    app.include_router(a2a.router)  # A2A agent cards and JSON-RPC at /.well-known/agent-card.json and /a2a

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui")

    return app


def _version() -> str:
    from importlib.metadata import version

    return version("chorus")
