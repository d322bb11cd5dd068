"""`python -m tests.chaos`: the full chaos suite; prints the table and writes tests/chaos/results/chaos-table.md."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

RESULTS = Path(__file__).parent / "results" / "chaos-table.md"

if __name__ == "__main__":
    os.environ.setdefault("CHORUS_CHAOS_RESULTS", str(RESULTS))
    arguments = ["-m", "chaos and slow", "-q", "-p", "no:cacheprovider", str(Path(__file__).parent)]
    sys.exit(pytest.main([*arguments, *sys.argv[1:]]))
