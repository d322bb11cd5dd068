// Executions: the filtered list, and one execution's page (topology and Gantt updated live over SSE,
// logs with a level filter, outputs, the audit chain and the actions the role allows).

import { BASE, can, get, query, request } from "./api.js";
import { bulkBar } from "./bulk.js";
import { TERMINAL, debounce, duration, errorBox, h, json, mount, stateBadge, when } from "./dom.js";
import { navigate } from "./main.js";
import { actionButton, actionGroup } from "./actions.js";
import { clickedRuns, showTaskRuns } from "./taskrun.js";
import { gantt, topology } from "./topology.js";
import { loadReplayDiff } from "./replaydiff.js";

const REFRESH_MS = 5000;
const EXECUTION_TABS = [["overview", "Overview"], ["topology", "Topology"], ["gantt", "Gantt"], ["logs", "Logs"], ["outputs", "Outputs"], ["audit", "Audit"]];
const STATES = ["CREATED", "QUEUED", "RUNNING", "PAUSED", "RETRYING", "SUCCESS", "WARNING", "FAILED", "KILLING", "KILLED", "CANCELLED"];

// `selection` (the list page's bulk actions): a Set of picked ids, kept across refreshes, and what to do on change.
export function executionsTable(executions, selection = null) {
  const pick = (e) => {
    const box = h("input", { type: "checkbox", class: "pick", "aria-label": `Select ${e.id}`, checked: selection.ids.has(e.id) });
    box.addEventListener("change", () => {
      if (box.checked) selection.ids.set(e.id, e);
      else selection.ids.delete(e.id);
      selection.changed();
    });
    return h("td", { class: "pick-cell" }, box);
  };
  const all = selection ? h("input", { type: "checkbox", id: "pick-all", "aria-label": "Select every execution on this page",
    checked: executions.length > 0 && executions.every((e) => selection.ids.has(e.id)) }) : null;
  if (all) {
    all.addEventListener("change", () => {
      for (const e of executions) {
        if (all.checked) selection.ids.set(e.id, e);
        else selection.ids.delete(e.id);
      }
      selection.changed(true);
    });
  }
  return h("div", { class: "scroll-x" }, h("table", { class: "grid", id: "execution-list" },
    h("thead", {}, h("tr", {}, all ? h("th", { class: "pick-cell" }, all) : null,
      ["Execution", "Flow", "State", "Started", "Duration", "Labels"].map((c) => h("th", { class: c === "Labels" ? "wide-only" : null }, c)))),
    h("tbody", {}, executions.map((e) => h("tr", { dataset: { execution: e.id, state: e.state.current } },
      selection ? pick(e) : null,
      h("td", {}, h("a", { href: `/ui/executions/${e.id}` }, e.id)),
      h("td", {}, h("a", { href: `/ui/flows/${encodeURIComponent(e.namespace)}/${encodeURIComponent(e.flowId)}` }, `${e.namespace}.${e.flowId}`)),
      h("td", {}, stateBadge(e.state.current)),
      h("td", {}, when(e.state.startDate)),
      h("td", {}, duration(e.state.startDate, e.state.endDate)),
      h("td", { class: "wide-only" }, (e.labels || []).filter((l) => !l.key.startsWith("system.")).map((l) => h("span", { class: "tag" }, `${l.key}:${l.value}`))))))));
}

