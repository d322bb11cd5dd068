"""Budget declarations read from a flow document, and the period bucket a FLOW or NAMESPACE budget counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.store.llm_budget import Spent
from orchestrator.store.llm_budget_status import BudgetStatus, DeclaredBudget, period_start, read_budget


def _budget(**raw: object) -> DeclaredBudget | None:
    return read_budget("ns", "f", {"id": "t", "budget": raw})


def test_a_period_budget_defaults_to_a_day_and_a_run_budget_has_no_period() -> None:
    flow = _budget(maxTokens=10, scope="flow")
    run = _budget(maxCost=0.5)

    assert flow is not None and (flow.scope, flow.kind, flow.period, flow.period_s) == ("FLOW", "flow", "P1D", 86400)
    assert run is not None and (run.scope, run.period, run.max_cost, run.on_exceed) == ("TASK_RUN", None, 0.5, "FAIL")


@pytest.mark.parametrize(
    "raw",
    [
        {"maxTokens": 10, "scope": "GALAXY"},
        {"maxTokens": "{{ inputs.cap }}"},
        {"maxTokens": 1, "scope": "FLOW", "period": "PT0S"},
    ],
)
def test_a_budget_that_cannot_be_read_is_left_out(raw: dict[str, object]) -> None:
    assert _budget(**raw) is None


def test_periods_are_aligned_on_the_epoch_as_the_ledger_aligns_them() -> None:
    now = datetime(2026, 12, 7, 21, 44, 8, tzinfo=UTC)

    assert period_start(now, 86400) == datetime(2026, 12, 7, tzinfo=UTC)
    assert period_start(now, 3600) == datetime(2026, 12, 7, 21, tzinfo=UTC)


def test_remaining_is_the_cap_less_used_and_reserved_and_none_without_a_cap() -> None:
    budget = _budget(maxTokens=100)
    assert budget is not None

    status = BudgetStatus(budget, "tr", None, Spent(tokens=40, cost=0.1, reserved_tokens=70, reserved_cost=0.0))

    assert status.remaining_tokens == -10  # the overshoot the check allows: at most one call's reservation
    assert status.remaining_cost is None
