"""Worker process entry (`celery -A workers.app worker -Q control`): the worker's composition root.

Celery loads this module by import string, so building the app here is the worker's start-up, not an
import side effect elsewhere: settings come from `CHORUS_*` variables, and connections are opened
lazily in each pool process after fork.
"""

from __future__ import annotations

from orchestrator.audit_keys import load_keyring
from orchestrator.celery_app import create_celery_app
from orchestrator.engine.tracing_hooks import TracingHooks
from orchestrator.hardening import forbid_inspection
from orchestrator.observability.logs import configure_logging
from orchestrator.observability.metrics import MetricsSettings
from orchestrator.observability.task_run_log import TaskRunLog
from orchestrator.observability.tracing import TracingSettings
from orchestrator.settings import load_settings
from workers import drain, lifeline, liveness, runtime
from workers import metrics as worker_metrics
from workers import tracing as worker_tracing
from workers.runtime import register_tasks
from workers.sandbox import script_user

# First: `chorus worker` exec'd Celery, which reset the flag; pool processes inherit it by fork.
forbid_inspection()
settings = load_settings()
# Bad values stop the worker now, not at its first task after fork: the audit key, the scripts' user.
load_keyring(settings)
script_user(settings.scripts_user)
configure_logging(settings.log_level)
app = create_celery_app(settings, main="workers")
register_tasks(app, settings, hooks=[TaskRunLog(), TracingHooks()])
# Spans (off without an OTLP endpoint) from each process that runs tasks, set up after fork.
worker_tracing.install(settings.worker_pool, TracingSettings())
# The metrics hooks attach to each pool process's Engine once it exists (after fork).
worker_metrics.install(app, MetricsSettings(), settings.pools, runtime.current_engine)
if settings.worker_alive_file is not None:  # the liveness probe of the chart and the compose file reads it
    liveness.install(app, settings.worker_alive_file, settings.worker_alive_interval_s)
# A pool process cut from the database stops its task body before another worker may take it over.
drain.install_fencing()
drain.quiet_planned_rejects()  # a hand-back (drain or fence) is planned: no traceback at WARNING for it
if settings.worker_drain_s is not None:  # hand back what still runs when the drain time is up (workers/drain.py)
    drain.install(settings.worker_drain_s)
if settings.lifeline_fd is not None:  # started by `chorus local`: die with it
    lifeline.install(settings.lifeline_fd)

__all__ = ["app"]
