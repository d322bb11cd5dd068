"""The io pool's notifications: Slack, Teams, Discord and Google Chat incoming webhooks (through the notification
outbox), and Jira issue creation (sent by the task itself: its outputs are the created issue's key)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from orchestrator.core.errors import TaskFailed
from orchestrator.engine import OutboundRequest
from workers.context import Handler, TaskContext
from workers.httpclient import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    BearerAuth,
    HttpOptions,
    check_status,
    exchange,
    http_options,
)


def _options(ctx: TaskContext, props: dict[str, Any]) -> HttpOptions:
    return http_options(props.get("options"), task_timeout=ctx.claimed.task.timeout)


def queue_json(ctx: TaskContext, url: str, payload: Any, options: HttpOptions, kind: str) -> None:
    """Leave a JSON POST to the notification outbox (a text is sent as it is: Kestra payloads are often rendered
    JSON templates). It is sent once the task run's success commits, with its Idempotency-Key (outbox docs:
    orchestrator/engine/notification_outbox.py); a URL that could never be sent fails the task now."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TaskFailed(f"{kind}: url must be an http(s) URL, got {url!r}", retryable=False)
    content = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    ctx.notify(
        OutboundRequest(
            kind=kind,
            method="POST",
            url=url,
            headers={"Content-Type": "application/json"},
            body=content,
            connect_timeout_s=float(options.timeout.connect or DEFAULT_CONNECT_TIMEOUT_S),
            read_timeout_s=float(options.timeout.read or DEFAULT_READ_TIMEOUT_S),
        )
    )
    ctx.log("INFO", f"{kind}: queued for delivery to {parts.scheme}://{parts.hostname} (key {ctx.idempotency_key})")


def run_slack_webhook(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra's SlackIncomingWebhook: `payload` (a JSON text or map) or `messageText`."""
    props: dict[str, Any] = ctx.render(ctx.properties)
    payload = props.get("payload")
    if payload is None:
        if props.get("messageText") is None:
            raise TaskFailed("SlackIncomingWebhook needs payload or messageText", retryable=False)
        payload = {"text": str(props["messageText"])}
    queue_json(ctx, str(props["url"]), payload, _options(ctx, props), "SlackIncomingWebhook")
    return None


def run_incoming_webhook(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra's Teams, Discord and Google Chat incoming webhooks: `url` and a JSON `payload` (text or map)."""
    props: dict[str, Any] = ctx.render(ctx.properties)
    kind = ctx.claimed.task.type
    queue_json(ctx, str(props["url"]), props.get("payload") or {}, _options(ctx, props), kind)
    return None


def _jira_fields(props: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"project": {"key": str(props["projectKey"])}, "summary": str(props["summary"])}
    if props.get("description") is not None:
        fields["description"] = str(props["description"])
    if props.get("issueTypeId") is not None:
        fields["issuetype"] = {"id": str(props["issueTypeId"])}
    else:
        fields["issuetype"] = {"name": str(props.get("issueType") or "Task")}
    if props.get("labels"):
        fields["labels"] = [str(label) for label in props["labels"]]
    if props.get("priority") is not None:
        fields["priority"] = {"name": str(props["priority"])}
    if props.get("assignee") is not None:
        fields["assignee"] = {"name": str(props["assignee"])}
    return {**fields, **(props.get("fields") or {})}


def _jira_auth(props: dict[str, Any]) -> httpx.Auth:
    if props.get("accessToken"):
        return BearerAuth(str(props["accessToken"]))
    secret = props.get("password") or props.get("apiToken")
    if props.get("username") and secret:
        return httpx.BasicAuth(str(props["username"]), str(secret))
    raise TaskFailed("JiraCreate needs username with password (or apiToken), or accessToken", retryable=False)


def run_jira_create(ctx: TaskContext) -> dict[str, Any] | None:
    """Create a Jira issue through REST v2 (`POST /rest/api/2/issue`); outputs its key, id and URL."""
    props: dict[str, Any] = ctx.render(ctx.properties)
    base_url = str(props.get("baseUrl") or props.get("url") or "").rstrip("/")
    options = dataclasses.replace(_options(ctx, props), auth=_jira_auth(props), allow_failed=False)
    result = exchange(
        "POST",
        f"{base_url}/rest/api/2/issue",
        options,
        what="JiraCreate",
        content=json.dumps({"fields": _jira_fields(props)}).encode(),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": ctx.idempotency_key,
        },
    )
    check_status(result, "JiraCreate")
    try:
        created = json.loads(result.content)
        key = str(created["key"])
    except (ValueError, KeyError, TypeError) as e:
        raise TaskFailed(f"JiraCreate: unexpected answer from {base_url}: {result.text[:200]}", retryable=False) from e
    ctx.log("INFO", f"Jira issue {key} created")
    return {"key": key, "id": str(created.get("id", "")), "url": str(created.get("self", ""))}


HANDLERS: dict[str, Handler] = {
    "SlackIncomingWebhook": run_slack_webhook,
    "TeamsIncomingWebhook": run_incoming_webhook,
    "DiscordIncomingWebhook": run_incoming_webhook,
    "GoogleChatIncomingWebhook": run_incoming_webhook,
    "JiraCreate": run_jira_create,
}
