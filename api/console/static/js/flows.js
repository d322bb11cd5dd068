// Flows: the list (search by namespace, text and label), the YAML editor with live validation and topology,
// revisions with a diff, the run form and the flow's executions.

import { can, get, query, request } from "./api.js";
import { BLUEPRINTS } from "./blueprints.js";
import { lineDiff } from "./diff.js";
import { debounce, errorBox, h, mount, stateBadge, when } from "./dom.js";
import { executionsTable } from "./executions.js";
import { formData, inputFields } from "./forms.js";
import { navigate, setLeaveGuard } from "./main.js";
import { topology } from "./topology.js";

// A message that must outlive the re-render a save causes ("Saved revision N"), shown once by the next editor.
let flash = null;

const TEMPLATE = `id: hello
namespace: company.team
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }}"
`;

export async function flowsPage(app) {
  const params = new URLSearchParams(location.search);
  const namespaces = await get("/flows/distinct-namespaces");
  const nsSelect = h("select", { name: "namespace", id: "filter-namespace" }, h("option", { value: "" }, "All namespaces"),
    namespaces.map((ns) => h("option", { value: ns, selected: ns === params.get("namespace") }, ns)));
  const q = h("input", { name: "q", id: "filter-q", placeholder: "Search flows", value: params.get("q") || "" });
  const label = h("input", { name: "labels", id: "filter-label", placeholder: "label key:value", value: params.get("labels") || "" });
  const results = h("div", { id: "flow-list" });
  const load = async () => {
    const filters = { namespace: nsSelect.value, q: q.value, labels: label.value, size: 100 };
    history.replaceState({}, "", `/ui/flows${query({ namespace: filters.namespace, q: filters.q, labels: filters.labels })}`);
    try {
      // One request for the last runs: the newest 200 executions in scope, the first seen per flow is its last.
      const [page, recent] = await Promise.all([
        get(`/flows/search${query(filters)}`),
        get(`/executions/search${query({ namespace: filters.namespace, size: 200, sort: "state.startDate:desc" })}`).catch(() => ({ results: [] })),
      ]);
      const last = new Map();
      for (const e of recent.results) if (!last.has(`${e.namespace}.${e.flowId}`)) last.set(`${e.namespace}.${e.flowId}`, e);
      mount(results, flowTable(page.results, last), h("p", { class: "muted" }, `${page.total} flow(s)`));
    } catch (e) {
      mount(results, errorBox(e));
    }
  };
  const reload = debounce(load, 250);
  for (const el of [nsSelect, q, label]) el.addEventListener("input", reload);
  mount(
    app,
    h("div", { class: "page-head" }, h("h1", {}, "Flows"),
      can("flow.write") ? h("a", { href: "/ui/flows/new", class: "button primary", id: "new-flow" }, "New flow") : null),
    h("div", { class: "filters" }, nsSelect, q, label),
    results,
  );
  await load();
}

function flowTable(flows, last) {
  return h("div", { class: "scroll-x" }, h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, h("th", {}, "Namespace"), h("th", {}, "Flow"), h("th", {}, "Last run"), h("th", { class: "wide-only" }, "Revision"),
      h("th", { class: "wide-only" }, "Labels"), h("th", { class: "wide-only" }, "Updated"))),
    h("tbody", {}, flows.map((f) => {
      const run = last.get(`${f.namespace}.${f.id}`);
      return h("tr", { dataset: { flow: `${f.namespace}.${f.id}` } },
        h("td", {}, f.namespace),
        h("td", {}, h("a", { href: `/ui/flows/${encodeURIComponent(f.namespace)}/${encodeURIComponent(f.id)}` }, f.id),
          f.disabled ? h("span", { class: "tag" }, "disabled") : null),
        h("td", { class: "last-run" }, run ? h("a", { href: `/ui/executions/${run.id}`, title: when(run.state.startDate) }, stateBadge(run.state.current)) : h("span", { class: "muted" }, "—")),
        h("td", { class: "wide-only" }, String(f.revision)),
        h("td", { class: "wide-only" }, (f.labels || []).map((l) => h("span", { class: "tag" }, `${l.key}:${l.value}`))),
        h("td", { class: "wide-only" }, when(f.updated)));
    }))));
}