export async function executionsPage(app) {
  const params = new URLSearchParams(location.search);
  const field = (name, attrs = {}) => h("input", { name, id: `filter-${name}`, value: params.get(name) || "", ...attrs });
  const state = h("select", { name: "state", id: "filter-state" }, h("option", { value: "" }, "Any state"),
    STATES.map((s) => h("option", { value: s, selected: s === params.get("state") }, s)));
  const namespace = field("namespace", { placeholder: "namespace (prefix)" });
  const flowId = field("flowId", { placeholder: "flow id" });
  const labels = field("labels", { placeholder: "label key:value" });
  const from = field("startDate", { type: "datetime-local", title: "started after" });
  const to = field("endDate", { type: "datetime-local", title: "started before" });
  const results = h("div", { id: "executions" });
  let found = { results: [] };
  // Picked executions survive the refresh and paging: the bar acts on them, wherever they are listed.
  const selection = { ids: new Map(), changed: (repaint) => { if (repaint) paint(); bar.update(); } };
  const bar = bulkBar(selection, () => load());
  let page = Number(params.get("page") || 1);
  let asked = 0; // a late answer to an older filter or refresh must not replace a newer one
  const load = async () => {
    const mine = ++asked;
    const iso = (v) => (v ? new Date(v).toISOString() : "");
    const shown = { state: state.value, namespace: namespace.value, flowId: flowId.value, labels: labels.value, startDate: from.value, endDate: to.value };
    history.replaceState({}, "", `/ui/executions${query({ ...shown, page: page > 1 ? page : "" })}`);
    try {
      found = await get(`/executions/search${query({ ...shown, startDate: iso(from.value), endDate: iso(to.value), page, size: 25 })}`);
      if (mine !== asked) return;
      // a picked execution whose state changed is acted on with its new state
      for (const e of found.results) if (selection.ids.has(e.id)) selection.ids.set(e.id, e);
      paint();
      bar.update();
    } catch (e) {
      mount(results, errorBox(e));
    }
  };
  const paint = () => {
    const pages = Math.max(1, Math.ceil(found.total / 25));
    mount(results, executionsTable(found.results, can("execution.control") ? selection : null),
      h("div", { class: "pager" },
        h("button", { disabled: page <= 1, onclick: () => { page--; load(); } }, "‹ Previous"),
        ` page ${page} of ${pages} · ${found.total} execution(s) `,
        h("button", { disabled: page >= pages, onclick: () => { page++; load(); } }, "Next ›")));
  };
  const reload = debounce(() => { page = 1; load(); }, 250);
  for (const el of [state, namespace, flowId, labels, from, to]) el.addEventListener("input", reload);
  // The list follows new and finishing executions; a hidden tab does not poll.
  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  mount(app, h("div", { class: "page-head" }, h("h1", {}, "Executions")),
    h("div", { class: "filters" }, state, namespace, flowId, labels, h("span", { class: "muted" }, "from"), from, h("span", { class: "muted" }, "to"), to),
    h("p", { class: "muted small" }, `Refreshes every ${REFRESH_MS / 1000} s.`), bar.element, results);
  await load();
  return () => clearInterval(timer);
}

