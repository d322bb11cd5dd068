"""Slack incoming webhooks (left to the notification outbox) and Jira issue creation against a real Jira fake."""

from __future__ import annotations

import json
import uuid

import pytest

from orchestrator.core.errors import FlowInvalid
from orchestrator.core.parse import parse_flow
from orchestrator.core.states import State
from tests.fakes.base import FakeResponse
from tests.fakes.jira import ACCESS_TOKEN, API_TOKEN, USERNAME, JiraServer
from tests.fakes.webhook import WebhookReceiver
from tests.integration.workers.conftest import Runner, SetSecrets, one_task_flow


def _slack(url: str, more: str) -> str:
    return one_task_flow(f"    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook\n    url: {url}\n{more}")


def test_slack_message_text_is_left_to_the_outbox_as_text_and_not_sent_by_the_task(
    run_task: Runner, webhook_receiver: WebhookReceiver
) -> None:
    path = f"/services/{uuid.uuid4().hex}"
    url = webhook_receiver.script(path, FakeResponse.of_text("ok"))

    outcome = run_task(_slack(url, '    messageText: "Flow {{ flow.id }} done"'), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    [request] = outcome.outbox
    assert (request.kind, request.method, request.url) == ("SlackIncomingWebhook", "POST", url)
    assert json.loads(request.body or b"") == {"text": "Flow t done"}
    # Sent by the engine once the success is recorded (tests/integration/test_notification_outbox.py), not here.
    assert webhook_receiver.received(path) == []


def test_slack_payload_template_is_queued_as_rendered(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.url + f"/services/{uuid.uuid4().hex}"

    outcome = run_task(_slack(url, """    payload: '{"channel": "#alerts", "text": "{{ flow.namespace }}"}'"""), "t")

    [request] = outcome.outbox
    assert json.loads(request.body or b"") == {"channel": "#alerts", "text": "tests.workers"}


def test_slack_timeouts_come_from_the_tasks_options(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    options = "    options:\n      connectTimeout: PT1S\n      readTimeout: PT3S\n    messageText: hi"

    outcome = run_task(_slack(webhook_receiver.url + "/services/x", options), "t")

    [request] = outcome.outbox
    assert (request.connect_timeout_s, request.read_timeout_s) == (1.0, 3.0)


def test_slack_to_a_url_that_is_not_http_fails_without_retry(run_task: Runner) -> None:
    outcome = run_task(_slack("mailto:ops@example.com", "    messageText: hi"), "t")

    assert outcome.state is State.FAILED and outcome.retryable is False and outcome.outbox == ()
    assert outcome.error is not None and "url must be an http(s) URL" in outcome.error


@pytest.mark.parametrize(
    ("kestra_type", "kind"),
    [
        ("io.kestra.plugin.notifications.teams.TeamsIncomingWebhook", "TeamsIncomingWebhook"),
        ("io.kestra.plugin.notifications.discord.DiscordIncomingWebhook", "DiscordIncomingWebhook"),
        ("io.kestra.plugin.notifications.google.GoogleChatIncomingWebhook", "GoogleChatIncomingWebhook"),
    ],
)
def test_teams_discord_and_google_chat_payloads_are_left_to_the_outbox_as_rendered(
    run_task: Runner, webhook_receiver: WebhookReceiver, kestra_type: str, kind: str
) -> None:
    url = webhook_receiver.url + f"/hooks/{uuid.uuid4().hex}"
    payload = """    payload: '{"text": "{{ flow.id }} done"}'"""
    source = one_task_flow(f"    type: {kestra_type}\n    url: {url}\n{payload}")

    outcome = run_task(source, "t")

    assert outcome.state is State.SUCCESS, outcome.error
    [request] = outcome.outbox
    assert (request.kind, request.url, json.loads(request.body or b"")) == (kind, url, {"text": "t done"})


def test_a_teams_webhook_without_payload_is_refused_at_validation() -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(
            one_task_flow("    type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook\n    url: http://x")
        )

    assert [e.path for e in caught.value.errors] == ["tasks[0].payload"]


def test_slack_without_payload_or_text_is_refused(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    outcome = run_task(_slack(webhook_receiver.url, ""), "t")

    assert outcome.state is State.FAILED and outcome.retryable is False
    assert outcome.error is not None and "payload or messageText" in outcome.error


def _jira(auth: str, *, url_key: str = "url", description: str = "Feedback: slow app") -> str:
    return one_task_flow(
        "    type: io.kestra.plugin.notifications.jira.JiraCreate\n"
        f"    {url_key}: \"{{{{ secret('JIRA_URL') }}}}\"\n"
        "    projectKey: SUPPORT\n    issueType: Bug\n    summary: Negative feedback\n"
        f'    description: "{description}"\n    labels: [feedback]\n{auth}'
    )


_BASIC = "    username: \"{{ secret('JIRA_USERNAME') }}\"\n    password: \"{{ secret('JIRA_API_TOKEN') }}\""


def test_jira_creates_the_issue_with_basic_auth_and_outputs_its_key(
    run_task: Runner, jira_server: JiraServer, secrets: SetSecrets
) -> None:
    secrets(JIRA_URL=jira_server.url, JIRA_USERNAME=USERNAME, JIRA_API_TOKEN=API_TOKEN)
    marker = uuid.uuid4().hex

    outcome = run_task(_jira(_BASIC, description=f"Feedback: {marker}"), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    [issue] = jira_server.issues_mentioning(marker)
    assert outcome.outputs is not None and outcome.outputs["key"] == issue.key
    assert issue.auth == "basic"
    assert issue.fields["project"] == {"key": "SUPPORT"}
    assert issue.fields["issuetype"] == {"name": "Bug"}
    assert issue.fields["labels"] == ["feedback"]
    assert issue.fields["summary"] == "Negative feedback"


def test_jira_accepts_kestras_base_url_and_an_access_token(
    run_task: Runner, jira_server: JiraServer, secrets: SetSecrets
) -> None:
    secrets(JIRA_URL=jira_server.url)
    marker = uuid.uuid4().hex

    outcome = run_task(_jira(f"    accessToken: {ACCESS_TOKEN}", url_key="baseUrl", description=marker), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert jira_server.issues_mentioning(marker)[0].auth == "bearer"


def test_jira_bad_credentials_fail_without_retry_and_without_the_password(
    run_task: Runner, jira_server: JiraServer, secrets: SetSecrets
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    secrets(JIRA_URL=jira_server.url, JIRA_USERNAME=USERNAME, JIRA_API_TOKEN=wrong)

    outcome = run_task(_jira(_BASIC), "t")

    assert outcome.state is State.FAILED and outcome.retryable is False
    assert outcome.error is not None and "HTTP 401" in outcome.error and wrong not in outcome.error


def test_jira_server_errors_are_retryable(run_task: Runner, jira_server: JiraServer, secrets: SetSecrets) -> None:
    secrets(JIRA_URL=jira_server.url, JIRA_USERNAME=USERNAME, JIRA_API_TOKEN=API_TOKEN)
    jira_server.fail_project["DOWN"] = 502
    source = _jira(_BASIC).replace("projectKey: SUPPORT", "projectKey: DOWN")

    outcome = run_task(source, "t")

    assert outcome.state is State.FAILED and outcome.retryable is True


def test_jira_without_credentials_is_refused(run_task: Runner, jira_server: JiraServer, secrets: SetSecrets) -> None:
    secrets(JIRA_URL=jira_server.url)

    outcome = run_task(_jira(""), "t")

    assert outcome.state is State.FAILED and outcome.retryable is False
    assert outcome.error is not None and "accessToken" in outcome.error
