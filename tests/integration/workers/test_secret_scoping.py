"""secret(): a namespace reads its own secrets; what filters make of one stays masked; stores refuse it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from orchestrator.core.errors import NotFound, TaskFailed
from orchestrator.core.states import State
from orchestrator.engine import Engine, TaskOutcome
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.triggers.wiring import build_engine
from tests.integration.workers.conftest import SetSecrets, claim
from workers.context import TaskContext
from workers.functions import EngineFunctions
from workers.runtime import run_claimed
from workers.secrets import MASK
from workers.subflow import start_subflow

PASSWORD = "s3cr3t-Passw0rd"


@pytest.fixture
def engine(worker_database: str, tmp_path: Path, secrets: SetSecrets) -> Iterator[Engine]:
    secrets_dir = tmp_path / "secrets"
    for namespace in ("team.a", "team.b"):
        (secrets_dir / namespace).mkdir(parents=True)
        (secrets_dir / namespace / "DB_PASSWORD").write_text(f"password-of-{namespace}\n")
    secrets(PW=PASSWORD, GLOBAL_TOKEN="global-token-value")
    settings = load_settings(
        database_url=worker_database, data_dir=tmp_path / "data", secrets_dir=secrets_dir, global_secrets=["ops.*"]
    )
    db = make_engine(settings.database_url, pool_size=1)
    try:
        yield build_engine(settings, make_sessionmaker(db), Celery("secret-scoping-test", set_as_current=False))
    finally:
        db.dispose()


def _run(engine: Engine, task_yaml: str, namespace: str = "team.a") -> TaskOutcome:
    return run_claimed(claim(f"id: f\nnamespace: {namespace}\ntasks:\n  - id: t\n{task_yaml}\n", "t"), engine)


def _return(expression: str) -> str:
    return f'    type: io.kestra.plugin.core.debug.Return\n    format: "{expression}"'


def test_a_namespace_reads_its_own_secret_never_another_namespaces(engine: Engine) -> None:
    own = _run(engine, _return("{{ secret('DB_PASSWORD') | length }}"))
    assert own.state is State.SUCCESS and own.outputs == {"value": str(len("password-of-team.a"))}

    other = _run(engine, _return("{{ secret('DB_PASSWORD') }}"), namespace="team.c")
    assert other.state is State.FAILED and "Cannot find secret for key 'DB_PASSWORD'" in (other.error or "")


def test_global_secrets_are_read_only_by_the_namespaces_configured_for_them(engine: Engine) -> None:
    refused = _run(engine, _return("{{ secret('GLOBAL_TOKEN') }}"))
    assert refused.state is State.FAILED and "Cannot find secret for key 'GLOBAL_TOKEN'" in (refused.error or "")

    allowed = _run(engine, _return("{{ secret('GLOBAL_TOKEN') | length }}"), namespace="ops.platform")
    assert allowed.state is State.SUCCESS and allowed.outputs == {"value": "18"}


@pytest.mark.parametrize("derive", ["reverse", "upper", "slice(1)", "lower | title"])
def test_what_a_filter_derives_from_a_secret_is_masked_in_logs_and_outputs(engine: Engine, derive: str) -> None:
    log = _run(
        engine,
        f"    type: io.kestra.plugin.core.log.Log\n    message: \"pw={{{{ secret('DB_PASSWORD') | {derive} }}}}\"",
    )
    assert log.state is State.SUCCESS, log.error
    assert [record.message for record in log.logs] == [f"pw={MASK}"]

    returned = _run(engine, _return(f"{{{{ secret('DB_PASSWORD') | {derive} }}}}"))
    assert returned.outputs == {"value": MASK}


def test_a_label_computed_from_a_secret_is_refused(engine: Engine) -> None:
    task = "    type: io.kestra.plugin.core.execution.Labels\n    labels:\n"
    outcome = _run(engine, task + "      pw: \"{{ secret('DB_PASSWORD') | reverse }}\"")
    assert outcome.state is State.FAILED and outcome.retryable is False
    assert "labels: a value computed from secret() cannot be stored" in (outcome.error or "")


def test_a_kv_value_computed_from_a_secret_is_refused_and_nothing_is_stored(engine: Engine) -> None:
    outcome = _run(
        engine,
        "    type: io.kestra.plugin.core.kv.Set\n    key: leaked\n    value: \"{{ secret('DB_PASSWORD') | upper }}\"",
    )
    assert outcome.state is State.FAILED
    assert "KV value: a value computed from secret() cannot be stored" in (outcome.error or "")
    with pytest.raises(NotFound):
        engine.kv.get("team.a", "leaked")


def test_a_kv_value_not_computed_from_a_secret_is_stored(engine: Engine) -> None:
    outcome = _run(engine, "    type: io.kestra.plugin.core.kv.Set\n    key: plain\n    value: hello")
    assert outcome.state is State.SUCCESS
    assert engine.kv.get("team.a", "plain").value == {"v": "hello"}


def test_subflow_inputs_computed_from_a_secret_are_refused(engine: Engine) -> None:
    task = (
        "    type: io.kestra.plugin.core.flow.Subflow\n    namespace: team.a\n    flowId: child\n"
        "    inputs:\n      pw: \"{{ secret('DB_PASSWORD') | slice(1) }}\""
    )
    claimed = claim(f"id: f\nnamespace: team.a\ntasks:\n  - id: t\n{task}\n", "t")
    with pytest.raises(TaskFailed, match="subflow inputs: a value computed from secret"):
        start_subflow(TaskContext(claimed, EngineFunctions(engine, claimed)), engine)
