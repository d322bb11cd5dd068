"""AIAgent: a model that calls tools (tasks, flows, MCP servers) until it answers; resumable and approvable.

The loop runs in the agent's own worker. Every model call goes through `complete_recorded` (ledger,
budget, replay). Task and flow tools run as child task runs of the agent (iteration = the call's
number): a task tool runs here, claimed and finished through the engine like a WorkingDirectory
child; a flow tool starts a subflow and the agent waits for its task run to end. After each model
answer and each tool result the conversation is saved (`AgentJournal`); a worker lost mid-agent is
replaced by the sweeper's re-dispatch, whose claim takes the attempt over and resumes from the last
saved turn (a model request already answered is replayed from the ledger, not re-billed).

A tool with `requireApproval: true` pauses the task run with the proposed call in its outputs; the
resume operation records the approver's decision, and the re-claimed agent runs the call (approved)
or tells the model it was rejected.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import jsonschema

from orchestrator.core import agent as rules
from orchestrator.core.errors import TaskFailed
from orchestrator.core.flow import TaskSpec
from orchestrator.core.plan import Run
from orchestrator.core.states import State
from orchestrator.core.tasktypes import CATALOGUE
from orchestrator.engine import ClaimedTaskRun, Engine, TaskRunCoordinates
from orchestrator.engine.agent_journal import AWAITING_APPROVAL, AgentJournal
from orchestrator.engine.agent_memory import DEFAULT_MEMORY_ID, AgentMemory, MemoryInvalid, MemorySpec
from orchestrator.engine.compiler import to_canvas
from orchestrator.observability import gen_ai
from orchestrator.observability.tracing import tracing_on
from workers.ai import (
    Budget,
    BudgetExceeded,
    build_request,
    client_timeout_s,
    complete_recorded,
    json_schema_of,
    usage_of,
)
from workers.context import TaskContext
from workers.ledger_tools import served_tool_outcome
from workers.llm import resolve_endpoint
from workers.mcp_tools import ACTIVE_SESSIONS, McpServer, McpSessions, McpTool, list_tools

_DEFAULT_MAX_ITERATIONS = 10
_POLL_S = 0.2
#: Properties that shape the model request (the rest are the agent's own).
_REQUEST_PROPERTIES = (
    "model", "provider", "temperature", "topP", "maxTokens", "n", "presencePenalty", "frequencyPenalty",
    "seed", "user", "stop", "logitBias", "responseFormat",
)  # fmt: skip
#: Results that tell the model its call did not run (unknown tool, arguments refused, rejected by a person).
_REFUSED = ("ERROR:", "REJECTED:")
_TASK_TOOL_DESCRIPTION = "This tool runs a Kestra task. The task responds with its outputs, a map of key/value pairs."


class AgentPaused(Exception):
    """Raised when the agent paused its task run for an approval: the worker reports nothing more."""


class AgentTakenOver(Exception):
    """Raised when another worker took the task run over (or it ended): this worker stops quietly."""


@dataclass(frozen=True)
class Tool:
    """One function the model may call."""

    name: str
    kind: str  #: task, flow, mcp-stdio, mcp-http
    description: str
    parameters: dict[str, Any]
    require_approval: bool
    task: TaskSpec | None = None  #: what runs each call: the tool task, a flow's Subflow, or an McpToolCall

    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


#: The conversation key under which an attempt keeps what its MCP servers listed (by tool entry index): a ledger
#: replay of it lists the same tools without starting them.
MCP_LISTINGS = "mcpListings"


def collect_tools(
    ctx: TaskContext, listed_before: Mapping[str, Any] | None = None
) -> tuple[dict[str, Tool], dict[str, list[dict[str, Any]]]]:
    """The agent's tools by function name: its task and flow tools, and what its MCP servers list; and those
    listings by tool entry index. A server whose listing is in `listed_before` is not asked (nor started)."""
    task = ctx.claimed.task
    by_id = {t.id: t for t in task.tools}
    tools: dict[str, Tool] = {}
    listings: dict[str, list[dict[str, Any]]] = {}
    for index, raw in enumerate(ctx.properties.get("tools") or []):
        # Tool tasks render when they run (with the call's arguments); the entry's own fields render now.
        entry = {k: (v if k == "tasks" else ctx.render(v)) for k, v in raw.items()}
        kind = rules.tool_kind(entry.get("type"))
        approval = _flag(entry.get("requireApproval"))
        if kind == "task":
            for raw_task in entry.get("tasks") or []:
                spec = by_id[str(raw_task["id"])]
                parameters = entry.get("parameters") or rules.placeholder_parameters(spec.properties)
                description = entry.get("description") or spec.description or _TASK_TOOL_DESCRIPTION
                name = rules.task_tool_name(spec.id)
                tools[name] = Tool(name, kind, str(description), dict(parameters), approval, task=spec)
        elif kind == "flow":
            spec = by_id[rules.flow_tool_task_id(task.id, index)]
            name = rules.flow_tool_name(str(entry["namespace"]), str(entry["flowId"]))
            description = entry.get("description") or f"Runs the flow {entry['namespace']}.{entry['flowId']}"
            parameters = {
                "type": "object",
                "properties": {"inputs": {"type": "object", "description": "the flow's input values by input id"}},
            }
            tools[name] = Tool(name, kind, str(description), parameters, approval, task=spec)
        elif kind is not None:
            spec = by_id[rules.mcp_tool_task_id(task.id, index)]
            recorded = (listed_before or {}).get(str(index))
            if isinstance(recorded, list):
                listing = [McpTool(str(t["name"]), str(t["description"]), dict(t["input_schema"])) for t in recorded]
            else:
                listing = list_tools(McpServer.of(kind, entry, ctx.engine.settings))
            listings[str(index)] = [dataclasses.asdict(listed) for listed in listing]
            for listed in listing:
                name = rules.function_name(listed.name)
                tools[name] = Tool(name, kind, listed.description, listed.input_schema, approval, task=spec)
    return tools, listings


def _schema(props: Mapping[str, Any]) -> dict[str, Any] | None:
    """`jsonResponseSchema`, or Kestra's `configuration.responseFormat.jsonSchema`."""
    configuration = props.get("configuration") or {}
    response_format = configuration.get("responseFormat") if isinstance(configuration, Mapping) else None
    if (
        props.get("jsonResponseSchema") is None
        and isinstance(response_format, Mapping)
        and response_format.get("jsonSchema") is not None
    ):
        return json_schema_of({"jsonResponseSchema": response_format["jsonSchema"]})
    return json_schema_of(props)


