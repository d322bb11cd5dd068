"""The io pool's HTTP tasks: `http.Request` (response in the outputs) and `http.Download` (response to a file)."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from orchestrator.core.errors import TaskFailed
from workers.context import Handler, TaskContext
from workers.httpclient import HttpOptions, HttpResult, check_status, exchange, http_options
from workers.storage import store_file

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _request(ctx: TaskContext, what: str) -> tuple[dict[str, Any], HttpOptions, HttpResult]:
    props: dict[str, Any] = ctx.render(ctx.properties)
    uri, method = str(props["uri"]), str(props.get("method") or "GET").upper()
    options = http_options(
        props.get("options"), task_timeout=ctx.claimed.task.timeout, allow_failed=props.get("allowFailed")
    )
    headers = {str(k): str(v) for k, v in (props.get("headers") or {}).items()}
    content_type = props.get("contentType")
    if method in _UNSAFE_METHODS:
        # The same key on every attempt of this task run: a receiver that honours it applies the request once.
        headers.setdefault("Idempotency-Key", ctx.idempotency_key)
    request: dict[str, Any] = {"headers": headers}
    form, body = props.get("formData"), props.get("body")
    if form is not None:
        fields = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in form.items()}
        if str(content_type or "").startswith("multipart/form-data"):
            request["files"] = {k: (None, v) for k, v in fields.items()}
        else:
            request["data"] = fields
    elif body is not None:
        if isinstance(body, dict | list):
            request["content"] = json.dumps(body).encode()
            headers.setdefault("Content-Type", str(content_type or "application/json"))
        else:
            request["content"] = str(body).encode()
            if content_type:
                headers.setdefault("Content-Type", str(content_type))
    result = exchange(method, uri, options, what=what, **request)
    ctx.log("DEBUG", f"{method} {uri} -> {result.code}")
    return props, options, result


def run_request(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra's http.Request: fail on a non-2xx answer unless allowed; outputs uri, code, headers, body."""
    _, options, result = _request(ctx, "http.Request")
    check_status(result, "http.Request", options)
    # Kestra keeps the body as text (JSON included): flows parse it with fromJson() or jq.
    return {"uri": result.url, "code": result.code, "headers": result.headers, "body": result.text}


def _file_name(props: dict[str, Any], url: str) -> str:
    if props.get("saveAs"):
        return str(props["saveAs"])
    name = PurePosixPath(urlsplit(url).path).name
    return name or "download"


def run_download(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra's http.Download: the body goes to a file in storage; outputs its uri, code, length, headers."""
    props, options, result = _request(ctx, "http.Download")
    check_status(result, "http.Download", options)
    fail_on_empty = props.get("failOnEmptyResponse", True)
    if not result.content and fail_on_empty not in (False, "false"):
        raise TaskFailed(f"http.Download: empty response from {result.url} (failOnEmptyResponse)", retryable=True)
    uri = store_file(ctx.engine.settings.data_dir, ctx.claimed, _file_name(props, result.url), result.content)
    return {"uri": uri, "code": result.code, "length": len(result.content), "headers": result.headers}


HANDLERS: dict[str, Handler] = {
    "HttpRequest": run_request,
    "HttpDownload": run_download,
}
