// The API client: same-origin fetches with the session cookie, the CSRF header on writes, and the grants.

export const BASE = "/api/v1/main";
let session = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.errors = (body && body._embedded && body._embedded.errors) || [];
  }
}

function csrfCookie() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("chorus_csrf="));
  return found ? decodeURIComponent(found.slice("chorus_csrf=".length)) : null;
}

export async function request(method, path, { body, json, headers = {}, raw = false } = {}) {
  const url = path.startsWith("/") && !path.startsWith("/api/") && !path.startsWith("/ui/") ? BASE + path : path;
  const sent = { "X-Chorus-Console": "1", ...headers };
  if (method !== "GET" && method !== "HEAD") {
    const token = (session && session.csrfToken) || csrfCookie();
    if (token) sent["X-CSRF-Token"] = token;
  }
  let payload = body;
  if (json !== undefined) {
    payload = JSON.stringify(json);
    sent["Content-Type"] = "application/json";
  }
  const response = await fetch(url, { method, body: payload, headers: sent, credentials: "same-origin" });
  if (response.status === 401 && !path.startsWith("/ui/")) {
    window.dispatchEvent(new CustomEvent("chorus:unauthenticated"));
  }
  if (!response.ok) {
    let detail = null;
    try {
      detail = await response.json();
    } catch {
      detail = { message: `${response.status} ${response.statusText}` };
    }
    throw new ApiError(response.status, detail);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const get = (path) => request("GET", path);

export async function loadSession() {
  try {
    session = await request("GET", "/ui/session");
  } catch (e) {
    if (e.status !== 401) throw e;
    session = null;
  }
  return session;
}

export async function login(credentials) {
  session = await request("POST", "/ui/login", { json: credentials });
  return session;
}

export async function logout() {
  await request("POST", "/ui/logout");
  session = null;
}

export const currentSession = () => session;

function inPrefix(namespace, prefix) {
  const base = prefix.replace(/\.+$/, "");
  return !base || namespace === base || namespace.startsWith(base + ".");
}

// Mirrors api.permissions.allowed: the page hides what the role cannot do; the API refuses it anyway.
export function can(permission, namespace = null) {
  if (!session) return false;
  return session.grants.some(
    (g) => g.permissions.includes(permission) && (namespace === null || inPrefix(namespace, g.namespace)),
  );
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) search.append(key, v);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
