// Namespace KV: a namespace's keys (kv.read), one key's typed value, and setting or deleting keys (kv.write).
// A value is sent as Kestra's body literal: its type is chosen here, so a person types text, not JSON quoting.

import { can, get, request } from "./api.js";
import { errorBox, h, json, mount, when } from "./dom.js";
import { keepInAddress, namespaceField } from "./namespaces.js";

const TYPES = ["STRING", "NUMBER", "BOOLEAN", "JSON", "DATE", "DATETIME", "DURATION"];
const path = (ns, key) => `/namespaces/${encodeURIComponent(ns)}/kv${key === undefined ? "" : `/${encodeURIComponent(key)}`}`;

// Kestra's literal for each type: a STRING or DURATION is a JSON string, the others are written bare.
export function literal(type, text) {
  if (type === "STRING" || type === "DURATION") return JSON.stringify(text);
  return text.trim();
}

// The API types a bare word as STRING: a value that does not read as its chosen type is refused here, so
// "twelve" chosen as a NUMBER is not stored as text. JSON is left to the API, which names what is wrong.
const SHAPES = {
  NUMBER: [/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/, "a number such as 42 or 1.5"],
  BOOLEAN: [/^(true|false)$/, "true or false"],
  DATE: [/^\d{4}-\d{2}-\d{2}$/, "a date such as 2026-01-31"],
  DATETIME: [/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[-+]\d{2}:\d{2})$/, "a date-time such as 2026-01-31T10:00:00Z"],
  DURATION: [/^-?P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$/, "an ISO-8601 duration such as PT5M"],
};
export function shapeError(type, text) {
  const shape = SHAPES[type];
  return shape && !shape[0].test(text.trim()) ? `value: ${type} needs ${shape[1]}` : null;
}

function editor(ns, done, initial = {}) {
  const key = h("input", { id: "kv-key", name: "key", placeholder: "key", required: true, value: initial.key || "", readonly: initial.key ? true : null });
  const type = h("select", { id: "kv-type", name: "type" }, TYPES.map((t) => h("option", { value: t, selected: t === (initial.type || "STRING") }, t)));
  const text = initial.value === undefined ? "" : typeof initial.value === "string" ? initial.value : JSON.stringify(initial.value, null, 2);
  const value = h("textarea", { id: "kv-value", name: "value", rows: 3, placeholder: "value" }, text);
  const ttl = h("input", { id: "kv-ttl", name: "ttl", placeholder: "time to live, e.g. PT1H (optional)" });
  const description = h("input", { id: "kv-description", name: "description", placeholder: "description (optional)", value: initial.description || "" });
  const status = h("div", { id: "kv-status" });
  const save = h("button", { type: "submit", class: "primary", id: "kv-save" }, initial.key ? "Save new value" : "Set key");
  const form = h("form", { class: "card kv-form", id: "kv-form" }, h("h2", {}, initial.key ? `Edit ${initial.key}` : "Set a key"),
    h("div", { class: "filters" }, key, type, ttl, description), value, h("div", { class: "actions" }, save), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wrong = shapeError(type.value, value.value);
    if (wrong) {
      mount(status, errorBox(new Error(wrong)));
      return;
    }
    save.disabled = true; // one PUT per click: a double-click must not write twice
    const headers = { "Content-Type": "text/plain" };
    if (ttl.value.trim()) headers.ttl = ttl.value.trim();
    if (description.value.trim()) headers.description = description.value.trim();
    try {
      await request("PUT", path(ns, key.value.trim()), { body: literal(type.value, value.value), headers });
      mount(status, h("p", { class: "ok", id: "kv-saved" }, `Saved ${key.value.trim()}.`));
      await done(key.value.trim());
    } catch (e) {
      mount(status, errorBox(e));
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

export async function kvPage(app) {
  const params = new URLSearchParams(location.search);
  const { input: namespace, list } = namespaceField("kv-namespace", params.get("namespace"));
  const keys = h("div", { id: "kv-keys" });
  const shown = h("div", { id: "kv-shown" });
  const side = h("div", { id: "kv-edit" });

  const show = async (ns, key) => {
    try {
      const entry = await get(path(ns, key));
      const writable = can("kv.write", ns);
      mount(shown, h("section", { class: "card", id: "kv-entry", dataset: { key } },
        h("div", { class: "page-head" }, h("h2", {}, key), h("span", { class: "tag", id: "kv-entry-type" }, entry.type),
          h("span", { class: "muted" }, `revision ${entry.revision} · updated ${when(entry.updated)}`),
          writable ? h("span", { class: "actions" }, h("button", { type: "button", id: "kv-edit-button", onclick: () => mount(side, editor(ns, (k) => reload(ns, k), { key, type: entry.type, value: entry.value })) }, "Edit")) : null),
        json(entry.value)));
    } catch (e) {
      mount(shown, errorBox(e));
    }
  };

  const remove = async (ns, key, button) => {
    if (!confirm(`Delete key ${key} of ${ns}? Flows reading it with kv('${key}') get nothing from then on.`)) return;
    button.disabled = true;
    try {
      const deleted = await request("DELETE", path(ns, key));
      mount(shown, h("p", { class: deleted ? "ok" : "muted", id: "kv-deleted" }, deleted ? `Deleted ${key}.` : `${key} was already gone.`));
      await loadKeys(ns);
    } catch (e) {
      mount(shown, errorBox(e));
      button.disabled = false;
    }
  };

  const loadKeys = async (ns) => {
    const writable = can("kv.write", ns);
    try {
      const entries = await get(path(ns));
      mount(keys, h("section", { class: "card" }, h("div", { class: "section-head" }, h("h2", {}, `Keys of ${ns}`),
        writable ? h("button", { type: "button", id: "kv-new", onclick: () => mount(side, editor(ns, (k) => reload(ns, k))) }, "New key") : null),
      entries.length
        ? h("div", { class: "scroll-x" }, h("table", { class: "grid", id: "kv-list" },
          h("thead", {}, h("tr", {}, ["Key", "Description", "Updated", "Expires", ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, entries.map((e) => {
            const del = writable ? h("button", { type: "button", class: "small danger kv-delete" }, "Delete") : null;
            if (del) del.addEventListener("click", () => remove(ns, e.key, del));
            return h("tr", { dataset: { key: e.key } },
              h("td", {}, h("button", { type: "button", class: "linkish kv-show", onclick: () => show(ns, e.key) }, e.key)),
              h("td", {}, e.description || ""), h("td", { class: "nowrap" }, when(e.updateDate)),
              h("td", { class: "nowrap" }, e.expirationDate ? when(e.expirationDate) : "never"), h("td", {}, del));
          }))))
        : h("p", { class: "muted", id: "kv-empty" }, "No key in this namespace.")));
    } catch (e) {
      mount(keys, errorBox(e));
    }
  };

  const reload = async (ns, key) => {
    await loadKeys(ns);
    if (key) await show(ns, key);
  };

  const form = h("form", { class: "filters", id: "kv-namespace-form" }, namespace, list, h("button", { type: "submit", class: "primary" }, "Show keys"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ns = namespace.value.trim();
    keepInAddress("/ui/kv", { namespace: ns });
    mount(shown);
    mount(side);
    if (!can("kv.read", ns)) {
      mount(keys, h("p", { class: "muted", id: "kv-no-access" }, `Your role cannot read the KV store of ${ns}.`));
      return;
    }
    await loadKeys(ns);
  });
  mount(app, h("div", { class: "page-head" }, h("h1", {}, "Namespace KV")), form, side, shown, keys);
  if (namespace.value.trim()) form.requestSubmit();
}
