// The dashboard: executions by state over time (an SVG of stacked bars from Kestra's daily statistics),
// the executions running now and the latest failures, for the namespaces this person may read.

import { get, query, request } from "./api.js";
import { duration, errorBox, h, mount, stateBadge, when } from "./dom.js";

const RANGES = [["PT24H", "last 24 hours", 86400e3], ["P7D", "last 7 days", 7 * 86400e3], ["P30D", "last 30 days", 30 * 86400e3]];
// Bottom to top; the states a bucket rarely holds are summed as "other".
const STACK = ["SUCCESS", "WARNING", "FAILED", "KILLED", "RUNNING", "PAUSED", "QUEUED", "CREATED"];
const REFRESH_MS = 10000;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

const label = (iso, unit) => {
  const d = new Date(iso);
  if (unit === "minute" || unit === "hour") return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
  return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
};

// One bar per bucket, its height the bucket's executions, coloured by state; a tooltip (title) per segment.
// `width` is the chart's box in CSS pixels, so its text keeps its size on a phone as on a desktop.
export function stateChart(buckets, width = 720) {
  const height = 180, top = 10, bottom = 20, left = 30;
  const counts = buckets.map((b) => b.executionCounts);
  const total = (c) => Object.values(c).reduce((a, n) => a + n, 0);
  const most = Math.max(1, ...counts.map(total));
  const slot = (width - left) / Math.max(1, buckets.length);
  const scale = (n) => (n / most) * (height - top - bottom);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "state-chart", id: "state-chart", role: "img",
    "aria-label": "Executions by state over time" });
  chart.append(svg("text", { x: 0, y: top + 8, class: "axis" }, String(most)), svg("text", { x: 0, y: height - bottom, class: "axis" }, "0"),
    svg("line", { x1: left, x2: width, y1: height - bottom, y2: height - bottom, class: "baseline" }));
  const every = Math.ceil(buckets.length / Math.max(2, Math.floor(width / 90))); // a time label every 90 px at most
  buckets.forEach((bucket, i) => {
    let y = height - bottom;
    const x = left + i * slot + slot * 0.1;
    const group = svg("g", { class: "bucket", "data-start": bucket.startDate, "data-total": total(bucket.executionCounts) });
    const other = total(bucket.executionCounts) - STACK.reduce((a, s) => a + (bucket.executionCounts[s] || 0), 0);
    for (const [state, n] of [...STACK.map((s) => [s, bucket.executionCounts[s] || 0]), ["OTHER", other]]) {
      if (!n) continue;
      const tall = scale(n);
      y -= tall;
      group.append(svg("rect", { x, y, width: Math.max(1, slot * 0.8), height: tall, class: `bar s-${state.toLowerCase()}`, "data-state": state, "data-count": n },
        svg("title", {}, `${label(bucket.startDate, bucket.groupBy)}: ${n} ${state}`)));
    }
    chart.append(group);
    // a label near the right edge ends at its bar rather than running off the chart
    const near = left + i * slot > width - 60;
    if (i % every === 0) chart.append(svg("text", { x: near ? left + (i + 1) * slot : left + i * slot, y: height - 5, class: "axis", "text-anchor": near ? "end" : "start" }, label(bucket.startDate, bucket.groupBy)));
  });
  return chart;
}

function legend(buckets) {
  const sums = {};
  for (const b of buckets) for (const [s, n] of Object.entries(b.executionCounts)) sums[s] = (sums[s] || 0) + n;
  const shown = Object.entries(sums).filter(([, n]) => n > 0);
  return h("p", { class: "legend", id: "state-totals" }, shown.length
    ? shown.map(([s, n]) => h("span", { class: "legend-item", dataset: { state: s } }, stateBadge(s), ` ${n}`))
    : h("span", { class: "muted" }, "No execution in this range."));
}

function list(id, executions, empty) {
  if (!executions.length) return h("p", { class: "muted", id: `${id}-empty` }, empty);
  return h("div", { class: "scroll-x" }, h("table", { class: "grid", id },
    h("thead", {}, h("tr", {}, ["Execution", "Flow", "State", "Started", "Duration"].map((c) => h("th", {}, c)))),
    h("tbody", {}, executions.map((e) => h("tr", { dataset: { execution: e.id } },
      h("td", {}, h("a", { href: `/ui/executions/${e.id}` }, e.id.slice(0, 10))),
      h("td", {}, h("a", { href: `/ui/flows/${encodeURIComponent(e.namespace)}/${encodeURIComponent(e.flowId)}` }, `${e.namespace}.${e.flowId}`)),
      h("td", {}, stateBadge(e.state.current)), h("td", { class: "nowrap" }, when(e.state.startDate)),
      h("td", {}, duration(e.state.startDate, e.state.endDate)))))));
}

export async function dashboardPage(app) {
  const params = new URLSearchParams(location.search);
  const range = h("select", { id: "dashboard-range" }, RANGES.map(([v, text]) => h("option", { value: v, selected: v === (params.get("range") || "P7D") }, text)));
  const namespace = h("input", { id: "dashboard-namespace", placeholder: "namespace (prefix)", value: params.get("namespace") || "" });
  const chartBox = h("section", { class: "card", id: "chart-card" });
  const running = h("section", { class: "card", id: "running-card" });
  const failures = h("section", { class: "card", id: "failures-card" });
  let asked = 0;
  const load = async () => {
    const mine = ++asked;
    const [, , ms] = RANGES.find(([v]) => v === range.value);
    const ns = namespace.value.trim();
    history.replaceState({}, "", `/ui/dashboard${query({ range: range.value, namespace: ns })}`);
    const end = new Date();
    const search = (extra) => get(`/executions/search${query({ namespace: ns, size: 10, sort: "state.startDate:desc", ...extra })}`);
    const [stats, live, failed] = await Promise.allSettled([
      request("POST", "/stats/executions/daily", { json: { namespace: ns || null, startDate: new Date(end - ms).toISOString(), endDate: end.toISOString() } }),
      search({ state: ["RUNNING", "PAUSED", "RETRYING", "QUEUED"] }),
      search({ state: "FAILED", startDate: new Date(end - ms).toISOString() }),
    ]);
    if (mine !== asked) return;
    mount(chartBox, h("h2", {}, "Executions by state"),
      stats.status === "fulfilled" ? [stateChart(stats.value, Math.max(260, chartBox.clientWidth - 34)), legend(stats.value)] : errorBox(stats.reason));
    mount(running, h("h2", {}, "Running now", live.status === "fulfilled" ? h("span", { class: "muted" }, ` (${live.value.total})`) : null),
      live.status === "fulfilled" ? list("running-now", live.value.results, "Nothing is running.") : errorBox(live.reason));
    mount(failures, h("h2", {}, "Recent failures", failed.status === "fulfilled" ? h("span", { class: "muted" }, ` (${failed.value.total})`) : null),
      failed.status === "fulfilled" ? list("recent-failures", failed.value.results, "No failure in this range.") : errorBox(failed.reason));
  };
  range.addEventListener("change", load);
  namespace.addEventListener("change", load);
  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  mount(app, h("div", { class: "page-head" }, h("h1", {}, "Dashboard"), h("div", { class: "filters" }, range, namespace)),
    chartBox, h("div", { class: "two-cols" }, running, failures));
  await load();
  return () => clearInterval(timer);
}
