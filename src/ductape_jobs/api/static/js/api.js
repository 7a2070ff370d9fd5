// The REST API at /api/v1, called with the session cookie (ductape_key) that /login set.

export const BASE = "/api/v1";

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

/** api("/runs", {params: {status: "failed"}}) or api("/schedules/x/pause", {method: "POST", body: {}}) */
export async function api(path, { method = "GET", params = null, body = undefined } = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  if (res.status === 401) {
    location.assign("/"); // the key was revoked or the cookie is gone: back to the login form
    throw new ApiError(401, "not logged in");
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) throw new ApiError(res.status, detail(data, res.status));
  return data;
}

/** The records of a list answer, whether it is a bare list or a page ({items: [...], total}). */
export function items(data) {
  if (Array.isArray(data)) return data;
  if (!data || typeof data !== "object") return [];
  for (const key of ["items", "data", "results", "runs", "schedules", "jobs"]) {
    if (Array.isArray(data[key])) return data[key];
  }
  return [];
}

/** The schedule's id, whatever the record calls it. */
export const scheduleId = (schedule) => schedule.job_id ?? schedule.id;
/** A run's phase, whatever the record calls it. */
export const phase = (run) => run.status ?? run.phase;
