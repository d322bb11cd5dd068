"""GenAI semantic conventions: the `chat` and `execute_tool` spans and the `gen_ai.client.*` metrics of a call.

Attribute names and values follow OpenTelemetry's GenAI conventions (gen_ai.operation.name, gen_ai.provider.name,
gen_ai.request.model, gen_ai.usage.*, gen_ai.tool.*); Chorus's own attributes are under `chorus.*`. The spans
hang below their task run's span (`tracing.task_run_span_id`), in the execution's trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.trace import SpanKind

from orchestrator.observability import tracing
from orchestrator.observability.metrics import record_gen_ai_call

#: Chorus's provider names -> the conventions' `gen_ai.provider.name` values (others pass through as written).
PROVIDER_NAMES = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "gemini": "gcp.gemini",
    "deepseek": "deepseek",
    "groq": "groq",
    "anthropic": "anthropic",
}


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


#: Request parameters the conventions name, from the chat-completion body.
_REQUEST_ATTRIBUTES = {
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}


def chat_call(
    *,
    execution_id: str,
    task_run_id: str,
    attempt: int,
    provider: str,
    request: Mapping[str, Any],
    response: Mapping[str, Any] | None,
    tokens_in: int,
    tokens_out: int,
    cost_usd: float,
    latency_ms: float,
    finish_reason: str | None,
    error: str | None,
    audit_hash: str | None,
    call_id: int | None,
    replayed: bool = False,
    at: datetime | None = None,
) -> None:
    """One model call (an HTTP attempt, or an answer reused from the ledger): its span and its metrics.

    A replayed answer gets a span (the run did read it) but no metrics: no provider was called.
    """
    end = at or datetime.now(UTC)
    model = str(request.get("model") or "")
    response_model = str((response or {}).get("model") or "") or None
    provider_attr = provider_name(provider)
    error_type = None if error is None else _error_type(error)
    attributes: dict[str, tracing.AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_attr,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": tokens_in,
        "gen_ai.usage.output_tokens": tokens_out,
        "chorus.llm.cost_usd": cost_usd,
        "chorus.llm.replayed": replayed,
        "chorus.task_run.id": task_run_id,
        "chorus.task_run.attempt": attempt,
    }
    for parameter, name in _REQUEST_ATTRIBUTES.items():
        value = request.get(parameter)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[name] = value
    if response_model:
        attributes["gen_ai.response.model"] = response_model
    if (response or {}).get("id"):
        attributes["gen_ai.response.id"] = str((response or {})["id"])
    if finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [finish_reason]
    if error_type is not None:
        attributes["error.type"] = error_type
    if audit_hash:
        attributes[tracing.AUDIT_HASH] = audit_hash
    if call_id is not None:
        attributes["chorus.llm.call_id"] = call_id
    tracing.emit(
        tracing.SpanRecord(
            name=f"chat {model}",
            execution_id=execution_id,
            start=end - timedelta(milliseconds=latency_ms),
            end=end,
            attributes=attributes,
            parent_span_id=tracing.task_run_span_id(task_run_id),
            kind=SpanKind.CLIENT,
            error=error,
        )
    )
    if not replayed:
        record_gen_ai_call(
            "chat",
            provider_attr,
            model,
            response_model or model,
            input_tokens=tokens_in if error is None else None,
            output_tokens=tokens_out if error is None else None,
            cost_usd=cost_usd,
            duration_s=latency_ms / 1000,
            error_type=error_type,
        )


def tool_call(
    *,
    execution_id: str,
    agent_task_run_id: str,
    tool_name: str,
    call_id: str,
    tool_type: str,
    start: datetime,
    end: datetime,
    tool_task_run_id: str | None,
    audit_hash: str | None,
    error: str | None,
) -> None:
    """One agent tool call: an `execute_tool` span below the agent's task run, linked to the tool's task run."""
    attributes: dict[str, tracing.AttributeValue] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool_name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": tool_type,
    }
    if tool_task_run_id is not None:
        attributes["chorus.tool.task_run.id"] = tool_task_run_id
    if audit_hash:
        attributes[tracing.AUDIT_HASH] = audit_hash
    if error is not None:
        attributes["error.type"] = _error_type(error)
    tracing.emit(
        tracing.SpanRecord(
            name=f"execute_tool {tool_name}",
            execution_id=execution_id,
            start=start,
            end=end,
            attributes=attributes,
            span_id=tracing.tool_call_span_id(agent_task_run_id, call_id),
            parent_span_id=tracing.task_run_span_id(agent_task_run_id),
            error=error,
            # The tool's own task run is the agent's child too (its span id is derived the same way everywhere).
            links=((execution_id, tracing.task_run_span_id(tool_task_run_id)),) if tool_task_run_id else (),
        )
    )


def _error_type(error: str) -> str:
    """A low-cardinality error class for `error.type`: the message's lead (e.g. "LLM call failed with HTTP 429")."""
    return error.split(":", 1)[0][:80]
