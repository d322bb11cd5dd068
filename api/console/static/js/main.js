// The console's shell: session check, login page, navigation and the router over /ui/... paths.

import { currentSession, get, loadSession, login, logout, query } from "./api.js";
import { errorBox, h, mount } from "./dom.js";
import { approvalsPage } from "./approvals.js";
import { dashboardPage } from "./dashboard.js";
import { filesPage } from "./files.js";
import { kvPage } from "./kv.js";
import { triggersPage } from "./triggers.js";
import { executionPage, executionsPage } from "./executions.js";
import { flowPage, flowsPage, newFlowPage } from "./flows.js";
import { memoryPage } from "./memory.js";
import { usagePage } from "./usage.js";

const app = document.getElementById("app");
let cleanup = null; // the current page's teardown (closes SSE streams, timers)

const routes = [
  [/^\/ui\/?$/, () => navigate("/ui/dashboard", true)],
  [/^\/ui\/dashboard$/, (m, app) => dashboardPage(app)],
  [/^\/ui\/triggers$/, (m, app) => triggersPage(app)],
  [/^\/ui\/kv$/, (m, app) => kvPage(app)],
  [/^\/ui\/files$/, (m, app) => filesPage(app)],
  [/^\/ui\/login$/, () => loginPage()],
  [/^\/ui\/flows$/, (m, app) => flowsPage(app)],
  [/^\/ui\/flows\/new$/, (m, app) => newFlowPage(app)],
  [/^\/ui\/flows\/([^/]+)\/([^/]+)(?:\/([a-z]+))?$/, (m, app) => flowPage(m[1], m[2], m[3] || "editor", app)],
  [/^\/ui\/executions$/, (m, app) => executionsPage(app)],
  [/^\/ui\/executions\/([^/]+)$/, (m, app) => executionPage(m[1], app)],
  // The `url` of Kestra's create-execution answer.
  [/^\/ui\/main\/executions\/[^/]+\/[^/]+\/([^/]+)$/, (m, app) => executionPage(m[1], app)],
  [/^\/ui\/approvals$/, (m, app) => approvalsPage(app)],
  [/^\/ui\/ai-usage$/, (m, app) => usagePage(app)],
  [/^\/ui\/ai-memory$/, (m, app) => memoryPage(app)],
];

// A page with unsaved work sets a guard: it answers whether leaving is fine (asking the person if not).
let leaveGuard = null;
export function setLeaveGuard(guard) {
  leaveGuard = guard;
}
const mayLeave = () => !leaveGuard || leaveGuard();

export function navigate(path, replace = false) {
  if (!mayLeave()) return;
  leaveGuard = null;
  if (replace) history.replaceState({}, "", path);
  else history.pushState({}, "", path);
  render();
}

async function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const path = location.pathname;
  shownPath = path + location.search;
  if (!currentSession() && path !== "/ui/login") {
    await loadSession();
    if (!currentSession()) {
      navigate(`/ui/login${query({ next: path + location.search })}`, true);
      return;
    }
  }
  showChrome(path);
  for (const [pattern, page] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    const decoded = match.map((part) => (part === undefined ? part : decodeURIComponent(part)));
    try {
      const teardown = await page(decoded, app);
      if (typeof teardown === "function") cleanup = teardown;
    } catch (e) {
      mount(app, h("h1", {}, "Something went wrong"), errorBox(e));
    }
    return;
  }
  mount(app, h("h1", {}, "Not found"), h("p", {}, path));
}

function showChrome(path) {
  const session = currentSession();
  const top = document.getElementById("top");
  top.hidden = !session || path === "/ui/login";
  if (!session) return;
  // The person's name, not the internal actor string (`token:admin/console`).
  document.getElementById("whoami").textContent = session.authRequired ? session.username || session.actor : "everyone (admin)";
  document.getElementById("logout").hidden = !session.authRequired;
  document.getElementById("auth-off").hidden = session.authRequired;
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", path.startsWith(`/ui/${link.dataset.nav}`));
  }
  refreshInboxCount();
}

async function refreshInboxCount() {
  const badge = document.getElementById("inbox-count");
  try {
    const paused = await get(`/executions/search${query({ state: "PAUSED", size: 1 })}`);
    badge.textContent = String(paused.total);
    badge.hidden = paused.total === 0;
  } catch {
    badge.hidden = true;
  }
}

function loginPage() {
  const next = new URLSearchParams(location.search).get("next") || "/ui/dashboard";
  const status = h("div", { id: "login-status" });
  const useToken = h("input", { type: "checkbox", id: "use-token" });
  const username = h("input", { name: "username", id: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", id: "password", type: "password", autocomplete: "current-password" });
  const token = h("input", { name: "token", id: "token", type: "password", placeholder: "chorus_…" });
  const passwordFields = h("div", {}, h("label", {}, "Username", username), h("label", {}, "Password", password));
  const tokenField = h("label", { hidden: true }, "API token", token);
  useToken.addEventListener("change", () => {
    passwordFields.hidden = useToken.checked;
    tokenField.hidden = !useToken.checked;
    username.required = !useToken.checked;
  });
  const form = h(
    "form",
    { class: "login card", id: "login-form" },
    h("h1", {}, "Sign in to Chorus"),
    passwordFields,
    tokenField,
    h("label", { class: "inline" }, useToken, " Use an API token instead"),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await login(useToken.checked ? { token: token.value } : { username: username.value, password: password.value });
      navigate(next.startsWith("/ui/") ? next : "/ui/dashboard", true);
    } catch (e) {
      mount(status, errorBox(e));
    }
  });
  mount(app, form);
  username.focus();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href^='/ui/']");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || link.target || event.defaultPrevented) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
let shownPath = location.pathname + location.search;
window.addEventListener("popstate", () => {
  // Back/forward cannot be cancelled: if the person stays, put the page's address back.
  if (!mayLeave()) {
    history.pushState({}, "", shownPath);
    return;
  }
  leaveGuard = null;
  render();
});
window.addEventListener("beforeunload", (event) => {
  if (leaveGuard && !leaveGuard(true)) event.preventDefault();
});
window.addEventListener("chorus:inbox-changed", () => refreshInboxCount());
// Decisions made elsewhere (another person, the API) reach the badge within half a minute.
setInterval(() => {
  if (!document.hidden && currentSession() && location.pathname !== "/ui/login") refreshInboxCount();
}, 30_000);
window.addEventListener("chorus:unauthenticated", () => {
  if (location.pathname !== "/ui/login") navigate(`/ui/login${query({ next: location.pathname })}`, true);
});
document.getElementById("logout").addEventListener("click", async () => {
  await logout();
  navigate("/ui/login", true);
});

render();
