// The approvals inbox: paused executions, what each paused task asks (its description or message, and
// its outputs shown generically: an agent's proposed tool call with its arguments and reasoning when
// present), the `onResume` inputs as a form, and approve (resume) / reject (kill) as the role allows.

import { can, get, query, request } from "./api.js";
import { errorBox, h, json, mount, when } from "./dom.js";
import { formData, inputFields } from "./forms.js";

function findTask(tasks, id) {
  for (const task of tasks || []) {
    if (!task || typeof task !== "object") continue;
    if (task.id === id) return task;
    for (const value of Object.values(task)) {
      const lists = Array.isArray(value) ? [value] : value && typeof value === "object" ? Object.values(value).filter(Array.isArray) : [];
      for (const list of lists) {
        const found = findTask(list.map((t) => (t && t.task && !t.type ? t.task : t)), id);
        if (found) return found;
      }
    }
  }
  return null;
}

// An agent's pending tool call, wherever its outputs put it: `toolCall`, `pendingToolCall`, `proposal`, or flat.
function proposedCall(outputs) {
  if (!outputs || typeof outputs !== "object") return null;
  for (const key of ["toolCall", "pendingToolCall", "proposedToolCall", "proposal", "approval", "pending"]) {
    if (outputs[key] && typeof outputs[key] === "object") return outputs[key];
  }
  return outputs.tool || outputs.toolName || outputs.arguments ? outputs : null;
}

function askedOf(task, run) {
  const call = proposedCall(run.outputs);
  const parts = [];
  if (task && (task.description || task.message || task.prompt)) parts.push(h("p", { class: "asked" }, task.description || task.message || task.prompt));
  if (call) {
    const tool = call.tool || call.toolName || call.name || (call.function && call.function.name);
    let args = call.arguments ?? call.args ?? call.input ?? (call.function && call.function.arguments);
    if (typeof args === "string") {
      try { args = JSON.parse(args); } catch { /* shown as text */ }
    }
    const reasoning = call.reasoning ?? run.outputs.reasoning ?? call.rationale ?? run.outputs.thoughts;
    parts.push(h("div", { class: "tool-call", dataset: { tool: tool || "" } },
      h("div", {}, h("strong", {}, "Tool: "), h("code", { class: "tool-name" }, tool || "?")),
      args !== undefined ? [h("strong", {}, "Arguments"), json(args)] : null,
      reasoning ? [h("strong", {}, "Reasoning so far"), h("blockquote", { class: "reasoning" }, typeof reasoning === "string" ? reasoning : JSON.stringify(reasoning, null, 2))] : null));
  }
  const rest = run.outputs && Object.keys(run.outputs).length ? run.outputs : null;
  if (rest && !call) parts.push(h("details", { open: true }, h("summary", {}, "Task run outputs"), json(rest)));
  if (!parts.length) parts.push(h("p", { class: "muted" }, `${task ? task.type : "A task"} is waiting for a decision.`));
  return parts;
}

