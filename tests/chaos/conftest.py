"""Chaos suite plumbing: collects each scenario's result, prints the table at the end and writes it to a file.

The file is `CHORUS_CHAOS_RESULTS` when set (`python -m tests.chaos` sets it to tests/chaos/results/), else a
file in the temporary directory, so the default test run never writes into the source tree.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.chaos.cluster import FAKETIME_LIBRARY
from tests.chaos.scenarios import Result, table

_results: list[Result] = []

LEGEND = """# Chaos suite results

{date}, {cpus} CPUs (shared with other work). `executions` counts every execution of the scenario's
namespace (subflow children included). `lost`: acknowledged but absent, or ended without its side effects;
`duplicated`: a side effect completed twice by live workers, or a subflow that started two children;
`stuck`: not ended at the deadline; `wrong state`: ended otherwise than the flow must; `re-run after kill`:
side effects done again because the harness killed the worker of the first run after its script finished
(at-least-once, reported apart); `time to recover`: from the end of the fault until every execution ended.

"""


@pytest.fixture(scope="session")
def chaos_results() -> list[Result]:
    return _results


def results_path() -> Path:
    configured = os.environ.get("CHORUS_CHAOS_RESULTS")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "chorus-chaos-results.md"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The clock-skew scenario shifts process clocks with libfaketime (Debian's `libfaketime`); where it is
    missing the scenario is deselected with a notice rather than run without skew."""
    if FAKETIME_LIBRARY.exists():
        return
    needing = [item for item in items if "clock skew" in item.nodeid]
    if needing:
        config.hook.pytest_deselected(items=needing)
        items[:] = [item for item in items if item not in needing]
        print(f"\nchorus: clock-skew chaos scenario deselected: no {FAKETIME_LIBRARY} (apt-get install libfaketime)",
              file=sys.stderr)  # fmt: skip


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _results:
        return
    text = LEGEND.format(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), cpus=os.cpu_count()) + table(_results)
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    terminalreporter.write_sep("=", "chaos results")
    terminalreporter.write(text)
    terminalreporter.write_line(f"(written to {path})")
