// A replay beside its original, task run by task run (GET /executions/{id}/diff/{original}): which outputs
// are the same, which differ (both shown), and how many model calls reached a provider in each.

import { get } from "./api.js";
import { errorBox, h, json, mount, stateBadge } from "./dom.js";

export async function loadReplayDiff(box, executionId, originalId) {
  try {
    const diff = await get(`/executions/${encodeURIComponent(executionId)}/diff/${encodeURIComponent(originalId)}`);
    mount(box, h("h2", {}, "Compared with the original"), diffView(diff));
  } catch (e) {
    mount(box, h("h2", {}, "Compared with the original"), errorBox(e));
  }
}

function diffView(diff) {
  const mine = diff.execution;
  const theirs = diff.other;
  const served = mine.ledgerReplayOf
    ? `Replayed from the ledger${mine.liveFrom ? `, live from task "${mine.liveFrom}"` : ""}: `
    : "";
  return h("div", {},
    h("p", { id: "diff-summary", class: diff.identical ? "ok" : "bad", dataset: { identical: String(diff.identical) } },
      diff.identical ? "✓ identical outputs" : "≠ outputs differ",
      h("span", { class: "muted" },
        ` · ${served}${mine.providerCalls} provider call(s) here, ${theirs.providerCalls} in the original`)),
    h("table", { class: "grid", id: "diff-tasks" },
      h("thead", {}, h("tr", {}, ["", "Task run", "Original", "Replay"].map((c) => h("th", {}, c)))),
      h("tbody", {}, diff.tasks.map((t) => h("tr", { dataset: { path: t.path, same: String(t.same) } },
        h("td", {}, t.same ? "=" : "≠"),
        h("td", {}, t.path),
        side(t.other, t.same),
        side(t.execution, t.same))))));
}

function side(run, same) {
  if (!run) return h("td", { class: "muted" }, "—");
  return h("td", {}, stateBadge(run.state), same || run.outputs == null ? null : json(run.outputs));
}
