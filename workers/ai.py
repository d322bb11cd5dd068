"""The ai pool's ChatCompletion: one model call, recorded in the ledger, within budget, replayed when re-run.

Outputs keep OpenAI's response shape (`choices[0].message.content`, `usage`), which the article's flow
reads. A re-run attempt of a task run whose call already succeeded reuses the recorded answer (same
request hash): a worker lost after the call, or a retry after a later failure, neither re-bills nor
changes the model's answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import TaskFailed
from orchestrator.engine.ledger_replay import Served
from orchestrator.engine.llm_ledger import LlmCall, LlmLedger
from workers.context import Handler, TaskContext
from workers.llm import Attempt, ChatCallFailed, ChatClient, Endpoint, resolve_endpoint
from workers.metrics import model_call_in_flight

#: camelCase task properties -> chat-completion parameters, with their JSON types.
_PARAMETERS: dict[str, tuple[str, type]] = {
    "temperature": ("temperature", float),
    "topP": ("top_p", float),
    "maxTokens": ("max_tokens", int),
    "n": ("n", int),
    "presencePenalty": ("presence_penalty", float),
    "frequencyPenalty": ("frequency_penalty", float),
    "seed": ("seed", int),
    "user": ("user", str),
}
#: Kestra's langchain4j-style message types -> OpenAI roles.
_ROLES = {"SYSTEM": "system", "USER": "user", "AI": "assistant", "ASSISTANT": "assistant", "TOOL": "tool"}


def _messages(props: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if props.get("systemMessage"):
        messages.append({"role": "system", "content": str(props["systemMessage"])})
    for i, message in enumerate(props.get("messages") or []):
        if not isinstance(message, Mapping) or "content" not in message:
            raise TaskFailed(f"messages[{i}] must be a map with role (or type) and content", retryable=False)
        role = str(message.get("role") or _ROLES.get(str(message.get("type", "USER")).upper(), "user"))
        messages.append({**{k: v for k, v in message.items() if k != "type"}, "role": role.lower()})
    if props.get("prompt") is not None:
        messages.append({"role": "user", "content": str(props["prompt"])})
    if not messages:
        raise TaskFailed("ChatCompletion needs a prompt or messages", retryable=False)
    return messages


def json_schema_of(props: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = props.get("jsonResponseSchema")
    if raw is None:
        return None
    try:
        schema = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(schema, dict):
            raise TypeError("not a JSON object")
        jsonschema.Draft202012Validator.check_schema(schema)
    except (ValueError, TypeError, jsonschema.SchemaError) as e:
        raise TaskFailed(f"jsonResponseSchema is not a valid JSON schema: {e}", retryable=False) from e
    return schema


def build_request(props: Mapping[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
    """The chat-completion request body from rendered properties."""
    provider = props.get("provider")
    model = props.get("model") or (provider.get("modelName") if isinstance(provider, Mapping) else None)
    if not model:
        raise TaskFailed("ChatCompletion needs a model (or provider.modelName)", retryable=False)
    request: dict[str, Any] = {"model": str(model), "messages": _messages(props)}
    for name, (parameter, kind) in _PARAMETERS.items():
        if props.get(name) is not None:
            try:
                request[parameter] = kind(props[name])
            except (TypeError, ValueError) as e:
                raise TaskFailed(f"{name} must be a {kind.__name__}, got {props[name]!r}", retryable=False) from e
    if props.get("stop"):
        request["stop"] = [str(s) for s in props["stop"]]
    if props.get("logitBias"):
        request["logit_bias"] = props["logitBias"]
    if schema is not None:
        request["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    elif props.get("responseFormat") is not None:
        response_format = props["responseFormat"]
        request["response_format"] = {"type": response_format} if isinstance(response_format, str) else response_format
    tools = [t for t in props.get("tools") or [] if isinstance(t, Mapping) and t.get("type") == "function"]
    tools += [{"type": "function", "function": f} for f in props.get("functions") or []]
    if tools:
        request["tools"] = tools
    if props.get("functionCall"):
        call = str(props["functionCall"])
        request["tool_choice"] = (
            call if call in ("none", "auto", "required") else {"type": "function", "function": {"name": call}}
        )
    return request


def request_hash(endpoint: Endpoint, request: Mapping[str, Any]) -> str:
    """Identity of a request for replay: provider, URL and body, never the key."""
    canonical = json.dumps(
        {"provider": endpoint.provider, "base_url": endpoint.base_url, "request": request},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


#: `budget.scope` values -> scope kinds, and how messages name them.
_SCOPES = {
    "TASK_RUN": "task_run",
    "EXECUTION": "execution",
    "EXECUTION_TREE": "tree",
    "FLOW": "flow",
    "NAMESPACE": "namespace",
}
_SCOPE_LABELS = {
    "task_run": "task run",
    "execution": "execution",
    "tree": "execution tree",
    "flow": "flow in this period",
    "namespace": "namespace in this period",
}


class BudgetExceeded(TaskFailed):
    """Raised when an LLM budget is spent: the call was not sent (or, after it, its usage crossed a cap)."""


@dataclass(frozen=True)
class Budget:
    """`budget: {maxTokens, maxCost, scope, onExceed}`: caps over this task run, or the whole execution.

    `onExceed: FAIL` (the default) fails the task run; `PAUSE` (an AIAgent) asks a person to approve the
    overrun before the next model call is sent.
    """

    max_tokens: int | None
    max_cost: float | None
    scope: str  #: task_run, execution, tree, flow, namespace (orchestrator.store.llm_budget.BudgetScope)
    pause_on_exceed: bool = False
    period_s: float | None = None  #: flow and namespace budgets: the period they cap (`period`, default P1D)

    @classmethod
    def of(cls, raw: Any) -> Budget | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise TaskFailed("budget must be a map with maxTokens and/or maxCost", retryable=False)
        scope = str(raw.get("scope", "TASK_RUN")).upper()
        if scope not in _SCOPES:
            raise TaskFailed(f"budget.scope must be one of {', '.join(_SCOPES)}, got {scope}", retryable=False)
        period_s = None
        if _SCOPES[scope] in ("flow", "namespace"):
            try:
                period_s = parse_duration(str(raw.get("period") or "P1D")).total_seconds()
            except ValueError as e:
                raise TaskFailed(f"budget.period must be an ISO-8601 duration: {e}", retryable=False) from e
            if period_s <= 0:
                raise TaskFailed("budget.period must be longer than zero", retryable=False)
        try:
            tokens = int(raw["maxTokens"]) if raw.get("maxTokens") is not None else None
            cost = float(raw["maxCost"]) if raw.get("maxCost") is not None else None
        except (TypeError, ValueError) as e:
            raise TaskFailed(f"budget values must be numbers: {e}", retryable=False) from e
        on_exceed = str(raw.get("onExceed", "FAIL")).upper()
        if on_exceed not in ("FAIL", "PAUSE"):
            raise TaskFailed(f"budget.onExceed must be FAIL or PAUSE, got {on_exceed}", retryable=False)
        return cls(tokens, cost, _SCOPES[scope], on_exceed == "PAUSE", period_s)

    @property
    def label(self) -> str:
        """How messages name the scope."""
        return _SCOPE_LABELS[self.scope]

    def reserve(self, ledger: LlmLedger, call: LlmCall, request: Mapping[str, Any], *, ttl_s: float) -> int:
        """Reserve this call's worst case before sending it; fail (not retryable) when the budget is spent.

        Recorded usage and the reservations of calls in flight count together, under a lock on the
        budget's scope: concurrent calls cannot all pass, and the overshoot is at most one call's reservation.
        """
        max_tokens = request.get("max_tokens")
        # A rough prompt size (4 characters a token): the reservation covers the prompt and the longest answer.
        prompt = len(json.dumps(request.get("messages") or [], ensure_ascii=False)) // 4
        checked = ledger.reserve(
            call,
            ledger.scope(call, self.scope, self.period_s),
            max_tokens=self.max_tokens,
            max_cost=self.max_cost,
            want_tokens_in=prompt,
            want_tokens_out=int(max_tokens) if max_tokens is not None else None,
            ttl_s=ttl_s,
        )
        if checked.reservation_id is None:
            spent = checked.spent
            scope = self.label
            in_flight = (
                f" (calls in flight hold {spent.reserved_tokens} tokens, ${spent.reserved_cost:.6f} more)"
                if spent.reserved_tokens or spent.reserved_cost
                else ""
            )
            raise BudgetExceeded(
                f"LLM budget exceeded for this {scope}: {spent.tokens} tokens (max {self.max_tokens}), "
                f"${spent.cost:.6f} (max {self.max_cost}){in_flight}",
                retryable=False,
            )
        return checked.reservation_id

    def check(self, ledger: LlmLedger, call: LlmCall, *, before: bool) -> None:
        """Fail (not retryable: spending more cannot fit) once usage has reached or passed a cap."""
        usage = ledger.scope_usage(ledger.scope(call, self.scope, self.period_s))
        self.judge(usage.tokens, usage.cost, before=before)

    def judge(self, tokens: int, cost: float, *, before: bool) -> None:
        """`check`'s verdict on a scope's usage, however it was summed."""
        cap_tokens, cap_cost = self.max_tokens, self.max_cost
        over_tokens = cap_tokens is not None and (tokens >= cap_tokens if before else tokens > cap_tokens)
        over_cost = cap_cost is not None and (cost >= cap_cost if before else cost > cap_cost)
        if (over_tokens or over_cost) and not (self.pause_on_exceed and not before):
            # With onExceed PAUSE an answer that crossed a cap is kept: the next call asks for approval first.
            raise BudgetExceeded(
                f"LLM budget exceeded for this {self.label}: {tokens} tokens (max {self.max_tokens}), "
                f"${cost:.6f} (max {self.max_cost})",
                retryable=False,
            )


def _validated(body: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The body with `choices[i].message.parsed` set; raises when the content does not match the schema."""
    for i, choice in enumerate(body.get("choices") or []):
        message = choice.get("message") or {}
        try:
            parsed = json.loads(message.get("content") or "")
            jsonschema.validate(parsed, schema)
        except ValueError as e:
            raise TaskFailed(f"structured output of choices[{i}] is not JSON: {e}", retryable=True) from e
        except jsonschema.ValidationError as e:
            raise TaskFailed(
                f"structured output of choices[{i}] does not match jsonResponseSchema: {e.message}", retryable=True
            ) from e
        message["parsed"] = parsed
    return body