async function card(execution, reload) {
  const flow = await get(`/flows/${encodeURIComponent(execution.namespace)}/${encodeURIComponent(execution.flowId)}?revision=${execution.flowRevision}&allowDeleted=true`);
  const paused = (execution.taskRunList || []).filter((r) => r.state.current === "PAUSED");
  const taskOf = (r) => findTask(flow.tasks, r.taskId) || findTask(flow.errors, r.taskId) || findTask(flow.finally, r.taskId);
  // Kestra 2's Approval task: its review dialog's `inputs`, a comment, and Approve / Deny as decisions.
  const isApproval = (task) => Boolean(task && typeof task.type === "string" && task.type.endsWith(".Approval"));
  const approvalTask = paused.some((r) => isApproval(taskOf(r)));
  const resumeInputs = paused.flatMap((r) => {
    const task = taskOf(r);
    return (task && (isApproval(task) ? task.inputs : task.onResume)) || [];
  });
  const ns = execution.namespace;
  const status = h("div", { class: "decision-status" });
  const form = h("form", { class: "decide" }, inputFields(resumeInputs));
  const decide = async (path, method, body) => {
    try {
      await request(method, path, { body });
      mount(status, h("span", { class: "ok" }, "Decision recorded."));
      reload();
    } catch (e) {
      mount(status, errorBox(e));
    }
  };
  const base = `/executions/${encodeURIComponent(execution.id)}/actions`;
  const buttons = [];
  // An agent's approval-gated tool call is decided through resume (decision APPROVE or REJECT, with a
  // reason the model is told); a plain Pause is approved by resuming and rejected by killing.
  const agentCall = paused.some((r) => r.outputs && r.outputs.approval && typeof r.outputs.approval === "object");
  const reason = h("textarea", { name: "reason", class: "reason", placeholder: "Reason (told to the agent on reject)" });
  if (agentCall && can("execution.resume", ns)) form.append(h("label", {}, "Reason", reason));
  const comment = h("textarea", { name: "comment", class: "comment", placeholder: "Comment (kept in the approval's outputs)" });
  if (approvalTask && can("execution.resume", ns)) form.append(h("label", {}, "Comment", comment));
  const resumeWith = (decision) => {
    const data = formData(form, resumeInputs);
    if (agentCall || approvalTask) data.append("decision", decision);
    if (agentCall && reason.value) data.append("reason", reason.value);
    if (approvalTask && comment.value) data.append("comment", comment.value);
    decide(`${base}/resume`, "POST", data);
  };
  if (can("execution.resume", ns)) {
    buttons.push(h("button", { type: "submit", class: "primary approve", dataset: { execution: execution.id } }, "Approve"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      resumeWith("APPROVE");
    });
  }
  if ((agentCall || approvalTask) && can("execution.resume", ns)) {
    // An Approval's denial runs its `onDeny` (REJECT reads as DENIED).
    buttons.push(h("button", { type: "button", class: "danger reject", dataset: { execution: execution.id },
      onclick: () => resumeWith("REJECT") }, approvalTask && !agentCall ? "Deny" : "Reject"));
  } else if (can("execution.control", ns)) {
    buttons.push(h("button", { type: "button", class: "danger reject", dataset: { execution: execution.id },
      onclick: () => confirm("Reject: kill this execution?") && decide(`${base}/kill`, "DELETE") }, "Reject"));
  }
  if (!buttons.length) buttons.push(h("span", { class: "muted no-decision" }, "Your role can see this request but not decide it."));
  form.append(h("div", { class: "actions" }, buttons), status);
  return h("article", { class: "card approval", dataset: { execution: execution.id } },
    h("header", {},
      h("a", { href: `/ui/executions/${execution.id}` }, `${execution.namespace}.${execution.flowId}`), " ",
      h("code", {}, execution.id), h("span", { class: "muted" }, ` paused since ${when(execution.state.histories.at(-1)?.date)}`)),
    paused.map((run) => h("section", { class: "paused-run", dataset: { taskRun: run.id } },
      h("h3", {}, run.taskId, run.value != null ? ` [${run.value}]` : ""),
      askedOf(findTask(flow.tasks, run.taskId), run))),
    form);
}

export async function approvalsPage(app) {
  const list = h("div", { id: "inbox" });
  const reload = async () => {
    try {
      const found = await get(`/executions/search${query({ state: "PAUSED", size: 100, sort: "state.startDate:asc" })}`);
      if (!found.results.length) {
        mount(list, h("p", { class: "muted", id: "inbox-empty" }, "Nothing is waiting for a decision."));
        return;
      }
      mount(list, await Promise.all(found.results.map((e) => card(e, reload))));
    } catch (e) {
      mount(list, errorBox(e));
    }
  };
  mount(app, h("div", { class: "page-head" }, h("h1", {}, "Approvals"), h("span", { class: "muted" }, "Paused executions waiting for a person")), list);
  await reload();
}
