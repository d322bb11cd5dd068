"""The engine: the only writer of execution state.

`Engine` (facade.py) is the public surface: workers, the API, the CLI and the triggers package change
flows, executions and task runs only through its methods, each one transaction that commits before any
message is sent. Collaborators beside it (operations, subflows, loops, sleeps, approvals, events, ...)
each own one family of operations and call the engine's public methods only; the after-commit
reactions are ordered hooks (reactions.py) that other packages extend at wiring time.

Imports: the core, the store, settings, hooks, observability; never the triggers package, the API,
the workers or the CLI (layers core -> store -> engine -> triggers -> api/workers/cli).
"""

from orchestrator.engine.facade import Engine
from orchestrator.engine.reactions import Committed, Reaction
from orchestrator.engine.submission import CORRELATION_LABEL, SubmitRequest, WebhookCall
from orchestrator.engine.values import (
    ClaimedTaskRun,
    LocalDecision,
    LocalRunner,
    LogRecord,
    OutboundRequest,
    TaskOutcome,
    TaskRunCoordinates,
    Verdict,
)
from orchestrator.store.errors import DATABASE_UNAVAILABLE  # what a worker retries on while recording

__all__ = [
    "CORRELATION_LABEL",
    "DATABASE_UNAVAILABLE",
    "ClaimedTaskRun",
    "Committed",
    "Engine",
    "LocalDecision",
    "LocalRunner",
    "LogRecord",
    "OutboundRequest",
    "Reaction",
    "SubmitRequest",
    "TaskOutcome",
    "TaskRunCoordinates",
    "Verdict",
    "WebhookCall",
]