export async function executionPage(executionId, app) {
  let execution = await get(`/executions/${encodeURIComponent(executionId)}`);
  const flowUrl = `/flows/${encodeURIComponent(execution.namespace)}/${encodeURIComponent(execution.flowId)}`;
  const flow = await get(`${flowUrl}?revision=${execution.flowRevision}&allowDeleted=true`);
  const head = h("div", { class: "page-head" });
  const graph = h("section", { class: "card" });
  const timeline = h("section", { class: "card" });
  const runsBox = h("section", { class: "card" });
  const logsBox = h("div", { id: "logs" });
  const outputsBox = h("section", { class: "card", id: "outputs" });
  const inputsBox = h("section", { class: "card", id: "inputs" });
  const lineage = h("span", { id: "lineage" });
  const replayLinks = h("span", { id: "replays" });
  const auditBox = h("section", { class: "card", id: "audit" });
  const diffBox = h("section", { class: "card", id: "replay-diff", hidden: true });
  const level = h("select", { id: "log-level" }, ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].map((l) => h("option", { value: l, selected: l === "INFO" }, l)));
  const taskFilter = h("select", { id: "log-task" }, h("option", { value: "" }, "All tasks"));
  const attemptFilter = h("select", { id: "log-attempt" }, h("option", { value: "" }, "All attempts"));
  const search = h("input", { id: "log-search", type: "search", placeholder: "Search logs" });
  const download = h("a", { class: "button", id: "log-download", download: `${executionId}.log` }, "Download");
  const detail = h("section", { class: "card", id: "task-run-detail", hidden: true });
  let lines = [];

  const paint = () => {
    const current = execution.state.current;
    mount(head,
      h("h1", {}, h("span", { class: "muted" }, `${execution.namespace}.`),
        h("a", { href: `/ui${flowUrl}` }, execution.flowId), " ", h("code", { id: "execution-id" }, execution.id)),
      h("span", { id: "execution-state" }, stateBadge(current)),
      h("span", { class: "muted" }, `started ${when(execution.state.startDate)} · ${duration(execution.state.startDate, execution.state.endDate)}`),
      executionActions(execution, refresh));
    const replayOf = execution.originalId && execution.originalId !== execution.id && execution.parentId;
    if (replayOf) mount(lineage, "Replay of ", h("a", { href: `/ui/executions/${execution.parentId}`, id: "replay-of" }, execution.parentId));
    mount(graph, h("h2", {}, "Topology"), topology(flow, execution));
    mount(timeline, h("h2", {}, "Gantt of attempts"), gantt(execution));
    mount(runsBox, h("h2", {}, "Task runs"), taskRunsTable(execution, refresh));
    fillChoices();
    const outputs = (execution.taskRunList || []).filter((r) => r.outputs && Object.keys(r.outputs).length);
    const flowOutputs = execution.outputs && Object.keys(execution.outputs).length;
    mount(inputsBox, h("h2", {}, "Inputs"),
      execution.inputs && Object.keys(execution.inputs).length ? json(execution.inputs) : h("p", { class: "muted" }, "No inputs."));
    mount(outputsBox, h("h2", {}, "Outputs"),
      !flowOutputs && !outputs.length ? h("p", { class: "muted" }, "No outputs yet.") : null,
      execution.outputs && Object.keys(execution.outputs).length ? [h("h3", {}, "Flow outputs"), json(execution.outputs)] : null,
      outputs.map((r) =>
        h("details", { open: true }, h("summary", {}, `${r.taskId}${r.value != null ? ` [${r.value}]` : ""}`), json(r.outputs))));
  };
  // A loop's task run is named by its item: "item [b]" says which iteration a line came from.
  const runNames = () => new Map([...(execution.taskRunList || []), ...(execution.loopTaskRunList || [])]
    .map((r) => [r.id, r.value != null ? `${r.taskId} [${r.value}]` : r.taskId]));
  const fillChoices = () => {
    const tasks = [...new Set((execution.taskRunList || []).concat(execution.loopTaskRunList || []).map((r) => r.taskId))];
    const most = Math.max(1, ...(execution.taskRunList || []).map((r) => (r.attempts || []).length));
    const keep = (select) => select.value;
    const [task, attempt] = [keep(taskFilter), keep(attemptFilter)];
    mount(taskFilter, h("option", { value: "" }, "All tasks"), tasks.map((t) => h("option", { value: t, selected: t === task }, t)));
    mount(attemptFilter, h("option", { value: "" }, "All attempts"),
      Array.from({ length: most }, (_, i) => h("option", { value: String(i), selected: String(i) === attempt }, `attempt ${i + 1}`)));
  };
  const paintLogs = () => {
    const names = runNames();
    const needle = search.value.trim().toLowerCase();
    const shown = needle ? lines.filter((l) => l.message.toLowerCase().includes(needle)) : lines;
    mount(logsBox, shown.length ? h("table", { class: "grid logs" }, h("tbody", {}, shown.map((l) =>
      h("tr", { class: `log-${l.level.toLowerCase()}`, dataset: { level: l.level } },
        h("td", { class: "nowrap" }, when(l.timestamp)), h("td", {}, l.level), h("td", {}, names.get(l.taskRunId) || l.taskId || ""), h("td", { class: "msg" }, l.message)))))
      : h("p", { class: "muted" }, needle ? "No log line matches." : "No log lines at this level."));
  };
  let asked = 0; // only the newest request paints: an older answer arriving late must not undo a filter
  const loadLogs = async () => {
    const filters = { minLevel: level.value, taskId: taskFilter.value, attempt: attemptFilter.value };
    download.href = `${BASE}/logs/${encodeURIComponent(execution.id)}/download${query(filters)}`;
    const mine = ++asked;
    try {
      const found = await get(`/logs/${encodeURIComponent(execution.id)}${query(filters)}`);
      if (mine !== asked) return;
      lines = found;
      paintLogs();
    } catch (e) {
      mount(logsBox, errorBox(e));
    }
  };
  const loadAudit = async () => {
    try {
      const chain = await get(`/executions/${encodeURIComponent(execution.id)}/audit`);
      const replays = chain.events.filter((e) => e.action === "execution.replayed" && e.payload && e.payload.replay).map((e) => e.payload.replay);
      mount(replayLinks, replays.length ? ["Replayed as ", replays.map((id, i) => [i ? ", " : "", h("a", { href: `/ui/executions/${id}`, class: "replayed-as" }, id)])] : null);
      mount(auditBox, h("h2", {}, "Audit chain"), auditView(chain));
    } catch (e) {
      mount(auditBox, h("h2", {}, "Audit chain"), errorBox(e));
    }
  };
  // A replay is compared with its original once it has ended (before, half its task runs would differ).
  const isReplay = () => execution.originalId && execution.originalId !== execution.id && execution.parentId;
  const loadDiff = () => {
    diffBox.hidden = !isReplay() || currentTab !== "overview";
    if (isReplay() && TERMINAL.has(execution.state.current)) loadReplayDiff(diffBox, execution.id, execution.parentId);
    else if (isReplay()) mount(diffBox, h("h2", {}, "Compared with the original"), h("p", { class: "muted" }, "Shown once this replay has ended."));
  };
  const refresh = async () => {
    execution = await get(`/executions/${encodeURIComponent(execution.id)}`);
    paint();
    loadLogs();
    loadAudit();
    loadDiff();
    follow();
  };
  for (const el of [level, taskFilter, attemptFilter]) el.addEventListener("change", loadLogs);
  search.addEventListener("input", debounce(paintLogs, 150));
  // A click on a node or a Gantt bar opens that task run's attempts, outputs and logs.
  for (const box of [graph, timeline]) {
    box.addEventListener("click", (event) => {
      const picked = clickedRuns(event, execution);
      if (picked) showTaskRuns(detail, execution, picked);
    });
  }
  const slowReload = debounce(() => { loadLogs(); loadAudit(); loadDiff(); }, 400);

  // Live updates: the API's SSE follow stream (`progress` events, then `end`, after which it closes).
  let source = null;
  const follow = () => {
    if (source || TERMINAL.has(execution.state.current)) return;
    source = new EventSource(`${BASE}/executions/${encodeURIComponent(execution.id)}/follow`);
    source.onmessage = (event) => {
      const body = JSON.parse(event.data);
      if (body.state) {
        execution = body;
        paint();
        slowReload();
      }
      if (event.lastEventId === "end") stop();
    };
    source.onerror = () => stop();
  };
  const stop = () => {
    if (source) source.close();
    source = null;
  };

  const logsCard = h("section", { class: "card", id: "logs-card" }, h("div", { class: "section-head" }, h("h2", {}, "Logs"),
    h("div", { class: "filters log-filters" }, h("label", { class: "inline" }, "Minimum level ", level), taskFilter, attemptFilter, search, download)), logsBox);
  // Tabs, as in Kestra; the tab is kept in the address's hash, so a link or a reload opens the same one.
  const panes = { overview: [runsBox, inputsBox], topology: [graph], gantt: [timeline], logs: [logsCard], outputs: [outputsBox], audit: [auditBox] };
  let currentTab = "overview";
  const tabBar = h("nav", { class: "tabs", id: "execution-tabs" }, EXECUTION_TABS.map(([key, label]) =>
    h("a", { href: `#${key}`, id: `tab-${key}`, dataset: { tab: key } }, label)));
  const showTab = (tab) => {
    for (const [key, elements] of Object.entries(panes)) for (const el of elements) el.hidden = key !== tab;
    currentTab = tab;
    diffBox.hidden = tab !== "overview" || !isReplay();
    for (const link of tabBar.children) link.classList.toggle("active", link.dataset.tab === tab);
    history.replaceState(history.state, "", `${location.pathname}${location.search}#${tab}`);
  };
  tabBar.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-tab]");
    if (!link) return;
    event.preventDefault();
    showTab(link.dataset.tab);
  });
  mount(app, head, h("p", { class: "muted lineage" }, lineage, " ", replayLinks), tabBar,
    diffBox, runsBox, inputsBox, graph, timeline, logsCard, outputsBox, auditBox, detail);
  const hashTab = location.hash.slice(1);
  showTab(panes[hashTab] ? hashTab : "overview");
  paint();
  loadLogs();
  loadAudit();
  loadDiff();
  follow();
  return stop;
}

