// The REST API at api/v1 beside the page, called with the session cookie (ductape_session) that login set. The
// server takes a change (POST, PUT, PATCH, DELETE) made with the cookie only as JSON from this origin: every write
// sends Content-Type: application/json (an empty JSON object when there is nothing to say).

/** Where the dashboard is served: "/" for `ductape serve`, "/jobs/" when its app is mounted at /jobs. */
export const ROOT = new URL("./", location.href).pathname;
export const BASE = `${ROOT}api/v1`;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function detail(body, status) {
  const d = body && (body.detail ?? body.error ?? body.message);
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => e.message || `${e.field ?? (e.loc || []).join(".")}: ${e.rule ?? e.msg}`).join("; ");
  if (d && typeof d === "object") return d.message || JSON.stringify(d);
  return `HTTP ${status}`;
}

/** api("/runs", {params: {phase: "failed"}}) or api("/schedules/x/pause", {method: "POST", body: {}}) */
export async function api(path, { method = "GET", params = null, body = undefined } = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  const write = !["GET", "HEAD"].includes(method.toUpperCase());
  if (body !== undefined || write) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  const res = await fetch(url, init);
  if (res.status === 401) {
    location.assign(ROOT); // the key was revoked or the cookie is gone: back to the login form
    throw new ApiError(401, "not logged in");
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) throw new ApiError(res.status, detail(data, res.status));
  return data;
}

// Who is logged in (GET /api/v1/me): the key's name, scope and limits. loadMe() once, before the views draw.
let me = null;

export async function loadMe() {
  me = await api("/me");
  return me;
}

/** Whether the logged-in key has `scope` ("read", "write", "admin"); buttons it may not use are not drawn. */
export function can(scope) {
  return Boolean(me && Array.isArray(me.scopes) && me.scopes.includes(scope));
}

/** The records of a list answer: every list route answers one shape, a page {items: [...], has_more}. */
export function items(page) {
  if (!page || !Array.isArray(page.items)) throw new ApiError(0, "the API answered a list in an unknown shape");
  return page.items;
}
