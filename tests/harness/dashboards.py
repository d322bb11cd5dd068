"""The Grafana dashboards under deploy/grafana: loading, walking panels, and queries ready to evaluate."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"

#: What Grafana substitutes before a query reaches Prometheus, for a test window of a few minutes.
_SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
}
_VARIABLE = re.compile(r"\$\{?([A-Za-z_]\w*)\}?")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str

    def evaluable(self) -> str:
        """The expression as Grafana would send it with every template variable set to All."""
        expr = self.expr
        for name, value in _SUBSTITUTIONS.items():
            expr = expr.replace(name, value)
        return _VARIABLE.sub(".*", expr)


def load_all() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries() -> Iterator[PanelQuery]:
    for name, dashboard in load_all().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield PanelQuery(name, panel["id"], panel["title"], target["refId"], target["expr"])
