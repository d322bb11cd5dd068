// Completion for flow YAML: task and trigger types after `type:`, a type's properties as keys of its
// mapping, and a flow's top-level keys. Types come from GET /plugins and each type's properties from
// GET /plugins/{cls} (fetched once per type, when first needed). YAML context is read from the lines'
// indentation, which stays readable while the document is half typed (a parser would give up).

import { get } from "./api.js";

const FLOW_KEYS = [
  "id", "namespace", "description", "labels", "inputs", "variables", "tasks", "errors", "finally",
  "afterExecution", "triggers", "pluginDefaults", "concurrency", "outputs", "retry", "sla", "disabled", "checks",
];
const TASK_LISTS = new Set(["tasks", "then", "else", "errors", "finally", "_finally", "afterExecution", "onResume"]);

let catalogue = null;
const docs = new Map();

function loadCatalogue() {
  catalogue ??= get("/plugins")
    .then((groups) => ({ tasks: groups.flatMap((g) => g.tasks), triggers: groups.flatMap((g) => g.triggers) }))
    .catch(() => {
      catalogue = null; // ask again next time rather than complete from nothing for good
      return { tasks: [], triggers: [] };
    });
  return catalogue;
}

function loadDoc(cls) {
  if (!docs.has(cls)) docs.set(cls, get(`/plugins/${encodeURIComponent(cls)}`).catch(() => null));
  return docs.get(cls);
}

// A line as the completion sees it: the column its key starts at, the key, whether it opens a list item.
function shape(text) {
  if (!text.trim() || text.trimStart().startsWith("#")) return null;
  const [, indent, dash, rest] = /^(\s*)(-\s+)?(.*)$/.exec(text);
  const pair = /^([^\s:#][^:#]*?)\s*:(?:\s+|$)(.*)$/.exec(rest);
  return {
    indent: indent.length,
    item: Boolean(dash),
    col: indent.length + (dash ? dash.length : 0),
    key: pair ? pair[1].replace(/^["']|["']$/g, "") : null,
    value: pair ? pair[2].replace(/\s+#.*$/, "").trim().replace(/^["']|["']$/g, "") : null,
  };
}

// The keys (and their values) of the mapping whose keys start at `col`, around line `at`.
function mappingKeys(doc, at, col) {
  const keys = new Map();
  const here = shape(doc.line(at).text);
  if (!(here && here.item && here.col === col)) {
    for (let i = at - 1; i >= 1; i--) {
      const s = shape(doc.line(i).text);
      if (!s || s.col > col) continue;
      if (s.col < col) break;
      if (s.key) keys.set(s.key, s.value);
      if (s.item) break; // the list item this mapping starts with
    }
  }
  for (let i = at + 1; i <= doc.lines; i++) {
    const s = shape(doc.line(i).text);
    if (!s || s.col > col) continue;
    if (s.col < col || s.item) break;
    if (s.key) keys.set(s.key, s.value);
  }
  return keys;
}

// The key lines enclosing a mapping at `col`, nearest first: ["tasks", ...] for a task at the top level.
function ancestors(doc, at, col) {
  const found = [];
  for (let i = at - 1; i >= 1 && col > 0; i--) {
    const s = shape(doc.line(i).text);
    if (!s || s.col >= col) continue;
    if (s.key) found.push(s.key);
    col = s.col;
  }
  return found;
}

function typeOptions(classes, kind) {
  return classes.map((cls) => ({ label: cls, type: "class", detail: `${cls.split(".").pop()} · ${kind}` }));
}

async function completeType(context, line, value) {
  const from = context.pos - value.length;
  const s = shape(line.text);
  const parents = ancestors(context.state.doc, line.number, s.col);
  const { tasks, triggers } = await loadCatalogue();
  let options = typeOptions(tasks, "task");
  if (parents[0] === "triggers") options = typeOptions(triggers, "trigger");
  else if (parents[0] === "pluginDefaults") options = [...options, ...typeOptions(triggers, "trigger")];
  return { from, options, validFor: /^[\w.]*$/ };
}

async function completeKey(context, line, word) {
  const s = shape(line.text) || { col: context.pos - line.from - word.length, item: false };
  const col = s.col;
  const doc = context.state.doc;
  const present = mappingKeys(doc, line.number, col);
  const parents = ancestors(doc, line.number, col);
  const from = context.pos - word.length;
  const unused = (names) => names.filter((name) => !present.has(name));
  if (col === 0 && !parents.length) {
    return { from, options: unused(FLOW_KEYS).map((k) => ({ label: k, type: "property", apply: `${k}: ` })), validFor: /^[\w-]*$/ };
  }
  // Under pluginDefaults' `values:` the properties are those of the entry's `type`.
  let type = present.get("type");
  if (parents[0] === "values") {
    const entry = ancestorMapping(doc, line.number, col);
    type = entry ? entry.get("type") : null;
  }
  if (!type) {
    const inList = TASK_LISTS.has(parents[0]) || parents[0] === "triggers";
    return inList ? { from, options: unused(["id", "type"]).map((k) => ({ label: k, type: "property", apply: `${k}: ` })) } : null;
  }
  const described = await loadDoc(type);
  if (!described) return null;
  const schema = described.schema.properties;
  const required = new Set(schema.required || []);
  const options = unused(Object.keys(schema.properties)).map((name) => {
    const prop = schema.properties[name] || {};
    return {
      label: name,
      type: "property",
      detail: [required.has(name) ? "required" : null, prop.type].filter(Boolean).join(" · "),
      info: prop.title || prop.description || undefined,
      boost: required.has(name) ? 2 : 0,
      apply: `${name}: `,
    };
  });
  return { from, options, validFor: /^[\w-]*$/ };
}

// The keys of the mapping that holds the key line enclosing line `at` (for `values:` inside a pluginDefaults entry).
function ancestorMapping(doc, at, col) {
  for (let i = at - 1; i >= 1; i--) {
    const s = shape(doc.line(i).text);
    if (s && s.col < col) return mappingKeys(doc, i, s.col);
  }
  return null;
}

// The completion source given to CodeMirror's autocompletion().
export async function flowCompletions(context) {
  const line = context.state.doc.lineAt(context.pos);
  const before = line.text.slice(0, context.pos - line.from);
  const typed = /^\s*(?:-\s+)?type:\s*["']?([\w.]*)$/.exec(before);
  if (typed) return completeType(context, line, typed[1]);
  const key = /^\s*(?:-\s+)?([\w-]*)$/.exec(before);
  if (key && (key[1] || context.explicit)) return completeKey(context, line, key[1]);
  return null;
}
