"""Flow triggers: when an execution ends, start the flows whose Flow trigger accepts it.

The engine calls `on_execution_ended` after the transaction that ended the execution has committed,
so a started flow never sees an uncommitted end. A failure here is logged and never undoes the end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from orchestrator import store, store_triggers
from orchestrator.core.errors import ChorusError
from orchestrator.core.expressions import render_value
from orchestrator.core.flow_conditions import EndedExecution, flow_trigger_matches, flow_trigger_variables

if TYPE_CHECKING:
    from orchestrator.engine import Engine

logger = logging.getLogger(__name__)


def on_execution_ended(engine: Engine, execution_id: str) -> list[str]:
    """Start every flow whose Flow trigger matches the ended execution; return the new executions' ids."""
    try:
        with engine.sessions() as session:
            execution = store.get_execution(session, execution_id)
            candidates = store_triggers.flows_with_flow_triggers(session, engine.settings.tenant)
            if execution is None or not candidates:
                return []
            ended = EndedExecution(
                id=execution.id,
                namespace=execution.namespace,
                flow_id=execution.flow_id,
                flow_revision=execution.flow_revision,
                state=execution.state,
                labels={label["key"]: label["value"] for label in execution.labels},
                outputs=execution.outputs or {},
            )
        return _start_matching(engine, ended, candidates)
    except Exception:
        logger.exception("flow triggers failed for %s", execution_id, extra={"execution_id": execution_id})
        return []


def _start_matching(engine: Engine, ended: EndedExecution, candidates: Any) -> list[str]:
    started: list[str] = []
    for flow_row in candidates:
        try:
            flow = engine.flow_of(flow_row)
        except ChorusError:
            continue
        if flow.disabled or (flow.namespace, flow.id) == (ended.namespace, ended.flow_id):
            continue  # a flow never triggers itself: that would loop forever
        for trigger in flow.triggers:
            if trigger.type != "Flow" or trigger.disabled or not flow_trigger_matches(trigger, ended):
                continue
            variables = flow_trigger_variables(ended)
            actor = f"trigger:{flow.namespace}.{flow.id}.{trigger.id}"
            try:
                raw = trigger.properties.get("inputs")
                inputs = render_value(raw, {"trigger": variables}) if isinstance(raw, dict) else {}
                execution = engine.submit(
                    flow.namespace, flow.id, inputs=inputs, actor=actor,
                    trigger={"id": trigger.id, "type": trigger.type_name, "variables": variables},
                )  # fmt: skip
            except ChorusError as e:
                logger.error("%s could not start %s.%s: %s", actor, flow.namespace, flow.id, e.message)
                continue
            started.append(execution.id)
    return started
