"""Deploy-time validation: the pure parser's checks plus those that need a library outside the core.

The core parser only reads a cron expression's shape; here croniter, the library the scheduler fires
with, reads it whole, so `61 * * * *` is refused when the flow is saved instead of never firing.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from orchestrator.core.durations import is_expression
from orchestrator.core.errors import FlowErrorDetail, FlowInvalid
from orchestrator.core.flow import Flow
from orchestrator.core.parse import parse_flow_with_warnings

__all__ = ["schedule_problems", "validate_flow", "validate_flow_with_warnings"]


def validate_flow(source: str) -> Flow:
    """Parse a flow for deployment; raise FlowInvalid listing every problem, parser's and scheduler's."""
    return validate_flow_with_warnings(source)[0]


def validate_flow_with_warnings(source: str) -> tuple[Flow, list[FlowErrorDetail]]:
    """`validate_flow`, also returning the warnings (expression syntax errors) of an accepted flow."""
    flow, warnings = parse_flow_with_warnings(source)
    problems = schedule_problems(flow)
    if problems:
        raise FlowInvalid(problems)
    return flow, warnings


def schedule_problems(flow: Flow) -> list[FlowErrorDetail]:
    """Schedule triggers whose cron expression or time zone the scheduler could not use."""
    problems: list[FlowErrorDetail] = []
    for index, trigger in enumerate(flow.triggers):
        if trigger.type not in ("Schedule", "ScheduleOnDates"):
            continue
        where = f"triggers[{index}]"
        zone = trigger.properties.get("timezone")
        if isinstance(zone, str) and not is_expression(zone):
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(
                    FlowErrorDetail(f"{where}.timezone", f"unknown time zone {zone!r}", trigger.line, trigger.column)
                )
        cron = trigger.properties.get("cron")
        if trigger.type != "Schedule" or not isinstance(cron, str):
            continue
        expression = cron.strip()
        with_seconds = len(expression.split()) == 6 or str(trigger.properties.get("withSeconds")).lower() == "true"
        if not croniter.is_valid(expression, second_at_beginning=with_seconds):
            message = f"invalid cron expression {expression!r}: a field is out of range or not cron syntax"
            problems.append(FlowErrorDetail(f"{where}.cron", message, trigger.line, trigger.column))
    return problems
