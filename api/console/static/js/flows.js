// Flows: the list (search by namespace, text and label), the editor page (flow_editor.js),
// revisions with a diff, the run form and the flow's executions.

import { can, get, query, request } from "./api.js";
import { BLUEPRINTS } from "./blueprints.js";
import { lineDiff } from "./diff.js";
import { debounce, errorBox, h, mount, stateBadge, when } from "./dom.js";
import { executionsTable } from "./executions.js";
import { formData, inputFields } from "./forms.js";
import { editor, setFlash } from "./flow_editor.js";
import { navigate } from "./main.js";

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
      setFlash(`Restored revision ${chosen.revision} as revision ${saved.revision}`);
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

