"""The labels a Flow trigger gives the execution it starts (Kestra 2's `trigger.Flow#evaluate`, FlowTest).

- the trigger's own `labels` (a mapping or a list of {key, value}), each rendered; one that cannot be rendered,
  or renders to nothing (`{{ null }}`), is left out rather than failing the start (Kestra logs and omits it);
- the upstream execution's correlation label, so every execution of one causal chain shares it;
- the upstream execution's other labels are not copied: the started flow reads them as
  `trigger.executionLabels` (system labels left out).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.core.errors import ChorusError
from orchestrator.core.pebble_values import format_value

CORRELATION_LABEL = "system.correlationId"


def flow_trigger_labels(raw: Any, upstream: Mapping[str, str], render: Callable[[Any], Any]) -> list[dict[str, str]]:
    """The trigger's rendered labels, then the upstream correlation label (when it has one)."""
    labels: list[dict[str, str]] = []
    for key, value in _pairs(raw):
        try:
            rendered = render(value)
        except ChorusError:
            continue  # Kestra: "Failed to render label ..., it will be omitted"
        text = format_value(rendered)
        if text:
            labels.append({"key": key, "value": text})
    if CORRELATION_LABEL in upstream:
        labels.append({"key": CORRELATION_LABEL, "value": upstream[CORRELATION_LABEL]})
    return labels


def execution_labels(upstream: Mapping[str, str]) -> dict[str, str]:
    """`trigger.executionLabels`: the upstream execution's labels without the system ones."""
    return {key: value for key, value in upstream.items() if not key.startswith("system.")}


def _pairs(raw: Any) -> list[tuple[str, Any]]:
    if isinstance(raw, Mapping):
        return [(str(key), value) for key, value in raw.items()]
    if isinstance(raw, list):
        return [(str(item["key"]), item.get("value")) for item in raw if isinstance(item, Mapping) and "key" in item]
    return []
