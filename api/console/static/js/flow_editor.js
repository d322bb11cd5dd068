// The flow editor page's body: CodeMirror (editor.js, loaded on first use) beside the flow's live topology,
// the validator's problems, saving (button or Ctrl/Cmd+S) and the guard against leaving with unsaved edits.

import { can, request } from "./api.js";
import { debounce, errorBox, h, mount } from "./dom.js";
import { navigate, setLeaveGuard } from "./main.js";
import { topology } from "./topology.js";

// A message that must outlive the re-render a save causes ("Saved revision N"), shown once by the next editor.
let flash = null;

export function setFlash(text) {
  flash = text;
}

// The editor: CodeMirror (editor.js) beside the flow's topology, both following every change. Each change
// is validated by POST /flows/validate: errors become diagnostics at their line and column and are listed
// with their field path, a link scrolling to each. Unsaved edits are guarded (leaving asks first); Ctrl/Cmd+S saves.
export async function editor(source, flow) {
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