function executionActions(execution, refresh) {
  const ns = execution.namespace;
  const state = execution.state.current;
  const status = h("span", { id: "action-status" });
  const group = actionGroup();
  const done = async (answer) => {
    if (answer && answer.id && answer.id !== execution.id) navigate(`/ui/executions/${answer.id}`);
    else await refresh();
  };
  const base = `/executions/${encodeURIComponent(execution.id)}/actions`;
  const flow = `${execution.namespace}.${execution.flowId}`;
  const act = (label, id, method, path, confirmText, cls) => actionButton({ label, id, cls, method, path, confirmText, group, status, done });
  const buttons = [];
  if (can("execution.control", ns)) {
    if (!TERMINAL.has(state)) buttons.push(act("Kill", "kill", "DELETE", `${base}/kill`, `Kill execution ${execution.id}? Its running tasks are stopped and it ends KILLED.`, "danger"));
    if (["FAILED", "KILLED", "WARNING"].includes(state)) {
      buttons.push(act("Restart", "restart", "POST", `${base}/restart`,
        `Restart execution ${execution.id} in place? Its failed task runs get a new attempt and the flow goes on from there; what succeeded is kept.`));
    }
    if (TERMINAL.has(state)) {
      buttons.push(act("Replay", "replay", "POST", `${base}/replay`,
        `Replay ${flow} from the start? A new execution is created with the same inputs; this one stays as it is.`));
      buttons.push(act("Replay from the ledger", "replay-ledger", "POST", `${base}/replay${query({ mode: "ledger" })}`,
        `Replay ${flow} from the ledger? A new execution runs with every model and agent tool call answered from this one's records: no provider is called. Scripts, HTTP requests and notifications run again.`));
    }
  }
  if (state === "PAUSED" && can("execution.resume", ns)) {
    buttons.push(act("Resume", "resume", "POST", `${base}/resume`,
      `Resume execution ${execution.id}? Its paused task goes on as approved (a pause that asks for inputs is answered in the inbox).`, "primary"));
    buttons.push(h("a", { class: "button", href: "/ui/approvals", id: "to-inbox" }, "Decide in the inbox"));
  }
  return h("div", { class: "actions" }, buttons, status);
}

