"""`python -m loadtests --quick`, end to end on two small scenarios: the harness starts its own stack,
measures both sides and writes its JSON; the invariants it checks hold (every execution SUCCESS, one
execution per accepted webhook request)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_quick_run_measures_both_sides_and_keeps_every_invariant(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtests", "--quick", "--scale", "0.25", "--reps", "1",
         "--scenarios", "throughput,webhook", "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [written] = tmp_path.glob("quick-*.json")
    document = json.loads(written.read_text())
    assert {"mode", "reps", "sizes", "machine", "started_at", "finished_at", "scenarios"} <= document.keys()
    assert set(document["scenarios"]) == {"throughput", "webhook"}
    for name, entry in document["scenarios"].items():
        assert entry["errors"] == [], name
        assert len(entry["chorus"]) == len(entry["raw"]) == 1, name
        assert {"chorus", "raw", "summary", "title"} <= entry.keys()
    throughput = document["scenarios"]["throughput"]
    assert throughput["chorus"][0]["runs_per_s"] > 0 and throughput["raw"][0]["runs_per_s"] > 0
    assert throughput["summary"]["runs_per_s"]["ratio"] > 0
    webhook = document["scenarios"]["webhook"]["chorus"][0]
    requests = document["sizes"]["webhook"]
    assert webhook["accepted"] == requests and webhook["rejected"] == 0
    assert webhook["executions_per_request"] == 1.0  # checked against the executions table by the harness
    table = (tmp_path / written.name.replace(".json", ".md")).read_text()
    assert table.startswith("| scenario | metric | Chorus | raw Celery | Chorus/raw | target |")
    assert result.stdout.strip() == table.strip()
