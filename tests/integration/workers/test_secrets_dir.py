"""`secret('NAME')` in a task reads CHORUS_SECRETS_DIR (a mounted Kubernetes Secret) after the environment."""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from orchestrator.core.states import State
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.triggers.wiring import build_engine
from tests.integration.workers.conftest import claim, one_task_flow
from workers.attempts import run_claimed

FLOW = one_task_flow(
    "    type: io.kestra.plugin.core.debug.Return\n"
    "    format: \"{{ secret('MOUNTED_TOKEN') | length }} {{ secret('MOUNTED_TOKEN') }}\""
)


def test_a_task_reads_a_secret_from_the_secrets_directory_and_its_value_stays_masked(
    worker_database: str, tmp_path: Path
) -> None:
    (tmp_path / "MOUNTED_TOKEN").write_text("token-from-a-file\n")
    settings = load_settings(database_url=worker_database, data_dir=tmp_path / "data", secrets_dir=tmp_path)
    db = make_engine(settings.database_url, pool_size=1)
    try:
        engine = build_engine(settings, make_sessionmaker(db), Celery("secrets-dir-test", set_as_current=False))
        outcome = run_claimed(claim(FLOW, "t"), engine)
    finally:
        db.dispose()

    assert outcome.state is State.SUCCESS
    assert outcome.outputs == {"value": "17 ******"}  # read (17 characters, newline dropped), never shown