def usage_of(body: Mapping[str, Any] | None) -> tuple[int, int]:
    usage = (body or {}).get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def finish_reason_of(body: Mapping[str, Any] | None) -> str | None:
    choices = (body or {}).get("choices") or []
    return str(choices[0].get("finish_reason")) if choices and choices[0].get("finish_reason") else None


def _record(ledger: LlmLedger, call: LlmCall, attempt: Attempt, error: str | None) -> float:
    tokens_in, tokens_out = usage_of(attempt.response)
    failure = error or (attempt.failure.message if attempt.failure else None)
    recorded = ledger.record(
        dataclasses.replace(
            call,
            response=attempt.response,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=attempt.latency_ms,
            finish_reason=finish_reason_of(attempt.response),
            error=failure,
        )
    )
    return recorded.cost


def client_timeout_s(ctx: TaskContext, props: Mapping[str, Any]) -> float:
    """The per-request timeout: `clientTimeout` or the settings' default, never beyond the task's `timeout`."""
    timeout_s = float(props.get("clientTimeout") or ctx.engine.settings.llm.timeout_s)
    if ctx.claimed.task.timeout is not None:
        timeout_s = min(timeout_s, ctx.claimed.task.timeout.total_seconds())
    return timeout_s


def complete_recorded(
    ctx: TaskContext,
    endpoint: Endpoint,
    request: dict[str, Any],
    *,
    budget: Budget | None,
    timeout_s: float,
    validate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], float]:
    """One model call of this task run: replayed when already answered, within budget, every attempt recorded.

    Returns the (validated) response body and the latency of the answer in milliseconds (0 when replayed).
    """
    claimed, at = ctx.claimed, ctx.claimed.coordinates
    ledger = ctx.engine.llm_ledger()
    # Non-ASCII kept as written, so a secret in the request is masked in the form it was read.
    recorded = json.loads(ctx.redact(json.dumps(request, ensure_ascii=False)))
    call = LlmCall(
        execution_id=at.execution_id, task_run_id=at.task_run_id, task_id=at.task_id, attempt=at.attempt,
        namespace=claimed.flow.namespace, flow_id=claimed.flow.id, provider=endpoint.provider, model=request["model"],
        request_hash=request_hash(endpoint, request), request=recorded,
        response=None, tokens_in=0, tokens_out=0, latency_ms=0.0, finish_reason=None, error=None,
        actor=f"worker:{claimed.owner}",
    )  # fmt: skip
    served = ctx.engine.ledger_replays().served(at, claimed.flow)
    if served is not None:
        return _from_ledger(ctx, ledger, call, served, budget=budget, validate=validate)
    recorded = ledger.replay(at.task_run_id, call.request_hash)
    if recorded is not None:
        call_id, body = recorded
        ledger.note_replay(call, call_id, body)
        ctx.log("INFO", f"reused the recorded answer of LLM call {call_id} (same request in this task run)")
        if budget is not None:
            # The same decision as when the answer first came: the usage already counts it, so the
            # after-call check; a reused answer never turns a budget overrun into a success.
            budget.check(ledger, call, before=False)
        return (validate(body) if validate is not None else body), 0.0
    settings = ctx.engine.settings.llm
    reservation = None
    if budget is not None:
        # Held while the call may still spend: every in-call attempt with its waits, and a margin.
        ttl_s = (timeout_s + settings.max_retry_wait_s) * settings.max_attempts + 60
        reservation = budget.reserve(ledger, call, request, ttl_s=ttl_s)
    try:
        result, attempts, cost = _send(ledger, call, endpoint, request, timeout_s, validate, ctx)
    finally:
        if reservation is not None:
            ledger.release(reservation)  # only once the usage is recorded: no moment counts neither
    tokens_in, tokens_out = usage_of(attempts[-1].response)
    ctx.log(
        "INFO",
        f"{call.model} via {endpoint.provider}: {tokens_in} tokens in, {tokens_out} out, ${cost:.6f}, "
        f"{attempts[-1].latency_ms:.0f} ms, {len(attempts)} attempt(s)",
    )
    if budget is not None:
        budget.check(ledger, call, before=False)
    return result, attempts[-1].latency_ms


