// Triggers: each schedule trigger with its last and next fire; enable/disable, unlock and backfill (start,
// pause, resume, cancel) for those allowed. Every action asks first and says what it will do.

import { can, get, query, request } from "./api.js";
import { errorBox, h, mount, when } from "./dom.js";
import { actionButton, actionGroup } from "./actions.js";
import { keepInAddress, namespaceField } from "./namespaces.js";

const shortType = (type) => (type || "").split(".").pop();

function backfillCell(context) {
  const b = context.backfill;
  if (!b) return h("span", { class: "muted" }, "—");
  return h("span", { class: "backfill", dataset: { paused: String(b.paused) } },
    `${when(b.start)} → ${when(b.end)}`, h("br"), h("small", { class: "muted" }, `${b.paused ? "paused" : "next slot"} ${when(b.currentDate)}`));
}

function backfillForm(context, done) {
  const start = h("input", { type: "datetime-local", class: "backfill-start", required: true, "aria-label": "Backfill from" });
  const end = h("input", { type: "datetime-local", class: "backfill-end", required: true, "aria-label": "Backfill to" });
  const status = h("span", { class: "row-status" });
  const group = actionGroup();
  const key = { namespace: context.namespace, flowId: context.flowId, triggerId: context.triggerId };
  const go = actionButton({ label: "Start backfill", cls: "small primary start-backfill", method: "PUT", path: "/triggers", group, status, done,
    json: () => ({ ...key, backfill: { start: new Date(start.value).toISOString(), end: new Date(end.value).toISOString() } }),
    confirmText: () => (start.value && end.value
      ? `Backfill ${context.flowId}.${context.triggerId} from ${when(new Date(start.value).toISOString())} to ${when(new Date(end.value).toISOString())}? The scheduler starts one execution per schedule slot in that range, labelled system.backfill.`
      : (mount(status, h("span", { class: "bad" }, "Give a start and an end.")), null)) });
  return h("form", { class: "backfill-form filters", onsubmit: (e) => e.preventDefault() }, start, end, go, status);
}

function row(item, reload) {
  const c = item.triggerContext;
  const ns = c.namespace;
  const name = `${c.namespace}.${c.flowId}.${c.triggerId}`;
  const status = h("span", { class: "row-status" });
  const group = actionGroup();
  const key = { namespace: ns, flowId: c.flowId, triggerId: c.triggerId };
  const act = (label, cls, method, path, json, confirmText) => actionButton({ label, cls: `small ${cls}`, method, path, json, confirmText, group, status, done: reload });
  const buttons = [];
  const extra = h("div", { class: "backfill-slot" });
  if (can("flow.write", ns)) {
    buttons.push(c.disabled
      ? act("Enable", "enable", "PUT", "/triggers", { ...key, disabled: false }, `Enable ${name}? It fires again from its next slot; the slots it missed while disabled are not fired.`)
      : act("Disable", "disable", "PUT", "/triggers", { ...key, disabled: true }, `Disable ${name}? It stops firing until it is enabled again.`));
    buttons.push(act("Unlock", "unlock", "POST", `/triggers/${encodeURIComponent(ns)}/${encodeURIComponent(c.flowId)}/${encodeURIComponent(c.triggerId)}/unlock`, undefined,
      `Unlock ${name}? It is rescheduled at its next slot from now and forgets the execution it was waiting for.`));
    if (!c.backfill) {
      const open = h("button", { type: "button", class: "small open-backfill" }, "Backfill…");
      open.addEventListener("click", () => { mount(extra, backfillForm(c, reload)); open.hidden = true; });
      buttons.push(open);
    }
  }
  if (c.backfill && can("execution.run", ns)) {
    buttons.push(c.backfill.paused
      ? act("Resume backfill", "unpause-backfill", "PUT", "/triggers/backfill/unpause", key, `Resume the backfill of ${name} from ${when(c.backfill.currentDate)}?`)
      : act("Pause backfill", "pause-backfill", "PUT", "/triggers/backfill/pause", key, `Pause the backfill of ${name}? No more slots fire until it is resumed.`));
    buttons.push(act("Cancel backfill", "danger delete-backfill", "POST", "/triggers/backfill/delete", key,
      `Cancel the backfill of ${name}? The executions it already started keep running; the remaining slots never fire.`));
  }
  return h("tr", { dataset: { trigger: name, disabled: String(Boolean(c.disabled)) } },
    h("td", {}, h("a", { href: `/ui/flows/${encodeURIComponent(ns)}/${encodeURIComponent(c.flowId)}` }, `${ns}.${c.flowId}`)),
    h("td", {}, h("strong", {}, c.triggerId), h("br"), h("small", { class: "muted" }, shortType(item.abstractTrigger.type))),
    h("td", { class: "nowrap", "data-label": "Last fire" }, c.date ? when(c.date) : "never", c.executionId ? [h("br"), h("a", { href: `/ui/executions/${c.executionId}`, class: "small" }, c.executionId.slice(0, 10))] : null),
    h("td", { class: "nowrap next-fire", "data-label": "Next fire" }, c.disabled ? h("span", { class: "muted" }, "disabled") : when(c.nextExecutionDate)),
    h("td", {}, h("span", { class: `tag ${c.disabled ? "off" : "on"}` }, c.disabled ? "disabled" : "enabled")),
    h("td", { "data-label": "Backfill" }, backfillCell(c)),
    h("td", { class: "actions-cell" }, h("div", { class: "actions" }, buttons), extra, status));
}

export async function triggersPage(app) {
  const params = new URLSearchParams(location.search);
  const { input: namespace, list } = namespaceField("triggers-namespace", params.get("namespace"));
  namespace.required = false;
  namespace.placeholder = "namespace (prefix; empty for all)";
  const flowId = h("input", { id: "triggers-flow", placeholder: "flow id", value: params.get("flowId") || "" });
  const results = h("div", { id: "triggers" });
  let asked = 0;
  const load = async () => {
    const mine = ++asked;
    const filters = { namespace: namespace.value.trim(), flowId: flowId.value.trim() };
    keepInAddress("/ui/triggers", filters);
    try {
      const found = await get(`/triggers/search${query({ ...filters, size: 500 })}`);
      if (mine !== asked) return;
      mount(results, found.results.length
        ? h("div", { class: "scroll-x" }, h("table", { class: "grid", id: "trigger-list" },
          h("thead", {}, h("tr", {}, ["Flow", "Trigger", "Last fire", "Next fire", "Status", "Backfill", ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, found.results.map((item) => row(item, load)))))
        : h("p", { class: "muted", id: "no-triggers" }, "No schedule trigger here."),
      h("p", { class: "muted small" }, `${found.total} trigger(s).`));
    } catch (e) {
      mount(results, errorBox(e));
    }
  };
  const form = h("form", { class: "filters", id: "triggers-form" }, namespace, list, flowId, h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  mount(app, h("div", { class: "page-head" }, h("h1", {}, "Triggers")), form, results);
  await load();
}