// What a person may set an ended task run to (the API's set); never its current state, which would change nothing.
const SETTABLE = ["SUCCESS", "WARNING", "FAILED", "KILLED"];

function taskRunsTable(execution, refresh) {
  const control = can("execution.control", execution.namespace);
  const base = `/executions/${encodeURIComponent(execution.id)}/actions`;
  const ended = TERMINAL.has(execution.state.current);
  const group = actionGroup();
  const done = async (answer) => {
    if (answer && answer.id && answer.id !== execution.id) navigate(`/ui/executions/${answer.id}`);
    else await refresh();
  };
  return h("div", { class: "scroll-x" }, h("table", { class: "grid", id: "task-runs" },
    h("thead", {}, h("tr", {}, ["Task", "Value", "State", "Attempts", "Duration", control ? "Actions" : null].filter(Boolean).map((c) => h("th", {}, c)))),
    h("tbody", {}, (execution.taskRunList || []).map((r) => {
      const status = h("span", { class: "row-status" });
      const runEnded = TERMINAL.has(r.state.current);
      const cells = [];
      if (control && ended) {
        cells.push(actionButton({ label: "Replay from here", cls: "small replay-from", method: "POST", group, status, done,
          path: `${base}/replay${query({ taskRunId: r.id })}`,
          confirmText: `Replay from task "${r.taskId}"? A new execution starts: the task runs before it are copied as they ended, "${r.taskId}" and everything after it run again.` }));
      }
      if (control && ended) {
        cells.push(actionButton({ label: "Live from here", cls: "small replay-live-from", method: "POST", group, status, done,
          path: `${base}/replay${query({ mode: "ledger", liveFrom: r.taskId })}`,
          confirmText: `Replay from the ledger, live from task "${r.taskId}"? A new execution runs: model and tool calls of the tasks before "${r.taskId}" are answered from this one's records, "${r.taskId}" and the tasks after it call the providers again.` }));
      }
      // Set state applies to an ended task run only (the API answers 409 for a running or paused one).
      if (control && runEnded) {
        const choices = SETTABLE.filter((s) => s !== r.state.current);
        const choose = h("select", { class: "set-state", "aria-label": `New state for ${r.taskId}` },
          h("option", { value: "" }, "Set state…"), choices.map((s) => h("option", { value: s }, s)));
        const button = actionButton({ label: "Set state", cls: "small change-state", method: "POST", group, status, done,
          path: `${base}/state`, json: () => ({ taskRunId: r.id, state: choose.value }),
          confirmText: () => (choose.value
            ? `Set task "${r.taskId}" from ${r.state.current} to ${choose.value}?${ended ? " The execution then goes on from this task: what depends on it runs again." : ""}`
            : null) });
        button.disabled = true;
        button.dataset.off = "true";
        choose.addEventListener("change", () => {
          button.dataset.off = String(!choose.value);
          button.disabled = !choose.value || group.busy;
        });
        cells.push(choose, button);
      }
      return h("tr", { dataset: { taskRun: r.id, task: r.taskId, state: r.state.current } },
        h("td", {}, r.taskId), h("td", {}, r.value ?? ""), h("td", {}, stateBadge(r.state.current)),
        h("td", {}, String((r.attempts || []).length)), h("td", {}, duration(r.state.startDate, r.state.endDate)),
        control ? h("td", { class: "nowrap" }, cells, status) : null);
    }))));
}