export async function newFlowPage(app) {
  const wrap = await editor(TEMPLATE, null);
  let shown = TEMPLATE;
  const pick = h("select", { id: "blueprint" }, h("option", { value: "" }, "Start from a blueprint…"),
    BLUEPRINTS.map((b) => h("option", { value: b.id }, b.title)));
  pick.addEventListener("change", () => {
    const chosen = BLUEPRINTS.find((b) => b.id === pick.value);
    if (!chosen) return;
    // Typing over a blueprint is work: replacing it asks first.
    if (wrap.code.text() !== shown && !confirm("Replace what you typed with this blueprint?")) {
      pick.value = "";
      return;
    }
    shown = chosen.source;
    wrap.code.setText(shown);
  });
  mount(app, h("div", { class: "page-head" }, h("h1", {}, "New flow"), pick), wrap);
}

export async function flowPage(namespace, flowId, tab, app) {
  const flow = await get(`/flows/${encodeURIComponent(namespace)}/${encodeURIComponent(flowId)}?source=true`);
  const base = `/ui/flows/${encodeURIComponent(namespace)}/${encodeURIComponent(flowId)}`;
  const tabs = [["editor", "Editor"], ["revisions", "Revisions"], ["run", "Run"], ["executions", "Executions"]];
  const body = h("section", { class: "tab-body" });
  mount(
    app,
    h("div", { class: "page-head" }, h("h1", {}, h("span", { class: "muted" }, `${namespace} / `), flowId),
      h("span", { class: "muted" }, `revision ${flow.revision}`)),
    h("nav", { class: "tabs" }, tabs.map(([key, label]) =>
      h("a", { href: `${base}/${key}`, class: key === tab ? "active" : "", id: `tab-${key}` }, label))),
    body,
  );
  if (tab === "editor") mount(body, await editor(flow.source, flow));
  else if (tab === "revisions") await revisions(body, flow);
  else if (tab === "run") runForm(body, flow);
  else if (tab === "executions") {
    // The flow listing endpoint matches the namespace exactly (search's `namespace` is a prefix).
    const page = await get(`/executions${query({ namespace, flowId, size: 50 })}`);
    mount(body, executionsTable(page.results));
  }
}

// The editor: CodeMirror (editor.js) beside the flow's topology, both following every change. Each change
// is validated by POST /flows/validate: errors become diagnostics at their line and column and are listed
// with their field path, a link scrolling to each. Unsaved edits are guarded (leaving asks first); Ctrl/Cmd+S saves.
async function editor(source, flow) {
  // CodeMirror (half a megabyte) is fetched by the pages that edit, not by every page of the console.
  const { codeEditor, parseDocument } = await import("./editor.js");
  const writable = can("flow.write", flow ? flow.namespace : null);
  const problems = h("div", { id: "problems", class: "problems" });
  const status = h("div", { id: "save-status" });
  const graph = h("div", { id: "editor-topology", class: "editor-topology" });
  if (flash) mount(status, h("span", { class: "ok", id: "saved" }, flash));
  flash = null;
  let saved = source;
  const unsaved = h("span", { class: "unsaved", id: "unsaved", hidden: true }, "● unsaved changes");
  const code = codeEditor({
    source,
    readOnly: !writable,
    onChange: () => { validate(); redraw(); unsaved.hidden = !dirty(); },
    onSave: () => save(),
  });
  const dirty = () => writable && code.text() !== saved;
  setLeaveGuard((unloading) => !dirty() || (!unloading && confirm("This flow has unsaved changes. Leave and lose them?")));
  let errors = [];
  const showProblems = (found, message, warnings = []) => {
    code.showProblems(found, warnings);
    errors = found;
    markTasks(graph, errors);
    const notes = warnings.map((w) => h("li", { class: "warning", dataset: { line: w.line ?? "" } }, "warning: ", w.text));
    if (!found.length && !message) {
      mount(problems, h("span", { class: "ok", id: "valid" }, "✓ valid"), notes.length ? h("ul", { class: "warnings" }, notes) : null);
      return;
    }
    mount(problems, h("ul", {}, found.length
      ? found.map((e) => h("li", { class: "problem", dataset: { line: e.line ?? "", column: e.column ?? "" } },
        e.line ? h("a", { href: "#", class: "goto", onclick: (ev) => { ev.preventDefault(); code.gotoLine(e.line, e.column); } },
          e.column ? `line ${e.line}, column ${e.column}` : `line ${e.line}`) : "",
        e.line ? ": " : "", h("code", {}, e.path || ""), " ", e.message, e.suggestion ? ` (did you mean ${e.suggestion}?)` : ""))
      : h("li", { class: "problem" }, message), notes));
  };
  // Answers can arrive out of order while typing: only the newest request's answer is shown.
  let asked = 0;
  const validate = debounce(async () => {
    const ticket = ++asked;
    const text = code.text();
    try {
      const [verdict] = await request("POST", "/flows/validate", { body: text, headers: { "Content-Type": "application/x-yaml" } });
      if (ticket !== asked) return;
      showProblems(verdict ? verdict.errors || [] : [], verdict ? verdict.constraints : null, (verdict?.warnings || []).map(locatedWarning));
    } catch (e) {
      if (ticket === asked) showProblems(e.errors || [], e.message);
    }
  }, 300);
  const redraw = debounce(() => { drawTopology(graph, code, parseDocument); markTasks(graph, errors); }, 200);
  let saving = false;
  const save = async () => {
    if (!writable || saving) return;
    saving = true;
    mount(status, h("span", { class: "muted" }, "Saving…"));
    const text = code.text();
    try {
      const answer = flow
        ? await request("PUT", `/flows/${encodeURIComponent(flow.namespace)}/${encodeURIComponent(flow.id)}`, { body: text, headers: { "Content-Type": "application/x-yaml" } })
        : await request("POST", "/flows", { body: text, headers: { "Content-Type": "application/x-yaml" } });
      saved = text;
      unsaved.hidden = !dirty();
      const said = flow && answer.revision === flow.revision ? `No change: still revision ${answer.revision}` : `Saved revision ${answer.revision}`;
      mount(status, h("span", { class: "ok", id: "saved" }, said));
      if (!flow || answer.revision !== flow.revision) {
        flash = said;
        navigate(`/ui/flows/${encodeURIComponent(answer.namespace)}/${encodeURIComponent(answer.id)}/editor`);
      }
    } catch (e) {
      showProblems(e.errors || [], e.message);
      mount(status, errorBox(e));
    } finally {
      saving = false;
    }
  };
  drawTopology(graph, code, parseDocument);
  validate();
  const wrap = h("div", { class: "editor-wrap" },
    h("div", { class: "editor-grid" },
      h("div", { class: "editor", id: "flow-source", dataset: { readonly: String(!writable) } }, code.dom),
      h("aside", { class: "card editor-side" }, h("h2", {}, "Topology"), graph)),
    problems,
    h("div", { class: "actions" },
      writable ? h("button", { class: "primary", id: "save-flow", onclick: save, title: "Ctrl+S / ⌘S" }, flow ? "Save" : "Create") : h("span", { class: "muted" }, "Read only: your role cannot change flows here."),
      unsaved, status));
  wrap.code = code; // the new-flow page puts a blueprint in
  return wrap;
}

