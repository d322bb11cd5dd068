"""The I/O-backed expression functions (`errorLogs()`, `kv()`, `secret()`) a worker offers its templates."""

from __future__ import annotations

from typing import Any

from orchestrator.engine import ClaimedTaskRun, Engine


class EngineFunctions:
    """Implements orchestrator.core.expressions.ExpressionFunctions for one claimed task run."""

    def __init__(self, engine: Engine, claimed: ClaimedTaskRun) -> None:
        self._engine = engine
        self._claimed = claimed

    def error_logs(self) -> list[dict[str, Any]]:
        return self._engine.error_logs(self._claimed.coordinates.execution_id)