class Agent:
    """One attempt of one AIAgent task run."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.claimed = ctx.claimed
        self.at = ctx.claimed.coordinates
        self.engine = ctx.engine
        self.journal = AgentJournal(self.engine.sessions)
        self.props: dict[str, Any] = ctx.render({k: v for k, v in ctx.properties.items() if k != "tools"})
        self.endpoint = resolve_endpoint(self.props)
        self.schema = _schema(self.props)
        self.budget = Budget.of(self.props.get("budget"))
        self.limits = rules.AgentLimits(
            int(self.props.get("maxIterations") or _DEFAULT_MAX_ITERATIONS),
            int(self.props["maxSequentialToolsInvocations"])
            if self.props.get("maxSequentialToolsInvocations") is not None
            else None,
        )
        self.memory = _memory_spec(ctx, self.props.get("memory"))
        self.memory_id = self.memory.memory_id if self.memory is not None else None
        self.tools, self.mcp_listings = collect_tools(ctx, self._served_listings())
        self.state: dict[str, Any] = {}
        self.approvals: dict[str, Any] = {}

    def _served_listings(self) -> Mapping[str, Any] | None:
        """What the original's MCP servers listed, when this agent is a ledger replay's (not live): its model
        answers and its tool calls are all served, so no live call can happen and its servers are not started.
        None otherwise, or when the original kept no listing (recorded before listings were kept)."""
        served = self.engine.ledger_replays().served(self.at, self.claimed.flow)
        if served is None:
            return None
        record = self.journal.load(served.source_task_run_id)
        listings = record.conversation.get(MCP_LISTINGS) if record is not None else None
        return listings if isinstance(listings, Mapping) else None

    # ---- the loop -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self._load()
        while True:
            while self.state["pending"]:
                self._run_pending(self.state["pending"][0])
            body = self._ask_model()
            message = (body.get("choices") or [{}])[0].get("message") or {}
            try:
                calls = rules.parse_tool_calls(message)
            except ValueError as e:
                raise TaskFailed(f"the model's answer is not usable: {e}", retryable=True) from e
            self.state["messages"].append(_assistant(message))
            if not calls:
                return self._finish(body, message)
            stop = self.limits.check(
                model_calls=self.state["modelCalls"], tool_calls=self.state["toolCalls"], asked=len(calls)
            )
            if stop is not None:
                self._save("RUNNING")
                raise TaskFailed(f"AIAgent stopped: {stop}", retryable=False)
            for call in calls:
                self.state["pending"].append({**call.public(), "index": self.state["toolCalls"]})
                self.state["toolCalls"] += 1
            self._save("RUNNING")

    def _load(self) -> None:
        record = self.journal.load(self.at.task_run_id)
        if record is not None and record.attempt == self.at.attempt:
            self.state, self.approvals = record.conversation, record.approvals
            self.ctx.log("INFO", f"resumed the conversation after {self.state['modelCalls']} model call(s)")
            return
        messages: list[dict[str, Any]] = []
        if self.props.get("systemMessage"):
            messages.append({"role": "system", "content": str(self.props["systemMessage"])})
        snapshot: dict[str, Any] | None = None
        if self.memory is not None:
            # A new attempt (restart) reads the memory as the task run's first read saw it, not as it is now.
            before = (record.conversation.get("memory") if record is not None else None) or None
            recalled = AgentMemory(self.engine.sessions).recall(
                execution_id=self.at.execution_id, task_run_id=self.at.task_run_id, spec=self.memory,
                snapshot=before, actor=f"worker:{self.claimed.owner}",
            )  # fmt: skip
            messages += recalled.messages
            snapshot = recalled.snapshot()
            if recalled.messages:
                self.ctx.log("INFO", f"memory {self.memory.memory_id}: {len(recalled.messages)} message(s) recalled")
        messages.append({"role": "user", "content": str(self.props["prompt"])})
        self.state = {
            "messages": messages, "pending": [], "toolExecutions": [], "modelCalls": 0, "toolCalls": 0,
            "tokensIn": 0, "tokensOut": 0, "durationMs": 0.0, "responses": [], "memory": snapshot,
            MCP_LISTINGS: self.mcp_listings,
        }  # fmt: skip
        self._save("RUNNING")

    def _save(self, status: str, also: Callable[[Any], None] | None = None) -> None:
        saved = self.journal.save(
            task_run_id=self.at.task_run_id, execution_id=self.at.execution_id, task_id=self.at.task_id,
            attempt=self.at.attempt, owner=self.claimed.owner, memory_id=self.memory_id, status=status,
            conversation=self.state, also=also,
        )  # fmt: skip
        if not saved:
            raise AgentTakenOver()

    def _ask_model(self) -> dict[str, Any]:
        params = {k: self.props[k] for k in _REQUEST_PROPERTIES if self.props.get(k) is not None}
        request = build_request({**params, "messages": self.state["messages"]}, self.schema)
        if self.tools:
            request["tools"] = [tool.spec() for tool in self.tools.values()]
        body, latency_ms = self._complete(request)
        tokens_in, tokens_out = usage_of(body)
        choice = (body.get("choices") or [{}])[0]
        self.state["modelCalls"] += 1
        self.state["tokensIn"] += tokens_in
        self.state["tokensOut"] += tokens_out
        self.state["durationMs"] += latency_ms
        self.state["responses"].append(
            {
                "id": body.get("id"),
                "completion": (choice.get("message") or {}).get("content"),
                "finishReason": _finish(choice.get("finish_reason")),
                "tokenUsage": _token_usage(tokens_in, tokens_out),
                "requestDuration": round(latency_ms),
            }
        )
        return body

    def _complete(self, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """One model call within the budget; with `onExceed: PAUSE` an overrun waits for a person's approval."""
        timeout_s = client_timeout_s(self.ctx, self.props)
        try:
            return complete_recorded(self.ctx, self.endpoint, request, budget=self.budget, timeout_s=timeout_s)
        except BudgetExceeded as exceeded:
            if self.budget is None or not self.budget.pause_on_exceed:
                raise
            # One decision per model call that found the budget spent, kept in the journal like a tool call's.
            key = f"budget:{self.state['modelCalls']}"
            decision = self.approvals.get(key)
            if decision is None:
                self._pause_for(
                    {"toolCallId": key, "tool": "budget overrun", "kind": "budget", "reason": exceeded.message},
                    f"{exceeded.message}: the execution pauses until the overrun is approved or rejected",
                )
            if decision.get("decision") == "REJECTED":
                why = f": {decision['reason']}" if decision.get("reason") else ""
                raise BudgetExceeded(
                    f"{exceeded.message}; {decision.get('by')} rejected the overrun{why}", retryable=False
                ) from exceeded
            self.ctx.log("WARN", f"{exceeded.message}; {decision.get('by')} approved the overrun for this call")
            return complete_recorded(self.ctx, self.endpoint, request, budget=None, timeout_s=timeout_s)

    def _finish(self, body: dict[str, Any], message: Mapping[str, Any]) -> dict[str, Any]:
        content = message.get("content")
        outputs: dict[str, Any] = {"textOutput": content, "jsonOutput": None}
        if self.schema is not None:
            try:
                parsed = json.loads(content or "")
                jsonschema.validate(parsed, self.schema)
            except ValueError as e:
                raise TaskFailed(f"the agent's structured output is not JSON: {e}", retryable=True) from e
            except jsonschema.ValidationError as e:
                raise TaskFailed(
                    f"the agent's structured output does not match jsonResponseSchema: {e.message}", retryable=True
                ) from e
            outputs = {"textOutput": None, "jsonOutput": parsed}
        self._save("DONE", also=self._remember(content))
        choice = (body.get("choices") or [{}])[0]
        shown: dict[str, Any] = self._redacted(
            {
                **outputs,
                "finishReason": _finish(choice.get("finish_reason")),
                "tokenUsage": _token_usage(self.state["tokensIn"], self.state["tokensOut"]),
                "toolExecutions": self.state["toolExecutions"],
                "intermediateResponses": self.state["responses"][:-1],
                "iterations": self.state["modelCalls"],
                "requestDuration": round(self.state["durationMs"]),
            }
        )
        return shown

    def _remember(self, answer: Any) -> Callable[[Any], None] | None:
        """The write of this run's exchange (prompt, final answer) to its memory, in the journal's last save."""
        spec = self.memory
        if spec is None:
            return None
        exchange = [{"role": "user", "content": str(self.props["prompt"])}, {"role": "assistant", "content": answer}]
        memory = AgentMemory(self.engine.sessions)
        return lambda session: memory.remember(
            session, execution_id=self.at.execution_id, task_run_id=self.at.task_run_id, attempt=self.at.attempt,
            spec=spec, exchange=exchange, actor=f"worker:{self.claimed.owner}",
        )  # fmt: skip

    def _redacted(self, value: Any) -> Any:
        """`value` without the secrets this attempt read (the journal keeps the exact text, for replay)."""
        return json.loads(self.ctx.redact(json.dumps(value, ensure_ascii=False)))  # non-ASCII secrets as written

    # ---- tool calls -----------------------------------------------------------------------------

    def _run_pending(self, pending: dict[str, Any]) -> None:
        call = rules.ToolCall(str(pending["id"]), str(pending["name"]), dict(pending["arguments"]))
        tool = self.tools.get(call.name)
        execution: dict[str, Any] = {
            "requestId": call.id,
            "requestName": call.name,
            "requestArguments": call.arguments,
        }
        started = datetime.now(UTC)
        if tool is None:
            result = f"ERROR: there is no tool {call.name}; the tools are: {', '.join(self.tools) or 'none'}"
        elif tool.require_approval and call.id not in self.approvals:
            self._ask_approval(call, tool)
        if tool is not None:
            decision = self.approvals.get(call.id) if tool.require_approval else None
            if decision is not None:
                execution["approval"] = decision
            if decision is not None and decision.get("decision") == "REJECTED":
                reason = f": {decision['reason']}" if decision.get("reason") else ""
                result = f"REJECTED: {decision.get('by')} did not approve this call{reason}. Do not retry it."
            else:
                try:
                    result, task_run_id = self._call(tool, call, int(pending["index"]))
                except TaskFailed as failed:
                    self._trace_tool(call, tool, started, None, failed.message)
                    raise
                if task_run_id is not None:
                    execution["taskRunId"] = task_run_id
        refused = result if result.startswith(_REFUSED) else None
        self._trace_tool(call, tool, started, execution.get("taskRunId"), refused)
        execution["result"] = result
        self.state["messages"].append({"role": "tool", "tool_call_id": call.id, "content": result})
        self.state["toolExecutions"].append(execution)
        self.state["pending"].pop(0)
        self._save("RUNNING")

    def _trace_tool(
        self, call: rules.ToolCall, tool: Tool | None, started: datetime, task_run_id: str | None, error: str | None
    ) -> None:
        """The call's `execute_tool` span, linked to the audit event of its task run's end (when tracing is on)."""
        if not tracing_on():
            return
        audit_hash = self.journal.audit_hash(self.at.execution_id, task_run_id) if task_run_id else None
        gen_ai.tool_call(
            execution_id=self.at.execution_id, agent_task_run_id=self.at.task_run_id, tool_name=call.name,
            call_id=call.id, tool_type="function" if tool is None or tool.kind == "task" else "extension",
            start=started, end=datetime.now(UTC), tool_task_run_id=task_run_id, audit_hash=audit_hash, error=error,
        )  # fmt: skip

    def _ask_approval(self, call: rules.ToolCall, tool: Tool) -> None:
        last: dict[str, Any] = next((m for m in reversed(self.state["messages"]) if m.get("role") == "assistant"), {})
        proposal = {
            "toolCallId": call.id,
            "tool": call.name,
            "kind": tool.kind,
            "arguments": call.arguments,
            "reasoning": last.get("content"),
            "taskId": tool.task.id if tool.task is not None else None,
        }
        self._pause_for(proposal, f"tool call {call.name} needs an approval: the execution pauses until it is decided")

    def _pause_for(self, proposal: dict[str, Any], message: str) -> NoReturn:
        """Pause the task run for a person's decision on `proposal` (its `toolCallId` keys the decision)."""
        self.state["approval"] = proposal
        self._save(AWAITING_APPROVAL)
        self.ctx.log("INFO", message)
        shown = self._redacted(proposal)  # the approver sees it through the API and the audit trail
        outputs = {"approval": shown, "toolExecutions": self._redacted(self.state["toolExecutions"])}
        self.engine.decide(self.claimed, {"pause": True, "approval": shown}, outputs, logs=tuple(self.ctx.logs))
        self.ctx.logs.clear()  # written with the pause: the attempt reports nothing more
        raise AgentPaused()

    def _call(self, tool: Tool, call: rules.ToolCall, index: int) -> tuple[str, str | None]:
        """Run one call as a child task run; a call whose arguments do not fit tells the model why instead."""
        assert tool.task is not None
        try:
            rules.tool_run_properties(tool.task, call.arguments)
        except ValueError as e:
            return f"ERROR: {e}", None  # the model can correct its arguments
        return self._run_task(tool, tool.task, call, index)

    def _run_task(self, tool: Tool, task: TaskSpec, call: rules.ToolCall, index: int) -> tuple[str, str]:
        """Send the tool's task run to its pool and wait for it to end (re-sending it when it looks lost)."""
        coords = TaskRunCoordinates(self.at.execution_id, task.id, self.at.task_run_id, index, 1)
        task_run_id = coords.task_run_id
        if tool.kind.startswith("mcp") and ACTIVE_SESSIONS.get() is not None:
            self._run_here(coords)  # on this attempt's session with the server; re-sent below only if lost
        lost_after_s = self.engine.settings.stale_after_s
        sent_at: float | None = None
        while True:
            seen = self.journal.tool_run(self.at.execution_id, task_run_id)
            if seen is not None and seen.state.is_terminal:
                break
            self._still_ours()
            now = time.monotonic()
            quiet_s = lost_after_s if seen is None or seen.state is State.RUNNING else 1.0
            due = sent_at is None or now - sent_at > quiet_s
            lost = seen is None or seen.state is not State.RUNNING or (not seen.waiting and seen.idle_s > lost_after_s)
            if due and lost:
                # Duplicates are harmless: the claim lets one runner through, or takes a dead one's over.
                attempt = self.engine.task_run_attempt(task_run_id)
                pool = task.worker_group or str(CATALOGUE[task.type].pool)
                run = Run(self.at.execution_id, task.id, self.at.task_run_id, index, attempt, pool, enter=False)
                to_canvas(self.engine.celery, run).apply_async()
                sent_at = now
            time.sleep(_POLL_S)
        if seen.state.is_failure:
            raise TaskFailed(
                f"tool {call.name} failed: its task run {task_run_id} ({task.id}) ended {seen.state}: {seen.error}",
                retryable=True,
            )
        outputs = seen.outputs or {}
        if tool.kind.startswith("mcp"):
            text = str(outputs.get("text") or "")
            return (f"ERROR: {text}" if outputs.get("isError") else text), task_run_id
        if tool.kind == "flow":
            return json.dumps(outputs.get("outputs") or {"state": outputs.get("state")}), task_run_id
        return (json.dumps(outputs) if outputs else "Success"), task_run_id

    def _run_here(self, coords: TaskRunCoordinates) -> None:
        """Claim and run a tool's child task run in this process (an MCP call on the agent's open session)."""
        from workers.attempts import run_claimed  # the runtime imports this module

        if self.journal.tool_run(coords.execution_id, coords.task_run_id) is not None:
            return  # already sent (a resumed attempt): the wait loop takes it from there
        child = self.engine.claim(coords, owner=f"{self.claimed.owner}/tool", celery_task_id=None)
        if child is None:
            return
        child = prepare_tool_run(self.engine, child)
        served = served_tool_outcome(self.engine, child)  # a ledger replay's call: the original's result
        self.engine.finish(child, served if served is not None else run_claimed(child, self.engine))

    def _still_ours(self) -> None:
        if self.engine.task_run_state(self.at.task_run_id) != str(State.RUNNING):
            raise AgentTakenOver()