def _from_ledger(
    ctx: TaskContext,
    ledger: LlmLedger,
    call: LlmCall,
    served: Served,
    *,
    budget: Budget | None,
    validate: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> tuple[dict[str, Any], float]:
    """A ledger replay's answer: the original's recorded answer to this very request, never a provider call.

    The original's latency goes with it, so an agent's `requestDuration` is the original's too.
    """
    answer = ctx.engine.ledger_replays().recorded_answer(served, call.request_hash)
    if answer is None:
        raise TaskFailed(
            f"replay from the ledger: execution {served.source_execution_id} recorded no successful answer to this "
            f"request in task run {served.source_task_run_id} (the request differs from the original's, or the "
            "original never got an answer); no provider was called. Replay with liveFrom to call it live.",
            retryable=False,
        )
    ledger.note_replay(call, answer.call_id, answer.body, served_from=served.source_execution_id)
    ctx.log(
        "INFO",
        f"served from the ledger: LLM call {answer.call_id} of execution {served.source_execution_id} (not sent)",
    )
    if budget is not None:
        # The verdict the original's budget gave once this answer was recorded: the same outcome, no spending.
        tokens, cost = ctx.engine.ledger_replays().usage_when_answered(
            answer, budget.scope, namespace=call.namespace, flow_id=call.flow_id, period_s=budget.period_s
        )
        budget.judge(tokens, cost, before=False)
    return (validate(answer.body) if validate is not None else answer.body), answer.latency_ms


def _send(
    ledger: LlmLedger,
    call: LlmCall,
    endpoint: Endpoint,
    request: dict[str, Any],
    timeout_s: float,
    validate: Callable[[dict[str, Any]], dict[str, Any]] | None,
    ctx: TaskContext,
) -> tuple[dict[str, Any], list[Attempt], float]:
    """Send the request and record every attempt; the (validated) body, the attempts, the answer's cost."""
    client = ChatClient(endpoint, timeout_s=timeout_s, settings=ctx.engine.settings.llm)
    # Per request, not per task run: an agent's distinct calls must not look like repeats of one another.
    key = f"{ctx.idempotency_key}-{call.request_hash[:16]}"
    try:
        with model_call_in_flight():
            body, attempts = client.complete(request, idempotency_key=key)
    except ChatCallFailed as failed:
        for attempt in failed.attempts:
            _record(ledger, call, attempt, None)
        raise
    for attempt in attempts[:-1]:
        _record(ledger, call, attempt, None)
    try:
        result = validate(body) if validate is not None else body
    except TaskFailed as invalid:
        _record(ledger, call, attempts[-1], invalid.message)  # recorded as failed: a re-run must not replay it
        raise
    return result, attempts, _record(ledger, call, attempts[-1], None)


def run_chat_completion(ctx: TaskContext) -> dict[str, Any] | None:
    props: dict[str, Any] = ctx.render(ctx.properties)
    endpoint = resolve_endpoint(props)
    schema = json_schema_of(props)
    request = build_request(props, schema)
    validate = (lambda body: _validated(body, schema)) if schema is not None else None
    budget = Budget.of(props.get("budget"))
    if budget is not None and budget.pause_on_exceed:
        # One call has nothing to continue after an approval: pausing is an agent's (its next calls).
        raise TaskFailed("budget.onExceed: PAUSE is for AIAgent; a ChatCompletion budget fails", retryable=False)
    body, _ = complete_recorded(
        ctx,
        endpoint,
        request,
        budget=budget,
        timeout_s=client_timeout_s(ctx, props),
        validate=validate,
    )
    return body


HANDLERS: dict[str, Handler] = {
    "ChatCompletion": run_chat_completion,
}
