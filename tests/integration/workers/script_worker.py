"""A worker process for isolation tests: runs one script task as a real worker would, started with secrets in
its environment (`python -m tests.integration.workers.script_worker FLOW_FILE TASK_ID`), prints the outcome
as JSON. In-process tests cannot do this: `/proc/<pid>/environ` shows the environment a process started with.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from orchestrator.celery_app import create_celery_app
from orchestrator.hardening import forbid_inspection
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.triggers.wiring import build_engine
from tests.integration.workers.conftest import claim
from workers.attempts import run_claimed


def main(flow_file: str, task_id: str) -> int:
    forbid_inspection()  # as workers.app does at start
    settings = load_settings()
    db = make_engine(settings.database_url, pool_size=1)
    try:
        engine = build_engine(settings, make_sessionmaker(db), create_celery_app(settings))
        outcome = run_claimed(claim(Path(flow_file).read_text(), task_id), engine)
    finally:
        db.dispose()
    result = {"state": str(outcome.state), "error": outcome.error, "logs": [r.message for r in outcome.logs]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
