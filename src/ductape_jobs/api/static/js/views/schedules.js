// Jobs and schedules: the job definitions, the schedules with their state and next fire time, pause/resume/
// cancel; a schedule's detail with a preview calendar (its next fire times in UTC and in its own zone).

import { api, can, items } from "../api.js";
import { badge, cadence, duration, facts, h, json, mount, shortId, table, timeCell, utc, zoned } from "../dom.js";
import { jobSelect, listView } from "../listview.js";
import { act, confirmDialog } from "../ui.js";

const STATUSES = ["active", "paused", "cancelled", "completed"];

/** The pause/resume/cancel/trigger buttons a schedule in its state can take (none for a read-only key). */
export function scheduleActions(schedule, after, { trigger = false } = {}) {
  if (!can("write")) return [];
  const id = schedule.job_id;
  const name = `${schedule.job_tag} ${shortId(id)}`;
  const post = (verb, body = {}) => api(`/schedules/${encodeURIComponent(id)}/${verb}`, { method: "POST", body });
  const button = (text, cls, onclick) => {
    const b = h("button", { type: "button", class: cls, "aria-label": `${text} schedule ${name}` }, text);
    b.addEventListener("click", () => onclick(b));
    return b;
  };
  const out = [];
  if (schedule.status === "active") {
    out.push(button("Pause", null, (b) => act(b, () => post("pause", { reason: "paused from the dashboard" }),
      `Paused ${name}`, after)));
  }
  if (schedule.status === "paused") {
    out.push(button("Resume", null, (b) => act(b, () => post("resume", {}), `Resumed ${name}`, after)));
  }
  if (trigger && (schedule.status === "active" || schedule.status === "paused")) {
    out.push(button("Run now", null, (b) => act(b, () => post("trigger", {}), `Triggered ${name}`, after)));
  }
  if (schedule.status === "active" || schedule.status === "paused") {
    out.push(button("Cancel", "danger", async (b) => {
      const answer = await confirmDialog({
        title: "Cancel this schedule?",
        text: `${name} will not run again, and its runs that have not started are cancelled.`,
        confirm: "Cancel schedule", danger: true, reason: true,
      });
      if (answer) await act(b, () => post("cancel", { reason: answer.reason }), `Cancelled ${name}`, after);
    }));
  }
  return out;
}

// ------------------------------------------------------------------------------------------ the list

export function schedules(root, _params, query) {
  const status = h("select", { id: "f-status", name: "status" },
    h("option", { value: "" }, "any"), STATUSES.map((st) => h("option", { value: st }, st)));
  const job = jobSelect();
  const jobsBox = h("div");
  const view = listView({
    route: "schedules", query, path: "/schedules", filters: { status, job_tag: job },
    render: (box, rows, refresh, jobs) => {
      mount(box, table(
        [{ title: "Schedule" }, { title: "Job" }, { title: "Cadence" }, { title: "State" }, { title: "Next fire" },
          { title: "Runs", num: true }, { title: "" }],
        rows.map((sc) => h("tr", { dataset: { scheduleId: sc.job_id } },
          h("td", {}, h("a", { href: `#/schedules/${encodeURIComponent(sc.job_id)}`, class: "mono" }, shortId(sc.job_id))),
          h("td", {}, sc.job_tag, h("small", {}, `${sc.product_tag} · ${sc.env}`)),
          h("td", {}, h("span", { class: "clip", title: cadence(sc) }, cadence(sc))),
          h("td", {}, badge(sc.status)),
          h("td", {}, sc.status === "active" ? timeCell(sc.next_run_at) : h("span", { class: "muted" }, "—")),
          h("td", { class: "num" }, sc.run_count ?? ""),
          h("td", { class: "actions" }, scheduleActions(sc, refresh)),
        )),
        { empty: "No schedule matches.", label: "Schedules" },
      ));
      mount(jobsBox, table(
        [{ title: "Tag" }, { title: "Name" }, { title: "Event" }, { title: "Cadence" }, { title: "" }],
        items(jobs).map((j) => [
          h("span", { class: "mono" }, j.tag), j.name, `${j.event_type} ${j.event_tag}`,
          j.intervals ? `every ${duration(j.intervals)}${j.executions ? `, ${j.executions} runs` : ""}` : "once",
          h("a", { href: `#/runs?job_tag=${encodeURIComponent(j.tag)}` }, "runs"),
        ]),
        { empty: "No job defined yet (job.create).", label: "Jobs" },
      ));
    },
  });
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, "Jobs & schedules")),
    h("section", { class: "panel", "aria-labelledby": "sched-title" },
      h("h2", { id: "sched-title" }, "Schedules"),
      view.form("Filter schedules",
        h("label", { for: "f-status" }, "Status", status),
        h("label", { for: "f-job" }, "Job", job)),
      view.box, view.pager),
    h("section", { class: "panel", "aria-labelledby": "jobs-title" }, h("h2", { id: "jobs-title" }, "Jobs"), jobsBox),
  );
  return view;
}