// The validator's warnings are text naming their place, "path (line L, column C): message".
function locatedWarning(text) {
  const m = /\(line (\d+)(?:, column (\d+))?\)/.exec(text);
  return { text, line: m ? Number(m[1]) : null, column: m && m[2] ? Number(m[2]) : null, message: text, path: "" };
}

// The flow's tasks as the execution page draws them (no task runs yet), from the YAML as typed. While the
// text does not parse, the last good drawing stays, marked out of date. A node's click shows its task in the code.
function drawTopology(graph, code, parseDocument) {
  const text = code.text();
  const parsed = parseDocument(text);
  const flow = parsed.errors.length ? null : parsed.toJS();
  if (!flow || typeof flow !== "object" || !Array.isArray(flow.tasks)) {
    graph.classList.add("stale");
    if (!graph.firstChild) mount(graph, h("p", { class: "muted" }, "The topology appears once the flow has tasks."));
    return;
  }
  graph.classList.remove("stale");
  graph.flow = flow;
  const drawn = topology(flow, { taskRunList: [] });
  drawn.id = "flow-topology";
  drawn.addEventListener("click", (event) => {
    const node = event.target.closest(".node[data-task]");
    if (!node) return;
    const at = taskLine(code.text(), node.dataset.task);
    if (at) code.gotoLine(at, null);
  });
  mount(graph, drawn);
}

// The task an error is in: the deepest object with an id on its path (`tasks[1].then[0].type`) in the drawn flow.
function taskOfPath(flow, path) {
  let value = flow;
  let found = null;
  for (const part of (path || "").match(/[^.[\]]+/g) || []) {
    if (!value || typeof value !== "object") break;
    value = value[part];
    if (value && typeof value === "object" && !Array.isArray(value) && typeof value.id === "string") found = value.id;
  }
  return found;
}

