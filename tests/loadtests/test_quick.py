"""`python -m loadtests --quick`, end to end on two small scenarios: the harness starts its own stack,
measures Chorus and every baseline a scenario supports (throughput: raw, lean and durable; webhook: raw)
and writes its JSON; the invariants it checks hold (every execution SUCCESS, one execution per accepted
webhook request)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a load run (~45 s): `pytest -m slow`, or `python -m loadtests --quick`
def test_a_quick_run_measures_both_sides_and_keeps_every_invariant(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtests", "--quick", "--scale", "0.25", "--reps", "1",
         "--scenarios", "throughput,webhook", "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [written] = tmp_path.glob("quick-*.json")
    document = json.loads(written.read_text())
    assert {"mode", "reps", "sizes", "machine", "started_at", "finished_at", "scenarios"} <= document.keys()
    assert set(document["scenarios"]) == {"throughput", "webhook"}
    assert document["baselines"] == ["raw", "lean", "durable"]
    for name, entry in document["scenarios"].items():
        assert entry["errors"] == [], name
        assert len(entry["chorus"]) == len(entry["raw"]) == 1, name
        assert {"chorus", "raw", "summary", "title", "baselines"} <= entry.keys()
    throughput = document["scenarios"]["throughput"]
    assert throughput["baselines"] == ["raw", "lean", "durable"]
    assert all(throughput[side][0]["runs_per_s"] > 0 for side in ("chorus", "raw", "lean", "durable"))
    runs = throughput["summary"]["runs_per_s"]
    # The first shape's `ratio` is still Chorus/raw; each baseline's ratio is beside it.
    assert runs["baseline"] == "raw" and runs["ratio"] == runs["ratios"]["raw"] > 0
    assert runs["ratios"]["lean"] > 0 and runs["ratios"]["durable"] > 0
    assert runs["lean"]["n"] == runs["durable"]["n"] == 1
    assert document["scenarios"]["webhook"]["baselines"] == ["raw"]  # the HTTP twin exists for raw only
    webhook = document["scenarios"]["webhook"]["chorus"][0]
    requests = document["sizes"]["webhook"]
    assert webhook["accepted"] == requests and webhook["rejected"] == 0
    assert webhook["executions_per_request"] == 1.0  # checked against the executions table by the harness
    table = (tmp_path / written.name.replace(".json", ".md")).read_text()
    baselines = "| raw Celery | Chorus/raw | lean | Chorus/lean | durable | Chorus/durable |"
    assert table.startswith(f"| scenario | metric | Chorus {baselines} target |")
    assert result.stdout.strip() == table.strip()
