"""Each fault against a busy cluster: nothing lost, nothing done twice, nothing stuck, audit and states sound.

The default run has a short version (a worker killed with -9 under 20 executions; a database restart is
covered there by tests/chaos/test_database_outage.py); the full suite (`slow`: every scenario, the database
restart included, with 200 executions in flight) runs with `python -m tests.chaos` or
`pytest -m "chaos and slow"`.
"""

from __future__ import annotations

import os

import pytest

from tests.chaos.scenarios import SCENARIOS, Result, run_scenario, table

pytestmark = pytest.mark.chaos

SHORT = ("worker kill -9", "scale-down (SIGTERM sawtooth)")
FULL_EXECUTIONS = int(os.environ.get("CHORUS_CHAOS_EXECUTIONS", "200"))


def _assert_sound(result: Result) -> None:
    assert result.verdict.clean, table([result])
    assert not any(note.startswith("FAIL") for note in result.notes), table([result])
    assert result.time_to_recover_s is not None


@pytest.mark.timeout(360)  # the SIGTERM sawtooth waits for four warm shutdowns of a loaded worker
@pytest.mark.parametrize("scenario", SHORT)
def test_a_short_fault_loses_and_duplicates_nothing(scenario: str, chaos_results: list[Result]) -> None:
    result = run_scenario(scenario, 20, drain_timeout_s=60)
    chaos_results.append(result)
    _assert_sound(result)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_fault_with_200_executions_in_flight_loses_and_duplicates_nothing(
    scenario: str, chaos_results: list[Result]
) -> None:
    result = run_scenario(scenario, FULL_EXECUTIONS, drain_timeout_s=600)
    chaos_results.append(result)
    _assert_sound(result)