def _memory_spec(ctx: TaskContext, memory: Any) -> MemorySpec | None:
    """The rendered `memory` property; its memoryId defaults to Kestra's `{{ labels.system.correlationId }}`."""
    if not isinstance(memory, Mapping):
        return None
    memory_id = memory.get("memoryId") or ctx.render(DEFAULT_MEMORY_ID)
    try:
        return MemorySpec.of(memory, str(memory_id or ""))
    except MemoryInvalid as e:
        raise TaskFailed(str(e), retryable=False) from e


def _assistant(message: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        kept["tool_calls"] = [
            {"id": c.get("id"), "type": c.get("type", "function"), "function": c.get("function")}
            for c in message["tool_calls"]
        ]
    return kept


def _finish(reason: Any) -> str | None:
    return rules.FINISH_REASONS.get(str(reason), "OTHER") if reason else None


def _token_usage(tokens_in: int, tokens_out: int) -> dict[str, int]:
    return {"inputTokenCount": tokens_in, "outputTokenCount": tokens_out, "totalTokenCount": tokens_in + tokens_out}


def run_agent(ctx: TaskContext) -> dict[str, Any]:
    """Run (or resume) an AIAgent; raises AgentPaused when it waits for an approval.

    An agent with MCP tools holds one session per server for the attempt (listing and every call).
    """
    raw_tools = ctx.properties.get("tools") or []
    if not any(isinstance(t, Mapping) and (rules.tool_kind(t.get("type")) or "").startswith("mcp") for t in raw_tools):
        return Agent(ctx).run()
    sessions = McpSessions()
    token = ACTIVE_SESSIONS.set(sessions)
    try:
        return Agent(ctx).run()
    finally:
        ACTIVE_SESSIONS.reset(token)
        sessions.close()


def prepare_tool_run(engine: Engine, claimed: ClaimedTaskRun) -> ClaimedTaskRun:
    """A claimed task run of an agent's tool, given its call: `arguments`, `toolCall`, placeholders filled.

    Any other task run is returned as it is. The call is read from the agent's journal, where it stays
    pending until its result is recorded, so a redelivered or re-sent message finds it too.
    """
    at = claimed.coordinates
    if (
        at.parent_id is None
        or at.iteration is None
        or rules.agent_of_tool(claimed.flow.iter_tasks(), at.task_id) is None
    ):
        return claimed
    call = AgentJournal(engine.sessions).pending_call(at.parent_id, at.iteration)
    if call is None:
        raise TaskFailed(f"no pending agent tool call #{at.iteration} for task {at.task_id}", retryable=False)
    arguments = dict(call.get("arguments") or {})
    claimed.variables["arguments"] = arguments
    claimed.variables["toolCall"] = {"id": call.get("id"), "name": call.get("name")}
    task = claimed.task.model_copy(update={"properties": rules.tool_run_properties(claimed.task, arguments)})
    return dataclasses.replace(claimed, task=task)
