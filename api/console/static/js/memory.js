// AI memory: a namespace's agent memories, the turns one remembers, and erasing it (kv.read / kv.write).

import { can, get, query, request } from "./api.js";
import { errorBox, h, mount, when } from "./dom.js";

const path = (ns, id) => `/namespaces/${encodeURIComponent(ns)}/ai/memory${id === undefined ? "" : `/${encodeURIComponent(id)}`}`;

export async function memoryPage(app) {
  const params = new URLSearchParams(location.search);
  const namespace = h("input", { id: "memory-namespace", name: "namespace", placeholder: "namespace", required: true, value: params.get("namespace") || "" });
  const memoryId = h("input", { id: "memory-id", name: "memoryId", placeholder: "memory id (optional)", value: params.get("memoryId") || "" });
  const list = h("div", { id: "memory-list" });
  const shown = h("div", { id: "memory-shown" });
  const status = h("div", { id: "memory-status" });

  const remember = () => history.replaceState({}, "", `/ui/ai-memory${query({ namespace: namespace.value.trim(), memoryId: memoryId.value })}`);

  const loadList = async (ns) => {
    try {
      const found = await get(path(ns));
      mount(list, h("section", { class: "card" }, h("h2", {}, `Memories in ${ns}`), found.results.length
        ? h("table", { class: "grid", id: "memories" },
          h("thead", {}, h("tr", {}, ["Memory id", "Messages", "Last write", ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, found.results.map((m) => h("tr", { dataset: { memory: m.memoryId } },
            h("td", {}, m.memoryId), h("td", {}, String(m.messages)), h("td", {}, when(m.lastWrite)),
            h("td", {}, h("button", { type: "button", class: "link", onclick: () => { memoryId.value = m.memoryId; show(ns, m.memoryId); } }, "Show"))))))
        : h("p", { class: "muted", id: "no-memories" }, "No live memory in this namespace.")));
    } catch (e) {
      mount(list, errorBox(e));
    }
  };

  const show = async (ns, id) => {
    remember();
    mount(status);
    let memory;
    try {
      memory = await get(path(ns, id));
    } catch (e) {
      mount(shown, errorBox(e));
      return;
    }
    const erase = h("button", { type: "button", class: "danger", id: "erase-memory" }, "Erase");
    erase.addEventListener("click", async () => {
      if (!confirm(`Erase memory ${id} of ${ns}? Its ${memory.messages.length} message(s) and past versions are deleted; no agent, replay included, reads them again.`)) return;
      erase.disabled = true;
      mount(status, h("span", { class: "muted" }, "Erasing…"));
      try {
        const answer = await request("DELETE", path(ns, id));
        mount(shown);
        mount(status, h("p", { class: "ok", id: "memory-erased" }, `Erased memory ${answer.memoryId}: ${answer.erased} row(s).`));
        await loadList(ns);
      } catch (e) {
        mount(status, errorBox(e));
        erase.disabled = false;
      }
    });
    mount(shown, h("section", { class: "card", id: "memory", dataset: { memory: id } },
      h("div", { class: "page-head" }, h("h2", {}, `Memory ${id}`),
        h("span", { class: "muted", id: "memory-version" }, `version ${memory.version} · ${memory.totalTokens} tokens · expires ${when(memory.expirationDate)}`),
        can("kv.write", ns) ? h("span", { class: "actions" }, erase) : null),
      h("table", { class: "grid", id: "memory-messages" },
        h("thead", {}, h("tr", {}, ["Role", "Text", "When", "Execution"].map((c) => h("th", {}, c)))),
        h("tbody", {}, memory.messages.map((m) => h("tr", { dataset: { role: m.role } },
          h("td", {}, String(m.role ?? "")), h("td", { class: "msg" }, typeof m.content === "string" ? m.content : JSON.stringify(m.content)),
          h("td", {}, when(m.createdDate)),
          h("td", {}, m.executionId ? h("a", { href: `/ui/executions/${encodeURIComponent(m.executionId)}` }, m.executionId) : "—")))))));
  };

  const form = h("form", { class: "filters", id: "memory-form" }, namespace, memoryId, h("button", { type: "submit", class: "primary" }, "Show"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ns = namespace.value.trim();
    remember();
    mount(shown);
    mount(status);
    await loadList(ns);
    if (memoryId.value) await show(ns, memoryId.value);
  });
  mount(app, h("div", { class: "page-head" }, h("h1", {}, "AI memory")), form, status, shown, list);
  if (namespace.value.trim()) form.requestSubmit();
}
