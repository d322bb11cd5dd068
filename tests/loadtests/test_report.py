"""The load test's summary and table: a ratio per baseline, the target on the scenario's primary baseline,
a floor on Chorus's own value, and the first JSON shape kept for the scenarios that had it."""

from __future__ import annotations

import math
from typing import Any

from loadtests import report
from loadtests.scenarios import Sizes, catalogue


def _scenario(name: str) -> Any:
    [scenario] = [s for s in catalogue(Sizes.quick()) if s.name == name]
    return scenario


def _document(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "mode": "quick",
        "reps": 1,
        "sizes": {},
        "machine": {"cpus": 2},
        "started_at": "2026-12-07T00:00:00+00:00",
        "scenarios": {name: {"summary": summary, "errors": []}},
    }


def test_a_scenario_measured_on_raw_only_keeps_the_first_shape() -> None:
    fanout = _scenario("fanout")
    summary = report.scenario_summary(fanout, {"chorus": [{"wall_s": 30.0}], "raw": [{"wall_s": 10.0}]})
    wall = summary["wall_s"]
    assert wall["ratio"] == wall["ratios"]["raw"] == 3.0 and wall["baseline"] == "raw"
    assert wall["raw"]["median"] == 10.0 and "lean" not in wall and "floor" not in wall


def test_the_ratio_and_the_target_are_against_the_primary_baseline_beside_every_other() -> None:
    control1 = _scenario("control1")
    samples = {
        "chorus": [{"runs_per_s": 20.0}],
        "raw": [{"runs_per_s": 40.0}],
        "lean": [{"runs_per_s": 80.0}],
        "durable": [{"runs_per_s": 50.0}],
    }
    runs = report.scenario_summary(control1, samples)["runs_per_s"]
    assert runs["baseline"] == "durable" and runs["ratio"] == 0.4
    assert runs["ratios"] == {"raw": 0.5, "lean": 0.25, "durable": 0.4}
    row = report.markdown(_document("control1", {"runs_per_s": runs}), [control1]).splitlines()[2]
    assert "| 0.50 | 80.0/s | 0.25 | 50.0/s | **0.40** | ≥ 1.0 vs durable ❌ |" in row


def test_a_floor_is_judged_on_chorus_and_a_baseline_not_measured_shows_a_dash() -> None:
    control2 = _scenario("control2")
    samples = {"chorus": [{"executions_per_s": 160.0}], "raw": [], "durable": [{"executions_per_s": 200.0}]}
    executions = report.scenario_summary(control2, samples)["executions_per_s"]
    assert executions["floor"] == 150.0 and executions["floor_met"] is True
    assert executions["raw"]["n"] == 0 and math.isnan(executions["ratios"].get("raw", math.nan))
    row = report.markdown(_document("control2", {"executions_per_s": executions}), [control2]).splitlines()[2]
    assert "| 160/s | - | - | - | - | 200/s | **0.80** | Chorus ≥ 150/s ✅ |" in row
