// AI usage: tokens and cost by flow, model and day from the LLM ledger, and where every budget stands.

import { get, query } from "./api.js";
import { h, mount, when } from "./dom.js";

const money = (v) => `$${Number(v).toFixed(v >= 1 ? 2 : 6)}`;

function bars(rows, label) {
  const max = Math.max(1e-12, ...rows.map((r) => r.cost || 0));
  const maxTokens = Math.max(1, ...rows.map((r) => r.tokens || 0));
  return h("table", { class: "grid usage" },
    h("thead", {}, h("tr", {}, [label, "Calls", "Tokens in", "Tokens out", "Cost", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {},
      h("td", {}, r.label), h("td", {}, String(r.calls)), h("td", {}, String(r.tokensIn)), h("td", {}, String(r.tokensOut)),
      h("td", {}, money(r.cost)),
      h("td", { class: "barcell" }, h("span", { class: "hbar", style: { width: `${Math.max(1, (r.cost > 0 ? r.cost / max : r.tokens / maxTokens) * 100)}%` } }))))));
}

function meter(ratio) {
  if (ratio === null || ratio === undefined) return h("span", { class: "muted" }, "—");
  const pct = Math.round(ratio * 100);
  const level = ratio >= 1 ? "over" : ratio >= 0.8 ? "near" : "ok";
  return h("span", { class: `meter ${level}`, title: `${pct}% of the cap` }, h("span", { class: "track" }, h("span", { class: "fill", style: { width: `${Math.min(100, pct)}%` } })), h("em", {}, `${pct}%`));
}

// An amount in the units the budget caps: tokens when it has maxTokens, dollars when it has maxCost.
function amount(b, a) {
  const parts = [];
  if (b.maxTokens != null) parts.push(`${a.tokens} tok`);
  if (b.maxCost != null) parts.push(money(a.cost));
  return parts.join(" · ") || "—";
}

const SCOPE_NAMES = { TASK_RUN: "task run", EXECUTION: "execution", EXECUTION_TREE: "execution tree", FLOW: "flow", NAMESPACE: "namespace" };

// Each budget's current scope (its latest run, or the period now running): limit, used, reserved by calls in flight,
// remaining, and how near used + reserved is to the nearer cap; per-run scopes also show their heaviest run.
function budgetTable(budgets) {
  return h("table", { class: "grid", id: "budgets" },
    h("thead", {}, h("tr", {}, ["Flow", "Task", "Scope", "Limit", "Used", "Reserved", "Remaining", "Now", "Peak"].map((c) => h("th", {}, c)))),
    h("tbody", {}, budgets.map((b) => {
      const c = b.current;
      const scope = `${SCOPE_NAMES[b.scope] || b.scope}${b.period ? ` per ${b.period}` : ""}`;
      const execution = c.subject && (b.scope === "EXECUTION" || b.scope === "EXECUTION_TREE");
      const subject = c.periodStart ? `since ${when(c.periodStart)}`
        : execution ? h("a", { href: `/ui/executions/${encodeURIComponent(c.subject)}` }, c.subject)
        : c.subject || "no call yet";
      return h("tr", { dataset: { task: b.taskId, scope: b.scope } },
        h("td", {}, `${b.namespace}.${b.flowId}`), h("td", {}, b.taskId),
        h("td", { class: "scope" }, scope, b.onExceed === "PAUSE" ? h("small", { class: "muted" }, " · pauses") : null),
        h("td", { class: "limit" }, amount(b, { tokens: b.maxTokens, cost: b.maxCost })),
        h("td", { class: "used" }, amount(b, c.used)),
        h("td", { class: "reserved" }, amount(b, c.reserved)),
        h("td", { class: "remaining" }, amount(b, c.remaining)),
        h("td", { class: "now" }, meter(c.ratio), h("small", { class: "muted" }, " ", subject)),
        h("td", {}, b.peak ? meter(b.peak.ratio) : "—"));
    })));
}

export async function usagePage(app) {
  const days = h("select", { id: "usage-days" }, [1, 7, 30, 90].map((d) => h("option", { value: d, selected: d === 30 }, `last ${d} day(s)`)));
  const body = h("div", { id: "usage" });
  const load = async () => {
    const from = new Date(Date.now() - Number(days.value) * 86400000).toISOString();
    const usage = await get(`/ai/usage${query({ from })}`);
    const t = usage.total;
    mount(body,
      h("div", { class: "cards" },
        h("div", { class: "card stat" }, h("span", {}, "Calls"), h("strong", { id: "total-calls" }, String(t.calls))),
        h("div", { class: "card stat" }, h("span", {}, "Tokens"), h("strong", { id: "total-tokens" }, String(t.tokens))),
        h("div", { class: "card stat" }, h("span", {}, "Cost"), h("strong", { id: "total-cost" }, money(t.cost)))),
      h("section", { class: "card" }, h("h2", {}, "Budgets"), usage.budgets.length
        ? budgetTable(usage.budgets)
        : h("p", { class: "muted" }, "No live flow declares a budget.")),
      h("section", { class: "card" }, h("h2", {}, "By flow"), bars(usage.byFlow.map((r) => ({ ...r, label: `${r.namespace}.${r.flowId}` })), "Flow")),
      h("section", { class: "card" }, h("h2", {}, "By model"), bars(usage.byModel.map((r) => ({ ...r, label: `${r.provider} · ${r.model}` })), "Model")),
      h("section", { class: "card" }, h("h2", {}, "By day (UTC)"), bars(usage.byDay.map((r) => ({ ...r, label: r.day })), "Day")));
  };
  days.addEventListener("change", load);
  mount(app, h("div", { class: "page-head" }, h("h1", {}, "AI usage"), days), body);
  await load();
}
