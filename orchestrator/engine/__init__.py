"""The engine: the only writer of execution state (see facade.Engine)."""

from orchestrator.engine.facade import (
    CORRELATION_LABEL,
    OK,
    STOP,
    ClaimedTaskRun,
    Engine,
    LogRecord,
    TaskOutcome,
    TaskRunCoordinates,
)

__all__ = [
    "CORRELATION_LABEL",
    "OK",
    "STOP",
    "ClaimedTaskRun",
    "Engine",
    "LogRecord",
    "TaskOutcome",
    "TaskRunCoordinates",
]