// ------------------------------------------------------------------------------------------ one schedule

function repeatOf(schedule, job) {
  if (schedule.cron) return { cron: schedule.cron, tz: schedule.tz || "UTC" };
  if (schedule.every) return { every: Number(schedule.every), tz: schedule.tz || "UTC" };
  if (job && job.intervals) return { every: Number(job.intervals), tz: "UTC" };
  return null;
}

// What POST /preview is asked for this schedule's own next fire times: its cadence from its next due time (an
// every-N grid is anchored there), with the runs its limit leaves (a schedule that follows its job holds the job's
// executions as its limit) and its end date; null when its limit is used up. Without those, the panel showed a
// grid from now and ten times past the limit and the end date. A paused schedule resumes on its own grid, at its
// first time from now: its next due time moved on by whole intervals.
function previewOf(schedule, repeat, count) {
  const body = { repeat: { ...repeat }, count };
  if (schedule.limit != null) {
    const left = Number(schedule.limit) - Number(schedule.run_count || 0);
    if (left <= 0) return null;
    body.repeat.limit = left;
  }
  if (schedule.end_date) body.repeat.endDate = schedule.end_date;
  const next = schedule.next_run_at ? Date.parse(schedule.next_run_at) : NaN;
  if (Number.isNaN(next)) return body;
  const now = Date.now();
  if (schedule.status === "active" || next >= now) {
    body.start = schedule.next_run_at;
  } else if (repeat.every) {
    body.start = new Date(next + Math.ceil((now - next) / repeat.every) * repeat.every).toISOString();
  }
  return body;
}

function calendar(times, tz) {
  const days = new Map();
  for (const t of times) {
    const local = zoned(t, tz);
    if (!days.has(local.date)) days.set(local.date, { weekday: local.weekday, entries: [] });
    days.get(local.date).entries.push({ t, local });
  }
  return h("div", { class: "calendar" }, [...days].map(([date, day]) => h("section", { class: "day", "aria-label": date },
    h("h4", {}, `${day.weekday} ${date}`),
    h("ul", {}, day.entries.map(({ t, local }) => h("li", {},
      h("span", {}, `${local.time} ${local.zone}`),
      h("span", { class: "utc" }, utc(t, { seconds: false }).slice(11))))))));
}

