// A namespace field shared by the KV, files and triggers pages: free text, suggesting the namespaces the API
// lists to this person (`/namespaces/search`), and kept in the page's address (`?namespace=`).

import { get, query } from "./api.js";
import { h } from "./dom.js";

export function namespaceField(id, value) {
  const list = h("datalist", { id: `${id}-choices` });
  const input = h("input", { id, name: "namespace", placeholder: "namespace", required: true, value: value || "", list: `${id}-choices`, autocomplete: "off" });
  get(`/namespaces/search${query({ size: 200 })}`)
    .then((found) => list.replaceChildren(...found.results.map((n) => h("option", { value: n.id }))))
    .catch(() => {}); // suggestions only: typing a namespace still works
  return { input, list };
}

export function keepInAddress(path, params) {
  history.replaceState({}, "", `${path}${query(params)}`);
}
