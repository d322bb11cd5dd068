// Namespace files: browse a namespace's folders (file.read), download a file, upload files or a zip, make a
// folder and delete (file.write). The same files the namespace tasks and `read('/path')` use.

import { BASE, can, get, query, request } from "./api.js";
import { errorBox, h, mount } from "./dom.js";
import { keepInAddress, namespaceField } from "./namespaces.js";

const api = (ns, suffix = "") => `/namespaces/${encodeURIComponent(ns)}/files${suffix}`;
const join = (dir, name) => `${dir.replace(/\/+$/, "")}/${name}`.replace(/^\/*/, "/");
const size = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

export async function filesPage(app) {
  const params = new URLSearchParams(location.search);
  const { input: namespace, list } = namespaceField("files-namespace", params.get("namespace"));
  let dir = params.get("path") || "/";
  const crumbs = h("nav", { class: "crumbs", id: "files-path" });
  const listing = h("div", { id: "files-list" });
  const tools = h("div", { id: "files-tools" });
  const status = h("div", { id: "files-status" });

  const open = async (ns, path) => {
    dir = path || "/";
    keepInAddress("/ui/files", { namespace: ns, path: dir === "/" ? "" : dir });
    const parts = dir.split("/").filter(Boolean);
    mount(crumbs, h("a", { href: "#", dataset: { path: "/" } }, ns), parts.map((p, i) => [" / ", h("a", { href: "#", dataset: { path: `/${parts.slice(0, i + 1).join("/")}` } }, p)]));
    try {
      const entries = await get(`${api(ns, "/directory")}${query({ path: dir })}`);
      const writable = can("file.write", ns);
      mount(listing, entries.length
        ? h("div", { class: "scroll-x" }, h("table", { class: "grid", id: "file-list" },
          h("thead", {}, h("tr", {}, ["Name", "Size", "Modified", ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, entries.map((e) => {
            const path = join(dir, e.fileName);
            const folder = e.type === "Directory";
            const name = folder
              ? h("a", { href: "#", class: "folder", dataset: { path } }, `📁 ${e.fileName}/`)
              : h("a", { class: "download", href: `${BASE}${api(ns)}${query({ path })}`, download: e.fileName }, e.fileName);
            const del = writable ? h("button", { type: "button", class: "small danger file-delete" }, "Delete") : null;
            if (del) del.addEventListener("click", () => remove(ns, path, folder, del));
            return h("tr", { dataset: { path, type: e.type } }, h("td", {}, name), h("td", {}, folder ? "—" : size(e.size)),
              h("td", { class: "nowrap" }, new Date(e.lastModifiedTime).toLocaleString(undefined, { hour12: false })), h("td", {}, del));
          }))))
        : h("p", { class: "muted", id: "files-empty" }, "This folder is empty."));
      mount(tools, writable ? uploadForm(ns) : null);
    } catch (e) {
      mount(listing, errorBox(e));
      mount(tools);
    }
  };

  const remove = async (ns, path, folder, button) => {
    if (!confirm(folder ? `Delete folder ${path} of ${ns} and everything in it?` : `Delete ${path} of ${ns}? Flows reading it get an error from then on.`)) return;
    button.disabled = true;
    try {
      await request("DELETE", `${api(ns)}${query({ path })}`);
      mount(status, h("p", { class: "ok", id: "file-deleted" }, `Deleted ${path}.`));
      await open(ns, dir);
    } catch (e) {
      mount(status, errorBox(e));
      button.disabled = false;
    }
  };

  const uploadForm = (ns) => {
    const file = h("input", { type: "file", id: "file-input", multiple: true, required: true });
    const folder = h("input", { id: "folder-name", placeholder: "new folder name" });
    const send = h("button", { type: "submit", class: "primary", id: "file-upload" }, "Upload");
    const form = h("form", { class: "filters", id: "upload-form" }, h("span", { class: "muted" }, `Upload to ${dir}`), file, send);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!file.files.length) return;
      send.disabled = true;
      try {
        for (const chosen of file.files) {
          const body = new FormData();
          body.append("fileContent", chosen, chosen.name);
          await request("POST", `${api(ns)}${query({ path: join(dir, chosen.name) })}`, { body });
        }
        mount(status, h("p", { class: "ok", id: "file-uploaded" }, `Uploaded ${[...file.files].map((f) => f.name).join(", ")}${[...file.files].some((f) => f.name.toLowerCase().endsWith(".zip")) ? " (a zip is unpacked at the root)" : ""}.`));
        await open(ns, dir);
      } catch (e) {
        mount(status, errorBox(e));
      } finally {
        send.disabled = false;
      }
    });
    const mkdir = h("form", { class: "filters", id: "folder-form" }, folder, h("button", { type: "submit" }, "New folder"));
    mkdir.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!folder.value.trim()) return;
      try {
        await request("POST", `${api(ns, "/directory")}${query({ path: join(dir, folder.value.trim()) })}`);
        await open(ns, join(dir, folder.value.trim()));
      } catch (e) {
        mount(status, errorBox(e));
      }
    });
    return h("section", { class: "card" }, form, mkdir);
  };

  for (const box of [crumbs, listing]) {
    box.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-path]");
      if (!link) return;
      event.preventDefault();
      mount(status);
      open(namespace.value.trim(), link.dataset.path);
    });
  }
  const form = h("form", { class: "filters", id: "files-namespace-form" }, namespace, list, h("button", { type: "submit", class: "primary" }, "Browse"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ns = namespace.value.trim();
    mount(status);
    if (!can("file.read", ns)) {
      mount(crumbs);
      mount(tools);
      mount(listing, h("p", { class: "muted", id: "files-no-access" }, `Your role cannot read the files of ${ns}.`));
      return;
    }
    await open(ns, ns === params.get("namespace") ? dir : "/");
  });
  mount(app, h("div", { class: "page-head" }, h("h1", {}, "Namespace files")), form, crumbs, status, tools, listing);
  if (namespace.value.trim()) form.requestSubmit();
}
