// One task run up close: opened by a click on its topology node or Gantt bar, it shows the run's
// attempts, outputs and its own log lines (one attempt's, when a Gantt bar was clicked).

import { get, query } from "./api.js";
import { duration, errorBox, h, json, mount, stateBadge, when } from "./dom.js";

// Which task runs a click points at: a Gantt row names one run and attempt, a node every run of its task.
export function clickedRuns(event, execution) {
  const row = event.target.closest(".gantt-row[data-task-run]");
  const runs = execution.taskRunList || [];
  if (row) return { runs: runs.filter((r) => r.id === row.dataset.taskRun), attempt: Number(row.dataset.attempt) };
  const node = event.target.closest(".node[data-task]");
  if (!node) return null;
  const all = [...runs, ...(execution.loopTaskRunList || [])];
  return { runs: all.filter((r) => r.taskId === node.dataset.task), attempt: null, taskId: node.dataset.task };
}

export async function showTaskRuns(box, execution, picked) {
  const { runs, attempt, taskId } = picked;
  const close = h("button", { type: "button", class: "small", id: "close-task-run", onclick: () => { box.hidden = true; } }, "Close");
  box.hidden = false;
  if (!runs.length) {
    mount(box, h("div", { class: "section-head" }, h("h2", {}, `Task ${taskId}`), close), h("p", { class: "muted" }, "This task has not run."));
    return;
  }
  const title = runs.length === 1 ? `Task run ${runs[0].taskId}${runs[0].value != null ? ` [${runs[0].value}]` : ""}` : `Task ${taskId} · ${runs.length} runs`;
  const logs = h("div", { class: "task-run-logs" }, h("p", { class: "muted" }, "Loading logs…"));
  mount(box, h("div", { class: "section-head" }, h("h2", {}, title, attempt ? ` · attempt ${attempt}` : ""), close),
    runs.map((r) => h("div", { class: "task-run", dataset: { taskRun: r.id } },
      runs.length > 1 ? h("h3", {}, r.value != null ? `[${r.value}]` : r.id) : null,
      h("table", { class: "grid attempts" },
        h("thead", {}, h("tr", {}, ["Attempt", "State", "Started", "Duration"].map((c) => h("th", {}, c)))),
        h("tbody", {}, (r.attempts || []).map((a, i) => h("tr", { class: attempt === i + 1 ? "picked" : "" },
          h("td", {}, String(i + 1)), h("td", {}, stateBadge(a.state.current)), h("td", {}, when(a.state.startDate)),
          h("td", {}, duration(a.state.startDate, a.state.endDate)))))),
      r.outputs && Object.keys(r.outputs).length ? [h("h3", {}, "Outputs"), json(r.outputs)] : h("p", { class: "muted" }, "No outputs."))),
    h("h3", {}, "Logs"), logs);
  box.scrollIntoView({ block: "nearest" });
  try {
    // The API counts attempts from 0; the page from 1, as the Gantt does.
    const params = runs.length === 1 ? { taskRunId: runs[0].id, attempt: attempt ? attempt - 1 : "" } : { taskId };
    const lines = await get(`/logs/${encodeURIComponent(execution.id)}${query({ ...params, minLevel: "TRACE" })}`);
    mount(logs, lines.length ? h("table", { class: "grid logs" }, h("tbody", {}, lines.map((l) =>
      h("tr", { class: `log-${l.level.toLowerCase()}`, dataset: { level: l.level } },
        h("td", { class: "nowrap" }, when(l.timestamp)), h("td", {}, l.level), h("td", { class: "msg" }, l.message)))))
      : h("p", { class: "muted" }, "No log lines."));
  } catch (e) {
    mount(logs, errorBox(e));
  }
}
