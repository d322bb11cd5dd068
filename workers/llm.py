"""Chat completions on any OpenAI-compatible endpoint through the openai SDK.

Provider presets give default base URLs; the retry loop is ours (the SDK's is off) so that every HTTP
attempt is visible to the ledger, a `Retry-After` is honoured up to a bound, and a longer wait becomes a
retryable task failure: long waits belong to the task's retry policy, in the database, not in a worker.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import openai

from orchestrator.core.errors import TaskFailed
from orchestrator.llm_prices import LlmSettings

#: Default base URLs of the providers Chorus knows; any other OpenAI-compatible server needs `baseUrl`.
PROVIDER_BASE_URLS: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "azure": None,  # per resource: `baseUrl` (or provider.endpoint) https://<resource>.openai.azure.com
    "mistral": "https://api.mistral.ai/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
    "deepseek": "https://api.deepseek.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
    "anthropic": "https://api.anthropic.com/v1",
}
#: Provider names as users write them (Kestra's provider class names included), lower-cased.
_ALIASES = {
    "openai": "openai",
    "azureopenai": "azure",
    "azure": "azure",
    "mistral": "mistral",
    "mistralai": "mistral",
    "gemini": "gemini",
    "googlegemini": "gemini",
    "deepseek": "deepseek",
    "groq": "groq",
    "ollama": "ollama",
    "vllm": "vllm",
    "openaicompatible": "openai",
    "anthropic": "anthropic",
}
#: Local servers accept any key, but the SDK insists on one.
_KEYLESS = {"ollama", "vllm"}
_BACKOFF_BASE_S = 0.5


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom a chat completion is sent."""

    provider: str
    base_url: str
    api_key: str = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)


def resolve_endpoint(props: Mapping[str, Any]) -> Endpoint:
    """The endpoint from rendered task properties: `provider` (a name or Kestra's provider map), then overrides."""
    raw = props.get("provider")
    spec: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {"type": raw} if raw else {}
    type_name = str(spec.get("type") or "openai").rsplit(".", 1)[-1].replace("-", "").replace("_", "").lower()
    provider = _ALIASES.get(type_name)
    if provider is None:
        raise TaskFailed(
            f"unknown LLM provider {spec.get('type')!r}; known: {', '.join(PROVIDER_BASE_URLS)}", retryable=False
        )
    base_url = props.get("baseUrl") or spec.get("baseUrl") or spec.get("endpoint") or PROVIDER_BASE_URLS[provider]
    if not base_url:
        raise TaskFailed(f"provider {provider} needs baseUrl (its resource endpoint)", retryable=False)
    base_url = str(base_url).rstrip("/")
    if provider == "azure" and not base_url.endswith("/openai/v1"):
        base_url += "/openai/v1"  # Azure's OpenAI-compatible v1 surface
    api_key = props.get("apiKey") or spec.get("apiKey") or ("unused" if provider in _KEYLESS else None)
    if not api_key:
        raise TaskFailed(f"provider {provider} needs apiKey (usually {{{{ secret('...') }}}})", retryable=False)
    headers = {"api-key": str(api_key)} if provider == "azure" else {}
    return Endpoint(provider, base_url, str(api_key), headers)


@dataclass(frozen=True)
class Attempt:
    """One HTTP exchange: the response body, or the failure it ended with."""

    response: dict[str, Any] | None
    failure: TaskFailed | None
    latency_ms: float


class ChatCallFailed(TaskFailed):
    """Raised when a chat completion failed after its in-call attempts; carries them for the ledger."""

    def __init__(self, failure: TaskFailed, attempts: list[Attempt]) -> None:
        self.attempts = attempts
        super().__init__(failure.message, retryable=failure.retryable)


def _retry_after_s(response: Any) -> float | None:
    # The SDK's own httpx fork hands us its Response type: only `.headers.get` is used.
    if response is None:
        return None
    millis = response.headers.get("retry-after-ms")
    if millis is not None:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        moment = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, (moment - datetime.now(UTC)).total_seconds()) if moment else None


def _failure(error: openai.OpenAIError, endpoint: Endpoint, model: str) -> TaskFailed:
    where = f"{endpoint.provider} ({endpoint.base_url}) model {model}"
    if isinstance(error, openai.APITimeoutError):
        return TaskFailed(f"LLM call timed out: {where}", retryable=True)
    if isinstance(error, openai.APIConnectionError):
        return TaskFailed(f"LLM endpoint unreachable: {where}: {error}", retryable=True)
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        retryable = status in (408, 409, 429) or status >= 500
        return TaskFailed(f"LLM call failed with HTTP {status}: {where}: {error.message}", retryable=retryable)
    return TaskFailed(f"LLM call failed: {where}: {type(error).__name__}: {error}", retryable=False)


class ChatClient:
    """Sends chat-completion requests to one endpoint, with bounded in-call retries."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout_s: float,
        settings: LlmSettings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._endpoint = endpoint
        self._settings = settings
        self._sleep = sleep
        self._client = openai.OpenAI(
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            default_headers=endpoint.headers or None,
            timeout=timeout_s,
            max_retries=0,
        )

    def complete(
        self, request: dict[str, Any], *, idempotency_key: str | None = None
    ) -> tuple[dict[str, Any], list[Attempt]]:
        """The response body (OpenAI's shape) and every attempt made; raises ChatCallFailed.

        `idempotency_key` goes as the `Idempotency-Key` header of every attempt (providers that honour it
        answer a repeat without billing it twice).
        """
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        attempts: list[Attempt] = []
        model = str(request.get("model"))
        for number in range(1, self._settings.max_attempts + 1):
            started = time.monotonic()
            try:
                completion = self._client.chat.completions.create(**request, extra_headers=extra)
            except openai.OpenAIError as error:
                failure = _failure(error, self._endpoint, model)
                attempts.append(Attempt(None, failure, (time.monotonic() - started) * 1000))
                if not failure.retryable or number == self._settings.max_attempts:
                    raise ChatCallFailed(failure, attempts) from error
                response = error.response if isinstance(error, openai.APIStatusError) else None
                wait = _retry_after_s(response)
                wait = _BACKOFF_BASE_S * 2 ** (number - 1) if wait is None else wait
                if wait > self._settings.max_retry_wait_s:
                    longer = TaskFailed(
                        f"{failure.message} (Retry-After {wait:g}s is over the in-call limit of "
                        f"{self._settings.max_retry_wait_s:g}s: the task's retry policy decides)",
                        retryable=True,
                    )
                    raise ChatCallFailed(longer, attempts) from error
                self._sleep(wait)
                continue
            body = completion.model_dump(mode="json", exclude_unset=True)
            attempts.append(Attempt(body, None, (time.monotonic() - started) * 1000))
            return body, attempts
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
