"""HTTP plumbing shared by the io pool's tasks: Kestra's `options` (timeouts, auth), bounded reads, and HTTP
failures mapped to task failures that say whether a retry may help (5xx, 429 and transport errors: yes; 4xx: no).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import TaskFailed

#: Kestra's defaults: no connect timeout of its own (we take 10 s rather than hang) and a 10 s read timeout.
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 10.0
#: Kestra's default `options.maxContentLength`: 10 MB kept in a task's outputs.
DEFAULT_MAX_CONTENT_BYTES = 10 * 1024 * 1024
_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class HttpOptions:
    """Kestra's `options` of an HTTP task, rendered and typed."""

    timeout: httpx.Timeout
    auth: httpx.Auth | None
    allow_failed: bool
    allowed_codes: frozenset[int]
    follow_redirects: bool
    max_content_bytes: int


def seconds(value: Any, field: str) -> float:
    """A duration property as seconds: an ISO-8601 duration (`PT30S`) or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_duration(str(value)).total_seconds()
    except ValueError as e:
        raise TaskFailed(f"{field}: {e}", retryable=False) from e


def http_options(raw: Any, *, task_timeout: timedelta | None = None, allow_failed: Any = None) -> HttpOptions:
    """Type Kestra's rendered `options` map; the task's own `timeout` bounds the whole exchange."""
    options: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    connect = seconds(options["connectTimeout"], "options.connectTimeout") if "connectTimeout" in options else None
    read = seconds(options["readTimeout"], "options.readTimeout") if "readTimeout" in options else None
    overall = task_timeout.total_seconds() if task_timeout else None
    connect_s = min(x for x in (connect or DEFAULT_CONNECT_TIMEOUT_S, overall) if x is not None)
    read_s = min(x for x in (read or DEFAULT_READ_TIMEOUT_S, overall) if x is not None)
    codes = options.get("allowedResponseCodes") or []
    return HttpOptions(
        timeout=httpx.Timeout(read_s, connect=connect_s),
        auth=_auth(options),
        allow_failed=_flag(options.get("allowFailed", allow_failed)),
        allowed_codes=frozenset(int(c) for c in codes),
        follow_redirects=_flag(options.get("followRedirects", True)),
        max_content_bytes=int(options.get("maxContentLength") or DEFAULT_MAX_CONTENT_BYTES),
    )


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


class BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._header
        yield request


def _auth(options: Mapping[str, Any]) -> httpx.Auth | None:
    auth = options.get("auth")
    if isinstance(auth, Mapping):
        kind = str(auth.get("type", "")).upper()
        if kind == "BASIC":
            return httpx.BasicAuth(str(auth.get("username") or ""), str(auth.get("password") or ""))
        if kind == "BEARER":
            return BearerAuth(str(auth.get("token") or ""))
        raise TaskFailed(f"options.auth.type must be BASIC or BEARER, got {auth.get('type')!r}", retryable=False)
    if options.get("basicAuthUser") is not None:  # Kestra's older spelling
        return httpx.BasicAuth(str(options["basicAuthUser"]), str(options.get("basicAuthPassword") or ""))
    return None


@dataclass(frozen=True)
class HttpResult:
    """A response read in full (up to the size bound)."""

    url: str
    code: int
    headers: dict[str, list[str]]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


def exchange(method: str, url: str, options: HttpOptions, *, what: str, **request: Any) -> HttpResult:
    """Send one request and read its response, mapping transport problems to task failures."""
    try:
        with (
            httpx.Client(
                timeout=options.timeout, auth=options.auth, follow_redirects=options.follow_redirects
            ) as client,
            client.stream(method, url, **request) as response,
        ):
            content = _read_bounded(response, options.max_content_bytes, what)
            headers: dict[str, list[str]] = {}
            for name, value in response.headers.multi_items():
                headers.setdefault(name, []).append(value)
            return HttpResult(str(response.url), response.status_code, headers, content)
    except httpx.TimeoutException as e:
        raise TaskFailed(f"{what}: {type(e).__name__} after {_timeout_text(options)} ({url})", retryable=True) from e
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
        raise TaskFailed(f"{what}: invalid URL {url!r}: {e}", retryable=False) from e
    except httpx.TransportError as e:
        raise TaskFailed(f"{what}: {type(e).__name__}: {e} ({url})", retryable=True) from e


def _timeout_text(options: HttpOptions) -> str:
    return f"connect {options.timeout.connect:g}s / read {options.timeout.read:g}s"


def _read_bounded(response: httpx.Response, limit: int, what: str) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise TaskFailed(f"{what}: response larger than {limit} bytes (options.maxContentLength)", retryable=False)
        chunks.append(chunk)
    return b"".join(chunks)


def is_retryable_status(code: int) -> bool:
    """Whether repeating the same request may succeed: throttling and server-side failures."""
    return code == 429 or code >= 500


def check_status(result: HttpResult, what: str, options: HttpOptions | None = None) -> None:
    """Raise the task failure for a non-2xx response unless the options accept it."""
    if result.ok or (options is not None and (options.allow_failed or result.code in options.allowed_codes)):
        return
    excerpt = result.text[:_EXCERPT_CHARS].strip()
    raise TaskFailed(
        f"{what}: HTTP {result.code} from {result.url}" + (f": {excerpt}" if excerpt else ""),
        retryable=is_retryable_status(result.code),
    )