export function scheduleDetail(root, [id]) {
  const head = h("div");
  const info = h("div");
  const preview = h("div");
  const recent = h("div");
  const count = h("select", { id: "preview-count" }, [10, 25, 50].map((n) => h("option", { value: n }, n)));
  let previewKey = null;
  count.addEventListener("change", () => { previewKey = null; view.refresh(); });
  mount(root,
    head,
    h("div", { class: "grid two" },
      h("section", { class: "panel", "aria-labelledby": "facts-title" }, h("h2", { id: "facts-title" }, "Schedule"), info),
      h("section", { class: "panel", "aria-labelledby": "preview-title" },
        h("div", { class: "page-head" }, h("h2", { id: "preview-title" }, "Next fire times"), h("span", { class: "spacer" }),
          h("label", { for: "preview-count", class: "muted" }, "show "), count),
        preview)),
    h("section", { class: "panel", "aria-labelledby": "recent-title" }, h("h2", { id: "recent-title" }, "Recent runs"), recent),
  );

  async function renderPreview(sc, job) {
    const repeat = repeatOf(sc, job);
    const key = JSON.stringify([repeat, sc.status, sc.next_run_at, sc.run_count, count.value]);
    if (key === previewKey) return;
    previewKey = key;
    if (!repeat) {
      mount(preview, h("p", { class: "muted" }, sc.next_run_at ? `Runs once, at ${utc(sc.next_run_at)}.` : "Runs once; nothing left to fire."));
      return;
    }
    if (sc.status !== "active") {
      mount(preview, h("p", { class: "muted" }, `This schedule is ${sc.status}: it fires nothing until it is resumed. Its cadence would fire at:`));
    } else {
      mount(preview);
    }
    const body = previewOf(sc, repeat, Number(count.value));
    const times = body ? ((await api("/preview", { method: "POST", body })).times || []) : [];
    const tz = repeat.tz || "UTC";
    preview.append(
      h("p", { class: "hint" }, `${cadence({ ...sc, ...repeat })}: times in ${tz}, with UTC on the right.`),
      times.length ? calendar(times, tz) : h("p", { class: "muted" }, "No fire time ahead (limit or end date reached)."));
  }

  const view = {
    async refresh() {
      const sc = await api(`/schedules/${encodeURIComponent(id)}`);
      const jobs = items(await api("/jobs"));
      const job = jobs.find((j) => j.tag === sc.job_tag);
      mount(head,
        h("div", { class: "crumbs" }, h("a", { href: "#/schedules" }, "Jobs & schedules"), " / schedule"),
        h("div", { class: "page-head" },
          h("h1", {}, `${sc.job_tag} `, h("span", { class: "mono muted" }, sc.job_id)), badge(sc.status),
          h("span", { class: "spacer" }),
          h("div", { class: "toolbar" }, scheduleActions(sc, () => view.refresh(), { trigger: true }))));
      mount(info, facts([
        ["Job", job ? `${job.name} (${job.tag}): ${job.event_type} ${job.event_tag}` : sc.job_tag],
        ["Product / env", `${sc.product_tag} / ${sc.env}`],
        ["Cadence", cadence(sc)],
        ["Time zone", sc.tz || "UTC"],
        ["Starts", timeCell(sc.start_at)],
        ["Next fire", sc.status === "active" ? timeCell(sc.next_run_at) : "—"],
        ["Runs so far", `${sc.run_count ?? 0}${sc.limit ? ` of ${sc.limit}` : ""}`],
        sc.end_date ? ["Ends", timeCell(sc.end_date)] : null,
        ["Retries", String(sc.retries ?? 0)],
        sc.timeout ? ["Timeout", duration(Number(sc.timeout))] : null,
        ["Misfire / overlap", `${sc.misfire ?? "run_once"} / ${sc.overlap ?? "allow"}`],
        sc.skipped_count ? ["Skipped (overlap)", String(sc.skipped_count)] : null,
        sc.reason ? ["Reason", sc.reason] : null,
        ["Created", timeCell(sc.created_at)],
        ["Input", json(sc.input ?? {})],
      ]));
      await renderPreview(sc, job);
      const runs = items(await api("/runs", { params: { job_id: sc.job_id, limit: 10 } }));
      mount(recent, table(
        [{ title: "Run" }, { title: "Status" }, { title: "Due" }, { title: "Duration", num: true }, { title: "By" }],
        runs.map((r) => [
          h("a", { href: `#/runs/${encodeURIComponent(r.id)}`, class: "mono" }, shortId(r.id)),
          badge(r.phase), timeCell(r.scheduled_at), duration(r.duration_ms), r.triggered_by ?? ""]),
        { empty: "No run yet.", label: "Recent runs" }),
      h("p", {}, h("a", { href: `#/runs?job_id=${encodeURIComponent(sc.job_id)}` }, "All runs of this schedule →")));
    },
  };
  return view;
}
