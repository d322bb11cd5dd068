// The approvals inbox: paused executions, what each paused task asks (its description or message, and
// its outputs shown generically: an agent's proposed tool call with its arguments and reasoning when
// present), the run's inputs, the `onResume` inputs as a form, and approve / reject with a reason, one
// decision per paused task run (api/routes/approvals.py).

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

function askedOf(task, run, asked) {
  const call = proposedCall(run.outputs);
  const parts = [];
  // The description as the Pause rendered it (`{{ inputs.version }}` filled in), else the flow's text.
  const text = (asked && asked.description) || (task && (task.description || task.message || task.prompt));
  if (text) parts.push(h("p", { class: "asked" }, text));
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

// One paused task run's decision: its `onResume` inputs, a reason, approve / reject. Both need only
// `execution.resume` (the approver role): reject fails a Pause with the reason, or refuses an agent's tool call.
// Kestra 2's Approval task is reviewed instead: its dialog's `inputs`, a comment, Approve / Deny (actions/review).
const isApproval = (task) => Boolean(task && typeof task.type === "string" && task.type.endsWith(".Approval"));

function decisionForm(execution, run, resumeInputs, several, reload, task = null) {
  const review = isApproval(task);
  const ns = execution.namespace;
  const status = h("div", { class: "decision-status" });
  const form = h("form", { class: "decide", dataset: { taskRun: run.id } }, inputFields(resumeInputs));
  const base = `/executions/${encodeURIComponent(execution.id)}/actions`;
  const reason = h("textarea", { name: "approval.reason", class: "reason", placeholder: "Reason (audited; told to the agent on reject)" });
  const comment = h("textarea", { name: "comment", class: "comment", placeholder: "Comment (kept in the approval's outputs)" });
  const decide = async (action) => {
    // One decision per card: its buttons stay disabled while it is sent.
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    let data;
    if (review) {
      data = formData(form, resumeInputs);
      data.append("decision", action === "approve" ? "APPROVED" : "DENIED");
      if (comment.value) data.append("comment", comment.value);
      if (several) data.append("taskRunId", run.id);
    } else {
      data = action === "approve" ? formData(form, resumeInputs) : new FormData();
      if (reason.value) data.append("approval.reason", reason.value);
      if (several) data.append("approval.taskRunId", run.id);
    }
    try {
      await request("POST", `${base}/${review ? "review" : action}`, { body: data });
      mount(status, h("span", { class: "ok" }, "Decision recorded."));
      window.dispatchEvent(new CustomEvent("chorus:inbox-changed")); // the header's badge
      reload();
    } catch (e) {
      mount(status, errorBox(e));
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  };
  const buttons = [];
  if (can("execution.resume", ns)) {
    form.append(review ? h("label", {}, "Comment", comment) : h("label", {}, "Reason", reason));
    buttons.push(h("button", { type: "submit", class: "primary approve", dataset: { execution: execution.id } }, "Approve"));
    buttons.push(h("button", { type: "button", class: "danger reject", dataset: { execution: execution.id }, onclick: () => decide("reject") }, review ? "Deny" : "Reject"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      decide("approve");
    });
  }
  if (!buttons.length) buttons.push(h("span", { class: "muted no-decision" }, "Your role can see this request but not decide it."));
  form.append(h("div", { class: "actions" }, buttons), status);
  return form;
}

async function card(execution, reload) {
  const [flow, asked] = await Promise.all([
    get(`/flows/${encodeURIComponent(execution.namespace)}/${encodeURIComponent(execution.flowId)}?revision=${execution.flowRevision}&allowDeleted=true`),
    get(`/executions/${encodeURIComponent(execution.id)}/approvals`).catch(() => ({ taskRuns: [] })),
  ]);
  const askedBy = Object.fromEntries((asked.taskRuns || []).map((a) => [a.taskRunId, a]));
  const paused = (execution.taskRunList || []).filter((r) => r.state.current === "PAUSED");
  const taskOf = (r) => findTask(flow.tasks, r.taskId) || findTask(flow.errors, r.taskId) || findTask(flow.finally, r.taskId);
  const inputs = execution.inputs && Object.keys(execution.inputs).length ? execution.inputs : null;
  // A hand-paused execution has no paused task run: one decision for the execution.
  const runs = paused.length ? paused : [{ id: null, taskId: null, outputs: null }];
  return h("article", { class: "card approval", dataset: { execution: execution.id } },
    h("header", {},
      h("a", { href: `/ui/executions/${execution.id}` }, `${execution.namespace}.${execution.flowId}`), " ",
      h("code", {}, execution.id), h("span", { class: "muted" }, ` paused since ${when(execution.state.histories.at(-1)?.date)}`)),
    inputs ? h("details", { open: true, class: "run-inputs" }, h("summary", {}, "Inputs of this run"), json(inputs)) : null,
    runs.map((run) => {
      const task = run.taskId ? taskOf(run) : null;
      const onResume = isApproval(task)
        ? task.inputs || []
        : (askedBy[run.id] && askedBy[run.id].onResume) || (task && task.onResume) || [];
      return h("section", { class: "paused-run", dataset: { taskRun: run.id || "" } },
        run.taskId ? h("h3", {}, run.taskId, run.value != null ? ` [${run.value}]` : "") : null,
        run.taskId ? askedOf(task, run, askedBy[run.id]) : h("p", { class: "muted" }, "Paused by hand."),
        decisionForm(execution, run, onResume, paused.length > 1, reload, task));
    }));
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
