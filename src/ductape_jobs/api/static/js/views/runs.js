// Runs: a filterable table (phase, job, schedule) with Retry on failed runs; a run's detail with its attempts,
// error and timings.

import { api, can } from "../api.js";
import { badge, duration, facts, h, json, mount, parseTime, shortId, table, timeCell } from "../dom.js";
import { jobSelect, listView } from "../listview.js";
import { act } from "../ui.js";

const PHASES = ["scheduled", "queued", "running", "retry_scheduled", "completed", "failed", "cancelled"];
const retryable = (run) => can("write") && (run.phase === "failed" || run.phase === "cancelled");

function retryButton(run, after) {
  const b = h("button", { type: "button", class: "primary", "aria-label": `Retry run ${run.id}` }, "Retry");
  b.addEventListener("click", () => act(b, () => api(`/runs/${encodeURIComponent(run.id)}/retry`, { method: "POST", body: {} }),
    `Retrying ${run.job_tag} (run ${shortId(run.id)})`, after));
  return b;
}

// ------------------------------------------------------------------------------------------ the list

export function runs(root, _params, query) {
  const status = h("select", { id: "f-status", name: "phase" },
    h("option", { value: "" }, "any"), PHASES.map((p) => h("option", { value: p }, p.replace("_", " "))));
  const job = jobSelect();
  const schedule = h("input", { id: "f-schedule", name: "job_id", type: "search", placeholder: "schedule id", size: 28 });
  const view = listView({
    route: "runs", query, path: "/runs", filters: { phase: status, job_tag: job, job_id: schedule },
    render: (box, rows, refresh) => mount(box, table(
      [{ title: "Run" }, { title: "Job" }, { title: "Schedule" }, { title: "Status" }, { title: "Due" },
        { title: "Started" }, { title: "Duration", num: true }, { title: "Attempt", num: true }, { title: "" }],
      rows.map((r) => h("tr", { dataset: { runId: r.id, status: r.phase } },
        h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(r.id)}`, class: "mono" }, shortId(r.id))),
        h("td", {}, r.job_tag, h("small", {}, `${r.event_type ?? ""} ${r.event_tag ?? ""}`)),
        h("td", {}, h("a", { href: `#/schedules/${encodeURIComponent(r.job_id)}`, class: "mono" },
          shortId(r.job_id))),
        h("td", {}, badge(r.phase), r.triggered_by && r.triggered_by !== "schedule" ? h("small", {}, r.triggered_by) : null),
        h("td", {}, timeCell(r.scheduled_at)),
        h("td", {}, timeCell(r.started_at)),
        h("td", { class: "num" }, duration(r.duration_ms)),
        h("td", { class: "num" }, r.attempt ?? ""),
        h("td", { class: "actions" }, retryable(r) ? retryButton(r, refresh) : null),
      )),
      { empty: "No run matches.", label: "Runs" })),
  });
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, "Runs"), h("span", { class: "muted" }, "newest first")),
    h("section", { class: "panel" },
      view.form("Filter runs",
        h("label", { for: "f-status" }, "Phase", status),
        h("label", { for: "f-job" }, "Job", job),
        h("label", { for: "f-schedule" }, "Schedule", schedule)),
      view.box, view.pager));
  return view;
}

// ------------------------------------------------------------------------------------------ one run

function between(a, b) {
  const x = parseTime(a), y = parseTime(b);
  return x && y ? duration(y - x) : "—";
}

/** An attempt's error: its first line, and the whole text (a traceback) when it is opened. */
function errorCell(text) {
  if (!text) return "";
  const first = text.split("\n")[0];
  if (first === text.trim()) return h("span", { class: "mono", title: text }, first);
  return h("details", { class: "err" }, h("summary", { class: "mono", title: first }, first),
    h("pre", { class: "block error" }, text));
}

export function runDetail(root, [id]) {
  const box = h("div");
  const loading = h("p", { class: "muted" }, "Loading…");
  mount(root, box, loading);
  const view = {
    async refresh() {
      const r = await api(`/runs/${encodeURIComponent(id)}`);
      const attempts = r.attempts || [];
      const scheduleId = r.job_id;
      loading.remove();
      mount(box,
        h("div", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / run"),
        h("div", { class: "page-head" },
          h("h1", {}, `${r.job_tag} `, h("span", { class: "mono muted" }, r.id)), badge(r.phase),
          h("span", { class: "spacer" }),
          retryable(r) ? retryButton(r, () => view.refresh()) : null),
        h("div", { class: "grid two" },
          h("section", { class: "panel", "aria-labelledby": "run-facts" }, h("h2", { id: "run-facts" }, "Run"), facts([
            ["Schedule", h("a", { href: `#/schedules/${encodeURIComponent(scheduleId)}`, class: "mono" }, scheduleId)],
            ["Event", `${r.event_type} ${r.event_tag}`],
            ["Product / env", `${r.product_tag} / ${r.env}`],
            ["Triggered by", r.triggered_by],
            ["Attempt", `${r.attempt ?? 0} (retries used ${r.retry_count ?? 0} of ${r.max_retries ?? 0})`],
            ["Input", json(r.input ?? {})],
            ["Output", json(r.output ?? null)],
          ])),
          h("section", { class: "panel", "aria-labelledby": "run-times" }, h("h2", { id: "run-times" }, "Timings"), facts([
            ["Due", timeCell(r.scheduled_at)],
            r.available_at ? ["Available", timeCell(r.available_at)] : null,
            ["Started", timeCell(r.started_at)],
            ["Finished", timeCell(r.completed_at)],
            ["Lateness", r.lateness_ms !== undefined ? duration(r.lateness_ms) : between(r.scheduled_at, r.started_at)],
            ["Duration", duration(r.duration_ms)],
          ]))),
        r.error ? h("section", { class: "panel", "aria-labelledby": "run-error" },
          h("h2", { id: "run-error" }, "Error"), h("pre", { class: "block error" }, r.error)) : null,
        h("section", { class: "panel", "aria-labelledby": "run-attempts" }, h("h2", { id: "run-attempts" }, "Attempts"),
          table(
            [{ title: "#", num: true }, { title: "Worker" }, { title: "Started" }, { title: "Finished" },
              { title: "Took", num: true }, { title: "Outcome" }, { title: "Error" }],
            attempts.map((a) => [a.attempt, h("span", { class: "mono" }, a.worker_id), timeCell(a.started_at),
              timeCell(a.finished_at), a.duration_ms !== undefined ? duration(a.duration_ms) : between(a.started_at, a.finished_at), a.outcome ? badge(a.outcome) : "running",
              errorCell(a.error)]),
            { empty: "No attempt yet: the run has not started.", label: "Attempts" })),
      );
    },
  };
  return view;
}
