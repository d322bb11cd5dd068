"""Worker process entry (`celery -A workers.app worker -Q control`): the worker's composition root.

Celery loads this module by import string, so building the app here is the worker's start-up, not an
import side effect elsewhere: settings come from `CHORUS_*` variables, and connections are opened
lazily in each pool process after fork.
"""

from __future__ import annotations

from orchestrator.celery_app import create_celery_app
from orchestrator.metrics import MetricsSettings
from orchestrator.observability import configure_logging
from orchestrator.settings import load_settings
from workers import lifeline, runtime
from workers import metrics as worker_metrics
from workers.runtime import register_tasks

settings = load_settings()
configure_logging(settings.log_level)
app = create_celery_app(settings, main="workers")
register_tasks(app, settings)
# The metrics hooks attach to each pool process's Engine once it exists (after fork).
worker_metrics.install(app, MetricsSettings(), settings.pools, runtime.current_engine)
if settings.lifeline_fd is not None:  # started by `chorus local`: die with it
    lifeline.install(settings.lifeline_fd)

__all__ = ["app"]
