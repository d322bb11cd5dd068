"""Provider presets: which base URL and key a ChatCompletion's properties resolve to."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import TaskFailed
from workers.llm import resolve_endpoint


@pytest.mark.parametrize(
    ("provider", "base_url"),
    [
        ("io.kestra.plugin.ai.provider.OpenAI", "https://api.openai.com/v1"),
        ("io.kestra.plugin.ai.provider.MistralAI", "https://api.mistral.ai/v1"),
        ("io.kestra.plugin.ai.provider.GoogleGemini", "https://generativelanguage.googleapis.com/v1beta/openai"),
        ("DeepSeek", "https://api.deepseek.com/v1"),
        ("groq", "https://api.groq.com/openai/v1"),
        ("anthropic", "https://api.anthropic.com/v1"),
    ],
)
def test_a_provider_preset_supplies_its_base_url(provider: str, base_url: str) -> None:
    endpoint = resolve_endpoint({"provider": {"type": provider}, "apiKey": "k"})
    assert endpoint.base_url == base_url


def test_without_a_provider_it_is_openai_and_base_url_overrides_the_preset() -> None:
    endpoint = resolve_endpoint({"apiKey": "k", "baseUrl": "http://127.0.0.1:9/v1/"})
    assert (endpoint.provider, endpoint.base_url) == ("openai", "http://127.0.0.1:9/v1")


def test_local_servers_need_no_key() -> None:
    endpoint = resolve_endpoint({"provider": "ollama"})
    assert endpoint.base_url == "http://localhost:11434/v1" and endpoint.api_key


def test_azure_needs_its_resource_endpoint_and_sends_the_key_as_api_key() -> None:
    with pytest.raises(TaskFailed, match="needs baseUrl"):
        resolve_endpoint({"provider": "AzureOpenAI", "apiKey": "k"})
    endpoint = resolve_endpoint(
        {"provider": {"type": "AzureOpenAI", "endpoint": "https://r.openai.azure.com"}, "apiKey": "k"}
    )
    assert endpoint.base_url == "https://r.openai.azure.com/openai/v1"
    assert endpoint.headers == {"api-key": "k"}


def test_a_missing_key_and_an_unknown_provider_are_refused_without_retry() -> None:
    with pytest.raises(TaskFailed, match="needs apiKey") as missing:
        resolve_endpoint({"provider": "openai"})
    with pytest.raises(TaskFailed, match="unknown LLM provider") as unknown:
        resolve_endpoint({"provider": "skynet", "apiKey": "k"})
    assert missing.value.retryable is False and unknown.value.retryable is False


def test_the_key_is_not_in_the_endpoints_repr() -> None:
    assert "secret-key" not in repr(resolve_endpoint({"apiKey": "secret-key"}))
