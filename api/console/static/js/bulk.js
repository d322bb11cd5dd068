// Bulk actions on the executions list: kill, restart, replay or label the picked executions. Each asks first,
// saying how many of the picked ones it applies to and why the others are skipped, sends only those (Kestra's
// `/executions/{action}/by-ids`), and then says how many were done and how many skipped.

import { can, request } from "./api.js";
import { TERMINAL, errorBox, h, mount } from "./dom.js";

// What each action applies to, as the API's bulk checks (api/routes/bulk_actions.py); `why` names a refusal.
const ACTIONS = [
  { key: "kill", label: "Kill", done: "killed", cls: "danger", method: "DELETE", path: "/executions/kill/by-ids",
    applies: (s) => !TERMINAL.has(s), why: "already ended", effect: "Their running tasks are stopped and they end KILLED." },
  { key: "restart", label: "Restart", done: "restarted", method: "POST", path: "/executions/restart/by-ids",
    applies: (s) => s === "FAILED", why: "not FAILED", effect: "Each keeps its id; its failed task runs get a new attempt and the flow goes on from there." },
  { key: "replay", label: "Replay", done: "replayed", method: "POST", path: "/executions/replay/by-ids",
    applies: () => true, why: "", effect: "Each starts a new execution from the beginning, linked to its original." },
  { key: "label", label: "Add label", done: "labelled", method: "POST", path: "/executions/labels/by-ids",
    applies: (s) => TERMINAL.has(s), why: "still running", effect: "The label is added to each (or replaces the value of the same key)." },
];

export function bulkBar(selection, reload) {
  const count = h("strong", { id: "bulk-count" });
  const label = h("input", { id: "bulk-label", placeholder: "label key:value", "aria-label": "Label to add" });
  const status = h("div", { id: "bulk-status", role: "status" });
  const buttons = [];
  let busy = false;

  const plan = (action) => {
    const picked = [...selection.ids.values()];
    const allowed = picked.filter((e) => can("execution.control", e.namespace));
    const go = allowed.filter((e) => action.applies(e.state.current));
    const reasons = [];
    if (picked.length > allowed.length) reasons.push(`${picked.length - allowed.length} your role may not control`);
    if (allowed.length > go.length) reasons.push(`${allowed.length - go.length} ${action.why}`);
    return { picked, go, reasons };
  };

  const run = async (action) => {
    if (busy) return;
    const { picked, go, reasons } = plan(action);
    let body = go.map((e) => e.id);
    if (action.key === "label") {
      const text = label.value.trim();
      const at = text.indexOf(":");
      if (at < 1) {
        mount(status, errorBox(new Error("Write the label as key:value.")));
        return;
      }
      body = { executionsId: body, executionLabels: [{ key: text.slice(0, at).trim(), value: text.slice(at + 1).trim() }] };
    }
    const skipped = reasons.length ? ` ${picked.length - go.length} skipped: ${reasons.join(", ")}.` : "";
    const what = action.key === "label" ? `${action.label} ${label.value.trim()} to` : action.label;
    if (!confirm(`${what} ${go.length} of the ${picked.length} selected execution(s)? ${action.effect}${skipped}`)) return;
    busy = true;
    update();
    mount(status, h("span", { class: "muted" }, `${action.label}…`));
    try {
      const answer = await request(action.method, action.path, { json: body });
      const done = answer && typeof answer.count === "number" ? answer.count : go.length;
      // The API names those it skipped at their turn (changed since listed), with the engine's reason.
      const late = (answer && Array.isArray(answer.skipped) ? answer.skipped : []).map((s) => h("li", {}, `${s.id}: ${s.message}`));
      mount(status, h("p", { class: "ok", id: "bulk-result", dataset: { done: String(done), skipped: String(picked.length - done) } },
        `${done} ${action.done}, ${picked.length - done} skipped${reasons.length ? ` (${reasons.join(", ")})` : ""}.`),
      late.length ? h("ul", { class: "muted", id: "bulk-late" }, late) : null);
      selection.ids.clear();
    } catch (e) {
      // Kestra's all-or-nothing check: an execution changed since it was listed, so nothing was done.
      mount(status, errorBox(e), h("p", { class: "muted" }, "Nothing was done; the list is refreshed, pick again."));
    } finally {
      busy = false;
      await reload();
      update();
    }
  };

  for (const action of ACTIONS) {
    const button = h("button", { type: "button", class: `small bulk-${action.key} ${action.cls || ""}`, dataset: { action: action.key } }, action.label);
    button.addEventListener("click", () => run(action));
    buttons.push([action, button]);
  }
  const clear = h("button", { type: "button", class: "small link-dark", id: "bulk-clear" }, "Clear");
  clear.addEventListener("click", () => { selection.ids.clear(); selection.changed(true); });
  const tools = h("div", { class: "bulk-tools" }, count, buttons.filter(([a]) => a.key !== "label").map(([, b]) => b),
    h("span", { class: "bulk-label" }, label, buttons.find(([a]) => a.key === "label")[1]), clear);
  const element = h("div", { class: "bulk-bar", id: "bulk-bar" }, tools, status);

  // Each button is enabled when it applies to at least one picked execution; its title says to how many.
  const update = () => {
    const n = selection.ids.size;
    tools.hidden = n === 0;
    mount(count, `${n} selected`);
    for (const [action, button] of buttons) {
      const { go } = plan(action);
      button.disabled = busy || go.length === 0;
      button.title = `${go.length} of ${n} selected`;
      // a role with no control anywhere sees no action at all
      button.hidden = !can("execution.control");
    }
  };
  update();
  return { element, update };
}
