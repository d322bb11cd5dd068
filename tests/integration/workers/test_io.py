"""http.Request and http.Download against a real HTTP server: outputs as Kestra's, failures retryable or not."""

from __future__ import annotations

import uuid

from orchestrator.core.states import State
from orchestrator.engine import Engine
from tests.fakes.base import FakeResponse
from tests.fakes.webhook import WebhookReceiver
from tests.integration.workers.conftest import Runner, SetSecrets, one_task_flow
from workers.storage import local_path


def _request(uri: str, more: str = "") -> str:
    return one_task_flow(f"    type: io.kestra.plugin.core.http.Request\n    uri: {uri}\n{more}")


def _path() -> str:
    return f"/api/{uuid.uuid4().hex}"


def test_a_get_outputs_code_headers_and_the_body_as_text(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.script(_path(), FakeResponse.of_json({"a": 1}, headers={"X-Trace": "t1"}))

    outcome = run_task(_request(url), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs is not None
    assert outcome.outputs["code"] == 200
    assert outcome.outputs["body"] == '{"a": 1}'
    assert outcome.outputs["headers"]["x-trace"] == ["t1"]
    assert outcome.outputs["uri"] == url


def test_a_map_body_is_sent_as_json(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    path = _path()
    url = webhook_receiver.script(path, FakeResponse.of_text("ok"))

    run_task(_request(url, "    method: POST\n    body:\n      name: Ada\n      n: 2"), "t")

    received = webhook_receiver.received(path)[0]
    assert received.method == "POST"
    assert received.json() == {"name": "Ada", "n": 2}
    assert received.headers["content-type"] == "application/json"


def test_form_data_is_url_encoded_and_rendered(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    path = _path()
    url = webhook_receiver.script(path, FakeResponse.of_text("ok"))

    run_task(_request(url, '    method: POST\n    formData:\n      user: "{{ flow.id | upper }}"'), "t")

    received = webhook_receiver.received(path)[0]
    assert received.text == "user=T"
    assert received.headers["content-type"] == "application/x-www-form-urlencoded"


def test_basic_and_bearer_auth_come_from_options(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    path = _path()
    url = webhook_receiver.script(path, FakeResponse.of_text("ok"))

    run_task(
        _request(url, "    options:\n      auth:\n        type: BASIC\n        username: u\n        password: p"), "t"
    )
    run_task(_request(url, "    options:\n      auth:\n        type: BEARER\n        token: tok"), "t")

    first, second = webhook_receiver.received(path)
    assert first.headers["authorization"] == "Basic dTpw"
    assert second.headers["authorization"] == "Bearer tok"


def test_a_server_error_fails_the_attempt_as_retryable(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.script(_path(), FakeResponse.of_text("boom", 503))

    outcome = run_task(_request(url), "t")

    assert outcome.state is State.FAILED
    assert outcome.retryable is True
    assert outcome.error is not None and "HTTP 503" in outcome.error and "boom" in outcome.error


def test_a_429_is_retryable(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.script(_path(), FakeResponse.of_text("slow down", 429, {"Retry-After": "1"}))

    outcome = run_task(_request(url), "t")

    assert outcome.state is State.FAILED and outcome.retryable is True


def test_a_client_error_is_not_retryable(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.script(_path(), FakeResponse.of_text("nope", 404))

    outcome = run_task(_request(url), "t")

    assert outcome.state is State.FAILED
    assert outcome.retryable is False


def test_allow_failed_keeps_an_error_response_as_outputs(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.script(_path(), FakeResponse.of_text("boom", 500))

    outcome = run_task(_request(url, "    options:\n      allowFailed: true"), "t")

    assert outcome.state is State.SUCCESS
    assert outcome.outputs is not None and outcome.outputs["code"] == 500


def test_a_read_timeout_fails_as_retryable(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.script(_path(), FakeResponse(200, b"late", delay_s=2))

    outcome = run_task(_request(url, "    options:\n      readTimeout: PT0.3S"), "t")

    assert outcome.state is State.FAILED
    assert outcome.retryable is True
    assert outcome.error is not None and "ReadTimeout" in outcome.error


def test_a_refused_connection_is_retryable(run_task: Runner) -> None:
    outcome = run_task(_request("http://127.0.0.1:9/nothing"), "t")

    assert outcome.state is State.FAILED and outcome.retryable is True
    assert outcome.error is not None and "ConnectError" in outcome.error


def test_a_secret_in_the_url_is_masked_in_the_failure(
    run_task: Runner, webhook_receiver: WebhookReceiver, secrets: SetSecrets
) -> None:
    token = uuid.uuid4().hex
    secrets(HOOK_TOKEN=token)
    webhook_receiver.script(f"/hooks/{token}", FakeResponse.of_text("gone", 410))

    outcome = run_task(_request(webhook_receiver.url + "/hooks/{{ secret('HOOK_TOKEN') }}"), "t")

    assert outcome.state is State.FAILED
    assert outcome.error is not None and token not in outcome.error and "/hooks/******" in outcome.error
    assert all(token not in record.message for record in outcome.logs)


def test_a_missing_secret_fails_with_its_name(run_task: Runner) -> None:
    outcome = run_task(_request("http://127.0.0.1:9/{{ secret('NOT_THERE_AT_ALL') }}"), "t")

    assert outcome.state is State.FAILED
    assert outcome.error is not None and "NOT_THERE_AT_ALL" in outcome.error


def test_a_download_writes_the_body_to_storage(
    run_task: Runner, webhook_receiver: WebhookReceiver, worker_engine: Engine
) -> None:
    url = webhook_receiver.script(_path() + "/report.csv", FakeResponse.of_text("a,b\n1,2\n"))
    source = one_task_flow(f"    type: io.kestra.plugin.core.http.Download\n    uri: {url}")

    outcome = run_task(source, "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs is not None
    uri = outcome.outputs["uri"]
    assert uri.startswith("kestra:///tests/workers/t/executions/") and uri.endswith("/report.csv")
    assert outcome.outputs["length"] == 8
    assert local_path(worker_engine.settings.data_dir, uri).read_text() == "a,b\n1,2\n"


def test_an_empty_download_fails(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.script(_path(), FakeResponse(200, b""))
    source = one_task_flow(f"    type: io.kestra.plugin.core.http.Download\n    uri: {url}")

    outcome = run_task(source, "t")

    assert outcome.state is State.FAILED
    assert outcome.error is not None and "empty response" in outcome.error