// Nodes whose task has an error are drawn red, with the messages as their title.
function markTasks(graph, errors) {
  for (const node of graph.querySelectorAll(".node.has-error")) {
    node.classList.remove("has-error");
    node.removeAttribute("title");
  }
  if (!graph.flow) return;
  for (const e of errors) {
    const id = taskOfPath(graph.flow, e.path);
    const node = id && graph.querySelector(`.node[data-task="${CSS.escape(id)}"]`);
    if (!node) continue;
    node.classList.add("has-error");
    node.title = [node.title, `${e.path}: ${e.message}`].filter(Boolean).join("\n");
  }
}

function taskLine(text, taskId) {
  const wanted = new RegExp(`^\\s*(?:-\\s+)?id:\\s*["']?${taskId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']?\\s*(?:#.*)?$`);
  const index = text.split("\n").findIndex((line) => wanted.test(line));
  return index < 0 ? null : index + 1;
}

async function revisions(body, flow) {
  const all = await get(`/flows/${encodeURIComponent(flow.namespace)}/${encodeURIComponent(flow.id)}/revisions`);
  const options = (selected) => all.map((r) => h("option", { value: r.revision, selected: r.revision === selected }, `revision ${r.revision} · ${when(r.updated)}`));
  const left = h("select", { id: "rev-left" }, options(all.length > 1 ? all[all.length - 2].revision : all[0].revision));
  const right = h("select", { id: "rev-right" }, options(all[all.length - 1].revision));
  const out = h("div", { id: "diff" });
  const show = () => {
    const a = all.find((r) => r.revision === Number(left.value));
    const b = all.find((r) => r.revision === Number(right.value));
    const rows = lineDiff(a.source || "", b.source || "");
    const changed = rows.filter((r) => r.op !== " ").length;
    mount(out, h("p", { class: "muted" }, changed ? `${changed} changed line(s)` : "identical"),
      h("pre", { class: "diff" }, rows.map((r) => h("div", { class: `d d${r.op === "+" ? "add" : r.op === "-" ? "del" : "same"}` },
        h("span", { class: "ln" }, r.left ?? ""), h("span", { class: "ln" }, r.right ?? ""), `${r.op} ${r.text}`))));
  };
  left.addEventListener("change", show);
  right.addEventListener("change", show);
  const latest = all[all.length - 1].revision;
  const status = h("span", { id: "restore-status" });
  // Restoring saves the old source as a new revision: history is kept, nothing is rewritten.
  const restore = can("flow.write", flow.namespace) ? h("button", { id: "restore", type: "button", onclick: async (event) => {
    const chosen = all.find((r) => r.revision === Number(left.value));
    if (chosen.revision === latest) {
      mount(status, h("span", { class: "muted" }, `Revision ${latest} is already the current one.`));
      return;
    }
    if (!confirm(`Restore revision ${chosen.revision}? Its source is saved as a new revision ${latest + 1}; no revision is deleted.`)) return;
    event.target.disabled = true;
    try {
      const saved = await request("PUT", `/flows/${encodeURIComponent(flow.namespace)}/${encodeURIComponent(flow.id)}`,
        { body: chosen.source, headers: { "Content-Type": "application/x-yaml" } });
      flash = `Restored revision ${chosen.revision} as revision ${saved.revision}`;
      navigate(`/ui/flows/${encodeURIComponent(flow.namespace)}/${encodeURIComponent(flow.id)}/editor`);
    } catch (e) {
      event.target.disabled = false;
      mount(status, errorBox(e));
    }
  } }, "Restore the left revision") : null;
  mount(body, h("div", { class: "filters" }, "Compare ", left, " with ", right, restore, status), out);
  show();
}

function runForm(body, flow) {
  if (!can("execution.run", flow.namespace)) {
    mount(body, h("p", { class: "muted" }, "Your role cannot run this flow."));
    return;
  }
  const status = h("div", { id: "run-status" });
  const labels = h("input", { name: "__labels", id: "run-labels", placeholder: "key:value, key2:value2" });
  const form = h("form", { class: "card run-form", id: "run-form" },
    inputFields(flow.inputs),
    h("label", { class: "field" }, h("span", { class: "field-name" }, "Labels"), labels),
    h("button", { type: "submit", class: "primary", id: "run-submit" }, "Run"),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const extra = labels.value.split(",").map((s) => s.trim()).filter(Boolean);
    try {
      const execution = await request("POST", `/executions/${encodeURIComponent(flow.namespace)}/${encodeURIComponent(flow.id)}${query({ labels: extra })}`,
        { body: formData(form, flow.inputs) });
      navigate(`/ui/executions/${execution.id}`);
    } catch (e) {
      mount(status, errorBox(e));
    }
  });
  mount(body, form);
}

