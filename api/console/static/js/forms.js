// Forms generated from a flow's typed inputs (the run form) or a Pause task's `onResume` inputs (approvals).

import { h } from "./dom.js";

function control(input) {
  const id = `input-${input.id}`;
  const type = (input.type || "STRING").toUpperCase();
  const common = { id, name: input.id, required: isRequired(input) };
  const initial = input.defaults ?? input.default;
  const values = input.values || input.options;
  if ((type === "ENUM" || type === "SELECT" || type === "MULTISELECT") && Array.isArray(values)) {
    return h(
      "select",
      { ...common, multiple: type === "MULTISELECT" },
      values.map((v) => h("option", { value: v, selected: v === initial }, v)),
    );
  }
  if (type === "BOOLEAN" || type === "BOOL") {
    return h("input", { ...common, type: "checkbox", required: false, checked: initial === true || initial === "true" });
  }
  if (type === "JSON" || type === "ARRAY" || type === "YAML") {
    const text = initial === undefined ? "" : typeof initial === "string" ? initial : JSON.stringify(initial);
    const area = h("textarea", { ...common, rows: 3 });
    area.value = text;
    return area;
  }
  const kinds = { INT: "number", INTEGER: "number", FLOAT: "number", NUMBER: "number", SECRET: "password", FILE: "file",
    DATE: "date", TIME: "time", EMAIL: "email", URI: "url" };
  const el = h("input", { ...common, type: kinds[type] || "text", step: type === "FLOAT" || type === "NUMBER" ? "any" : undefined });
  if (initial !== undefined && type !== "FILE") el.value = String(initial);
  if (type === "DATETIME") el.placeholder = "2026-01-01T10:00:00Z";
  if (type === "DURATION") el.placeholder = "PT5M";
  return el;
}

export function inputFields(inputs) {
  return (inputs || []).map((input) =>
    h(
      "label",
      { class: "field", dataset: { input: input.id } },
      h("span", { class: "field-name" }, input.displayName || input.id, " ", h("code", { class: "muted" }, (input.type || "STRING").toUpperCase()),
        isRequired(input) ? h("span", { class: "required", title: "required" }, " *") : null),
      control(input),
      input.description ? h("small", { class: "muted" }, input.description) : null,
    ),
  );
}

function isRequired(input) {
  return input.required !== false && input.defaults === undefined;
}

// Multipart parts as Kestra's clients send them: strings as plain parts, files as file parts.
export function formData(form, inputs) {
  const data = new FormData();
  for (const input of inputs || []) {
    const el = form.elements.namedItem(input.id);
    if (!el) continue;
    const type = (input.type || "STRING").toUpperCase();
    if (type === "FILE") {
      if (el.files && el.files[0]) data.append(input.id, el.files[0]);
    } else if (type === "BOOLEAN" || type === "BOOL") {
      data.append(input.id, el.checked ? "true" : "false");
    } else if (el.multiple) {
      data.append(input.id, JSON.stringify([...el.selectedOptions].map((o) => o.value)));
    } else if (el.value !== "") {
      data.append(input.id, el.value);
    }
  }
  return data;
}