// The audit chain with its verification; a person's decisions (resume, kill, state changes) stand out.
export function auditView(chain) {
  const decision = (e) => {
    const p = e.payload || {};
    if (e.action === "task_run.running" && p.from === "PAUSED" && !e.actor.startsWith("system")) return `approved (resumed ${p.task_id})`;
    if (e.action === "execution.killing" || e.action === "execution.killed") return e.actor.startsWith("system") ? null : "rejected / killed";
    if (e.action === "execution.approved") return `approved${p.reason ? `: ${p.reason}` : ""}`;
    if (e.action === "execution.rejected") return `rejected${p.reason ? `: ${p.reason}` : ""}`;
    if (e.action.endsWith(".state_changed")) return "state changed by hand";
    return null;
  };
  return h("div", {},
    h("p", { id: "audit-verified", class: chain.verified ? "ok" : "bad", dataset: { verified: String(chain.verified) } },
      chain.verified ? `✓ chain verified (${chain.events.length} events, ${chain.keyed ? "HMAC-SHA256 keyed" : "SHA-256 linked only"})` : `✗ chain broken at seq ${chain.brokenAt?.seq}: ${chain.brokenAt?.reason}`),
    h("table", { class: "grid audit" },
      h("thead", {}, h("tr", {}, ["#", "At", "Actor", "Action", "Detail", "Hash"].map((c) => h("th", {}, c)))),
      h("tbody", {}, chain.events.map((e) => {
        const decided = decision(e);
        return h("tr", { class: decided ? "decision" : "", dataset: { action: e.action, actor: e.actor } },
          h("td", {}, String(e.seq)), h("td", { class: "nowrap" }, when(e.at)), h("td", {}, e.actor),
          h("td", {}, e.action, decided ? h("strong", { class: "decision-label" }, ` — ${decided}`) : null),
          h("td", { class: "msg" }, h("code", {}, JSON.stringify(e.payload))),
          h("td", {}, h("code", { title: e.hash }, (e.hash || "").slice(0, 10))));
      }))));
}
