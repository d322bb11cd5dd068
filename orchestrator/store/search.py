"""Search queries over flows, executions and logs: `queries.Search` values turned into SQL (read-only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, column, exists, false, func, not_, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import InstrumentedAttribute, Session

from orchestrator.core import regex
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import ChorusError
from orchestrator.store.queries import Filter, Group, Op, Search, SortKey
from orchestrator.store.tables import ExecutionRow, FlowRevisionRow, KeyValueRow, LogLineRow, TaskRunRow

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")

Column = InstrumentedAttribute[Any] | ColumnElement[Any]
Condition = ColumnElement[bool]


class FilterValueInvalid(ChorusError):
    """Raised when a search filter's value cannot be read (a date, a duration, a level)."""

    def __init__(self, field: str, message: str) -> None:
        self.path = f"filters[{field}]"
        super().__init__(f"{self.path}: {message}")


def _text(column: Column, f: Filter) -> Condition:
    value = f.value
    match f.op:
        case Op.EQUALS:
            return column == value
        case Op.NOT_EQUALS:
            return column != value
        case Op.IN:
            return column.in_(f.values)
        case Op.NOT_IN:
            return column.not_in(f.values)
        case Op.STARTS_WITH:
            return column.startswith(value, autoescape=True)
        case Op.PREFIX:
            base = value.rstrip(".")
            return or_(column == base, column.startswith(base + ".", autoescape=True))
        case Op.ENDS_WITH:
            return column.endswith(value, autoescape=True)
        case Op.CONTAINS:
            return column.icontains(value, autoescape=True)
        case Op.NOT_CONTAINS:
            return not_(column.icontains(value, autoescape=True))
        case Op.IS_NULL:
            return column.is_(None)
        case Op.IS_NOT_NULL:
            return column.is_not(None)
        case Op.REGEX:
            # PostgreSQL's engine can backtrack; accept only what RE2 runs in linear time (no backreferences).
            try:
                regex.compile_pattern(value)
            except regex.RegexInvalid as e:
                raise FilterValueInvalid(f.field, str(e)) from None
            return column.regexp_match(value)
    raise FilterValueInvalid(f.field, f"operator {f.op} does not apply to text")


