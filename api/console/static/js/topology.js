// The topology of an execution: the flow's tasks as a graph (sequences left to right, parallel branches
// stacked, flowables as clusters with their branches), each node coloured by its task runs' state and
// ForEach iterations shown as one chip per task run.

import { h } from "./dom.js";

const PRIORITY = ["FAILED", "KILLED", "KILLING", "RUNNING", "RETRYING", "PAUSED", "CREATED", "QUEUED", "RESTARTED", "WARNING", "SUCCESS", "CANCELLED", "SKIPPED"];
// `compensate` (a Chorus extension): the undo steps of a task, shown as its lane, coloured by their runs.
const BRANCH_KEYS = ["tasks", "then", "else", "errors", "finally", "_finally", "afterExecution", "compensate"];

function shortType(type) {
  return (type || "").split(".").pop();
}

function aggregate(runs) {
  if (!runs.length) return null;
  const states = runs.map((r) => r.state.current);
  return PRIORITY.find((s) => states.includes(s)) || states[states.length - 1];
}

// Child task lists of a task, whatever flowable it is: `tasks`, `then`/`else`, `cases.<x>`, Dag `tasks[].task`.
function branches(task) {
  const found = [];
  for (const key of BRANCH_KEYS) {
    const list = task[key];
    if (Array.isArray(list) && list.length) {
      const tasks = list.map((item) => (item && item.task && !item.type ? { ...item.task, dependsOn: item.dependsOn } : item)).filter((t) => t && t.id);
      if (tasks.length) found.push([key, tasks]);
    }
  }
  if (task.cases && typeof task.cases === "object") {
    for (const [value, list] of Object.entries(task.cases)) if (Array.isArray(list)) found.push([`case ${value}`, list]);
  }
  return found;
}

function isParallel(task) {
  const type = shortType(task.type);
  return /Parallel|Dag/.test(type) || task.concurrent !== undefined;
}

function node(task, runsByTask) {
  const runs = runsByTask.get(task.id) || [];
  const state = aggregate(runs);
  const children = branches(task);
  const chips = runs.length > 1 || runs.some((r) => r.value !== null && r.value !== undefined)
    ? h("div", { class: "chips" }, runs.map((r, i) => h("span", {
      class: `chip state-${r.state.current.toLowerCase()}`,
      title: `${task.id}${r.value != null ? ` [${r.value}]` : ""}: ${r.state.current}`,
      dataset: { taskRun: r.id, state: r.state.current },
    }, r.value != null ? String(r.value).slice(0, 24) : `#${r.iteration ?? i}`)))
    : null;
  const head = h("div", { class: "node-head" },
    h("span", { class: "node-id" }, task.id),
    h("span", { class: "node-type" }, shortType(task.type)),
    state ? h("span", { class: "node-state" }, state) : h("span", { class: "node-state muted" }, "not run"));
  return h("div", {
    class: `node ${children.length ? "cluster" : ""} ${state ? `state-${state.toLowerCase()}` : "state-none"}`,
    dataset: { task: task.id, state: state || "NONE" },
  }, head, chips, children.length ? h("div", { class: "lanes" }, children.map(([key, tasks]) =>
    h("div", { class: "lane" }, h("span", { class: "lane-label" }, key), sequence(tasks, runsByTask, isParallel(task) && key === "tasks")))) : null);
}

function sequence(tasks, runsByTask, parallel = false) {
  return h("div", { class: parallel ? "seq parallel" : "seq" }, tasks.map((t) => node(t, runsByTask)));
}

export function topology(flow, execution) {
  const runsByTask = new Map();
  for (const run of execution.taskRunList || []) {
    if (!runsByTask.has(run.taskId)) runsByTask.set(run.taskId, []);
    runsByTask.get(run.taskId).push(run);
  }
  const lanes = [["tasks", flow.tasks || []]];
  for (const key of ["errors", "finally", "afterExecution"]) if (Array.isArray(flow[key]) && flow[key].length) lanes.push([key, flow[key]]);
  return h("div", { class: "topology", id: "topology" }, lanes.map(([key, tasks]) =>
    h("div", { class: "lane top" }, lanes.length > 1 ? h("span", { class: "lane-label" }, key) : null, sequence(tasks, runsByTask))));
}

// Gantt of task-run attempts: one row per attempt, positioned on the execution's time line.
export function gantt(execution) {
  const rows = [];
  for (const run of execution.taskRunList || []) {
    const attempts = run.attempts && run.attempts.length ? [...run.attempts] : [{ state: run.state }];
    const last = attempts[attempts.length - 1];
    // A flowable's attempt can stay open while its task run ends with its children: the run has the last word.
    if (TERMINALISH.has(run.state.current) && !TERMINALISH.has(last.state.current)) {
      attempts[attempts.length - 1] = { ...last, state: { ...last.state, current: run.state.current, endDate: run.state.endDate } };
    }
    attempts.forEach((attempt, i) => rows.push({ run, attempt, number: i + 1 }));
  }
  const t0 = new Date(execution.state.startDate || Date.now()).getTime();
  const ends = rows.map((r) => new Date(r.attempt.state.endDate || r.attempt.state.histories?.at(-1)?.date || Date.now()).getTime());
  const t1 = Math.max(t0 + 1, new Date(execution.state.endDate || 0).getTime(), ...ends, execution.state.endDate ? 0 : Date.now());
  const span = t1 - t0;
  return h("div", { class: "gantt", id: "gantt" },
    h("div", { class: "gantt-scale" }, h("span", {}, "0 s"), h("span", {}, `${(span / 1000).toFixed(2)} s`)),
    rows.map(({ run, attempt, number }) => {
      const start = new Date(attempt.state.startDate || attempt.state.histories?.[0]?.date || execution.state.startDate).getTime();
      const end = attempt.state.endDate ? new Date(attempt.state.endDate).getTime() : TERMINALISH.has(attempt.state.current) ? new Date(attempt.state.histories?.at(-1)?.date || t1).getTime() : Date.now();
      const left = Math.max(0, ((start - t0) / span) * 100);
      const width = Math.max(0.5, ((Math.min(end, t1) - start) / span) * 100);
      const label = `${run.taskId}${run.value != null ? ` [${run.value}]` : ""} · attempt ${number}`;
      return h("div", { class: "gantt-row", dataset: { taskRun: run.id, attempt: number } },
        h("span", { class: "gantt-label", title: label }, label),
        h("span", { class: "gantt-track" }, h("span", {
          class: `bar state-${attempt.state.current.toLowerCase()}`,
          style: { left: `${left}%`, width: `${Math.min(width, 100 - left)}%` },
          title: `${attempt.state.current} · ${((end - start) / 1000).toFixed(3)} s`,
        })));
    }));
}

const TERMINALISH = new Set(["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"]);