def _moment(f: Filter, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterValueInvalid(f.field, f"'{value}' is not an ISO-8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date(column: Column, f: Filter) -> Condition:
    if f.op in (Op.IS_NULL, Op.IS_NOT_NULL):
        return column.is_(None) if f.op is Op.IS_NULL else column.is_not(None)
    moment = _moment(f, f.value)
    comparisons: dict[Op, Callable[[], Condition]] = {
        Op.EQUALS: lambda: column == moment,
        Op.NOT_EQUALS: lambda: column != moment,
        Op.GREATER_THAN: lambda: column > moment,
        Op.GREATER_THAN_OR_EQUAL_TO: lambda: column >= moment,
        Op.LESS_THAN: lambda: column < moment,
        Op.LESS_THAN_OR_EQUAL_TO: lambda: column <= moment,
    }
    if f.op not in comparisons:
        raise FilterValueInvalid(f.field, f"operator {f.op} does not apply to dates")
    return comparisons[f.op]()


def _time_range(column: Column, f: Filter) -> Condition:
    try:
        span = parse_duration(f.value)
        since = datetime.now(UTC) - span
    except ValueError as e:
        raise FilterValueInvalid(f.field, str(e)) from None
    except OverflowError:
        raise FilterValueInvalid(f.field, f"'{f.value}' reaches before year 1") from None
    return column >= since


def _exec_labels(f: Filter) -> Condition:
    """Executions keep labels as a JSONB list of {key, value}: containment uses the GIN-friendly `@>`."""
    conditions = [ExecutionRow.labels.contains([{"key": k, "value": v}]) for k, v in f.labels]
    if f.op is Op.EQUALS or f.op is Op.IN:
        return and_(true(), *conditions)
    if f.op is Op.NOT_EQUALS or f.op is Op.NOT_IN:
        return and_(true(), *(not_(c) for c in conditions))
    if f.op is Op.CONTAINS:
        return and_(true(), *(_label_value_contains(k, v) for k, v in f.labels))
    raise FilterValueInvalid("labels", f"operator {f.op} does not apply to labels")


def _label_value_contains(key: str, value: str) -> Condition:
    """A label with this key whose value contains `value` (case-insensitive); key and value stay bound data."""
    label = func.jsonb_array_elements(ExecutionRow.labels).table_valued(column("value", JSONB)).alias("label")
    return exists(
        select(1)
        .select_from(label)
        .where(label.c.value["key"].astext == key, label.c.value["value"].astext.icontains(value, autoescape=True))
    )


def _flow_labels(f: Filter) -> Condition:
    """Flow documents keep labels as written: a map, or a list of {key, value}; both forms match."""
    conditions = [
        or_(
            FlowRevisionRow.document["labels"].contains({k: v}),
            FlowRevisionRow.document["labels"].contains([{"key": k, "value": v}]),
        )
        for k, v in f.labels
    ]
    if f.op in (Op.NOT_EQUALS, Op.NOT_IN):
        return and_(true(), *(not_(func.coalesce(c, false())) for c in conditions))
    if f.op not in (Op.EQUALS, Op.IN):
        raise FilterValueInvalid("labels", f"operator {f.op} does not apply to labels")
    return and_(true(), *conditions)


Compiler = Callable[[Filter], Condition]


def _compile(group: Group, fields: Mapping[str, Compiler]) -> Condition:
    parts = []
    for item in group.items:
        if isinstance(item, Group):
            parts.append(_compile(item, fields))
        elif item.field in fields:
            parts.append(fields[item.field](item))
    if not parts:
        return true()
    return or_(*parts) if group.any_of else and_(*parts)


def _visible(column: Column, prefixes: Sequence[str] | None) -> Condition:
    if prefixes is None:
        return true()
    if any(not p.rstrip(".") for p in prefixes):
        return true()
    return or_(false(), *(_text(column, Filter("namespace", Op.PREFIX, (p,))) for p in prefixes))


def _order(query: Select[Any], sort: Sequence[SortKey], columns: Mapping[str, Column]) -> Select[Any]:
    for key in sort:
        column = columns[key.field]
        query = query.order_by(column.desc().nulls_last() if key.descending else column.asc().nulls_last())
    return query


def _page(session: Session, query: Select[Any], search: Search) -> tuple[Sequence[Any], int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.scalars(query.offset(search.offset).limit(search.size)).all()
    return rows, total


# ---- flows --------------------------------------------------------------------------------------

_FLOW_FIELDS: dict[str, Compiler] = {
    "namespace": lambda f: _text(FlowRevisionRow.namespace, f),
    "flowId": lambda f: _text(FlowRevisionRow.flow_id, f),
    "id": lambda f: _text(FlowRevisionRow.flow_id, f),
    "q": lambda f: or_(
        FlowRevisionRow.flow_id.icontains(f.value, autoescape=True),
        FlowRevisionRow.namespace.icontains(f.value, autoescape=True),
        FlowRevisionRow.document["description"].astext.icontains(f.value, autoescape=True),
    ),
    "labels": _flow_labels,
    "updated": lambda f: _date(FlowRevisionRow.created_at, f),
}
FLOW_SORTS: dict[str, Column] = {
    "id": FlowRevisionRow.flow_id,
    "namespace": FlowRevisionRow.namespace,
    "revision": FlowRevisionRow.revision,
    "updated": FlowRevisionRow.created_at,
}


def search_flows(session: Session, tenant: str, search: Search) -> tuple[Sequence[FlowRevisionRow], int]:
    """The newest revision of each live flow matching the search, one page of it, and the total."""
    newest = (
        select(FlowRevisionRow.namespace, FlowRevisionRow.flow_id, func.max(FlowRevisionRow.revision).label("rev"))
        .where(FlowRevisionRow.tenant == tenant)
        .group_by(FlowRevisionRow.namespace, FlowRevisionRow.flow_id)
        .subquery()
    )
    query = (
        select(FlowRevisionRow)
        .join(
            newest,
            and_(
                FlowRevisionRow.namespace == newest.c.namespace,
                FlowRevisionRow.flow_id == newest.c.flow_id,
                FlowRevisionRow.revision == newest.c.rev,
            ),
        )
        .where(
            FlowRevisionRow.tenant == tenant,
            FlowRevisionRow.deleted.is_(False),
            _compile(search.where, _FLOW_FIELDS),
            _visible(FlowRevisionRow.namespace, search.visible_prefixes),
        )
    )
    query = _order(query, search.sort, FLOW_SORTS).order_by(FlowRevisionRow.namespace, FlowRevisionRow.flow_id)
    return _page(session, query, search)


def flow_revisions(session: Session, tenant: str, namespace: str, flow_id: str) -> Sequence[FlowRevisionRow]:
    """Every saved revision of a flow, oldest first (deleted ones included: they are history)."""
    return session.scalars(
        select(FlowRevisionRow)
        .where(
            FlowRevisionRow.tenant == tenant,
            FlowRevisionRow.namespace == namespace,
            FlowRevisionRow.flow_id == flow_id,
        )
        .order_by(FlowRevisionRow.revision)
    ).all()


def distinct_namespaces(session: Session, tenant: str) -> Sequence[str]:
    """Namespaces of live flows, executions and KV entries."""
    parts = [
        select(FlowRevisionRow.namespace).where(FlowRevisionRow.tenant == tenant, FlowRevisionRow.deleted.is_(False)),
        select(ExecutionRow.namespace).where(ExecutionRow.tenant == tenant),
        select(KeyValueRow.namespace).where(KeyValueRow.tenant == tenant),
    ]
    union = parts[0].union(*parts[1:]).subquery()
    return session.scalars(select(union.c.namespace).distinct().order_by(union.c.namespace)).all()


# ---- executions ---------------------------------------------------------------------------------


def _child(f: Filter) -> Condition:
    kind = f.value.upper()
    if kind == "CHILD":
        return ExecutionRow.parent_execution_id.is_not(None)
    if kind == "MAIN":
        return ExecutionRow.parent_execution_id.is_(None)
    return true()


_EXECUTION_FIELDS: dict[str, Compiler] = {
    "namespace": lambda f: _text(ExecutionRow.namespace, f),
    "flowId": lambda f: _text(ExecutionRow.flow_id, f),
    "executionId": lambda f: _text(ExecutionRow.id, f),
    "state": lambda f: _text(ExecutionRow.state, f),
    "labels": _exec_labels,
    "startDate": lambda f: _date(ExecutionRow.created_at, f),
    "endDate": lambda f: _date(ExecutionRow.ended_at, f),
    "timeRange": lambda f: _time_range(ExecutionRow.created_at, f),
    "triggerExecutionId": lambda f: _text(ExecutionRow.parent_execution_id, f),
    "childFilter": _child,
    "q": lambda f: or_(
        ExecutionRow.id.icontains(f.value, autoescape=True),
        ExecutionRow.flow_id.icontains(f.value, autoescape=True),
        ExecutionRow.namespace.icontains(f.value, autoescape=True),
    ),
    # Accepted for compatibility; every Chorus execution is a user-scope NORMAL one.
    "scope": lambda f: true(),
    "kind": lambda f: true(),
}
EXECUTION_FILTERS = frozenset(_EXECUTION_FIELDS)
EXECUTION_SORTS: dict[str, Column] = {
    "id": ExecutionRow.id,
    "namespace": ExecutionRow.namespace,
    "flowId": ExecutionRow.flow_id,
    "state.current": ExecutionRow.state,
    "state.startDate": ExecutionRow.created_at,
    "state.endDate": ExecutionRow.ended_at,
    "state.duration": func.coalesce(ExecutionRow.ended_at, func.now()) - ExecutionRow.created_at,
    "flowRevision": ExecutionRow.flow_revision,
}


def search_executions(session: Session, tenant: str, search: Search) -> tuple[Sequence[ExecutionRow], int]:
    query = select(ExecutionRow).where(
        ExecutionRow.tenant == tenant,
        _compile(search.where, _EXECUTION_FIELDS),
        _visible(ExecutionRow.namespace, search.visible_prefixes),
    )
    query = _order(query, search.sort, EXECUTION_SORTS).order_by(ExecutionRow.created_at.desc(), ExecutionRow.id)
    return _page(session, query, search)


def execution_statistics(
    session: Session, tenant: str, search: Search, unit: str
) -> Sequence[tuple[datetime, str, int, float, float, float]]:
    """Executions started in each `unit` (minute, hour, day, week, month; UTC) by state: (bucket, state, count,
    min, max and sum of their durations in seconds, running ones to now), for Kestra's daily statistics."""
    duration = func.extract("epoch", func.coalesce(ExecutionRow.ended_at, func.now()) - ExecutionRow.created_at)
    bucket = func.date_trunc(unit, func.timezone("UTC", ExecutionRow.created_at)).label("bucket")
    query = (
        select(bucket, ExecutionRow.state, func.count(), func.min(duration), func.max(duration), func.sum(duration))
        .where(
            ExecutionRow.tenant == tenant,
            _compile(search.where, _EXECUTION_FIELDS),
            _visible(ExecutionRow.namespace, search.visible_prefixes),
        )
        .group_by(bucket, ExecutionRow.state)
        .order_by(bucket)
    )
    return [(b, st, int(n), float(lo), float(hi), float(total)) for b, st, n, lo, hi, total in session.execute(query)]


# ---- logs ---------------------------------------------------------------------------------------


def _level(f: Filter) -> Condition:
    """`level` is a minimum (Kestra's `minLevel`): INFO means INFO, WARN and ERROR."""
    wanted = f.value.upper()
    if wanted == "WARNING":
        wanted = "WARN"
    if wanted not in LOG_LEVELS:
        raise FilterValueInvalid(f.field, f"'{f.value}' is not one of {', '.join(LOG_LEVELS)}")
    if f.op in (Op.EQUALS, Op.GREATER_THAN_OR_EQUAL_TO):
        return LogLineRow.level.in_(LOG_LEVELS[LOG_LEVELS.index(wanted) :])
    return _text(LogLineRow.level, Filter(f.field, f.op, tuple(v.upper() for v in f.values)))


def _attempt(f: Filter) -> Condition:
    try:
        number = int(f.value)
    except ValueError:
        raise FilterValueInvalid(f.field, f"'{f.value}' is not a whole number") from None
    # Kestra's attemptNumber is 0-based; ours (task_runs.attempt) starts at 1.
    return LogLineRow.attempt == number + 1


_LOG_FIELDS: dict[str, Compiler] = {
    "namespace": lambda f: _text(LogLineRow.namespace, f),
    "flowId": lambda f: _text(LogLineRow.flow_id, f),
    "executionId": lambda f: _text(LogLineRow.execution_id, f),
    "taskId": lambda f: _text(LogLineRow.task_id, f),
    "taskRunId": lambda f: _text(LogLineRow.task_run_id, f),
    "attempt": _attempt,
    "level": _level,
    "minLevel": _level,
    "startDate": lambda f: _date(LogLineRow.at, f),
    "endDate": lambda f: _date(LogLineRow.at, f),
    "timeRange": lambda f: _time_range(LogLineRow.at, f),
    "q": lambda f: LogLineRow.message.icontains(f.value, autoescape=True),
    "scope": lambda f: true(),
    "triggerId": lambda f: false() if f.op is Op.EQUALS else true(),
}
LOG_FILTERS = frozenset(_LOG_FIELDS)
LOG_SORTS: dict[str, Column] = {"timestamp": LogLineRow.at, "level": LogLineRow.level, "id": LogLineRow.id}


def search_logs(
    session: Session, search: Search, *, after_id: int | None = None, paged: bool = True
) -> tuple[Sequence[LogLineRow], int]:
    """Log lines matching the search, oldest first unless sorted; `after_id` serves follow streams."""
    query = select(LogLineRow).where(
        _compile(search.where, _LOG_FIELDS), _visible(LogLineRow.namespace, search.visible_prefixes)
    )
    if after_id is not None:
        query = query.where(LogLineRow.id > after_id)
    query = _order(query, search.sort, LOG_SORTS).order_by(LogLineRow.id)
    if not paged:
        rows = session.scalars(query).all()
        return rows, len(rows)
    return _page(session, query, search)


def task_runs_by_execution(session: Session, execution_ids: Sequence[str]) -> dict[str, list[TaskRunRow]]:
    """Task runs of several executions in one query (search pages), in creation order."""
    found: dict[str, list[TaskRunRow]] = {}
    if not execution_ids:
        return found
    rows = session.scalars(
        select(TaskRunRow).where(TaskRunRow.execution_id.in_(list(execution_ids))).order_by(TaskRunRow.seq)
    ).all()
    for row in rows:
        found.setdefault(row.execution_id, []).append(row)
    return found
