// Load forecast: how many runs each minute of the next hours will start, per job, so that overlaps on shared
// resources show. A stacked bar chart (all jobs), a heatmap (one row per job) and the busiest minutes.

import { api } from "../api.js";
import { heatmap, legend, stackedBars } from "../charts.js";
import { PALETTE } from "../colors.js";
import { h, mount, table, utc } from "../dom.js";

const BUCKETS = [1, 5, 15, 30, 60];

export function forecast(root, _params, query) {
  const hours = h("select", { id: "fc-hours" }, [1, 6, 12, 24, 48].map((n) => h("option", { value: n }, `${n} h`)));
  const bucket = h("select", { id: "fc-bucket" }, BUCKETS.map((n) => h("option", { value: n }, `${n} min`)));
  hours.value = query.get("hours") || "24";
  bucket.value = "15";
  const summary = h("p", { class: "muted" });
  const bars = h("div");
  const heat = h("div");
  const busiest = h("div");
  let data = null;
  let fetchedAt = 0;
  hours.addEventListener("change", () => { bucket.value = Number(hours.value) <= 1 ? "1" : bucket.value; data = null; view.refresh(); });
  bucket.addEventListener("change", () => draw());

  const overLimits = h("div");
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, "Load forecast"),
      h("span", { class: "muted" }, "runs that active schedules will start, per job"), h("span", { class: "spacer" }),
      h("form", { class: "filters", "aria-label": "Forecast range", onsubmit: (e) => e.preventDefault() },
        h("label", { for: "fc-hours" }, "Next", hours), h("label", { for: "fc-bucket" }, "Group by", bucket))),
    summary,
    h("section", { class: "panel", "aria-labelledby": "fc-bars" }, h("h2", { id: "fc-bars" }, "Runs starting, all jobs"), bars),
    h("section", { class: "panel", "aria-labelledby": "fc-heat" },
      h("h2", { id: "fc-heat" }, "Per job"),
      h("p", { class: "hint" }, "The red row marks the time slots with a minute in which more than one job starts runs."), heat),
    h("section", { class: "panel", "aria-labelledby": "fc-top" }, h("h2", { id: "fc-top" }, "Busiest minutes"), busiest),
    h("section", { class: "panel", "aria-labelledby": "fc-limits" },
      h("h2", { id: "fc-limits" }, "Minutes over a rate limit"),
      h("p", { class: "hint" }, "Runs due to start under a resource's rate beyond what it lets start in a minute: they will wait."),
      overLimits));

  function draw() {
    if (!data) return;
    const start = new Date(data.start);
    const minutes = Number(data.minutes) || Number(hours.value) * 60;
    const size = Number(bucket.value);
    // buckets follow the clock (09:00, 09:15, ...), whatever minute the forecast starts at
    const offset = (start.getUTCHours() * 60 + start.getUTCMinutes()) % size;
    const columns = Math.ceil((minutes + offset) / size);
    const times = Array.from({ length: columns }, (_, col) => new Date(start.getTime() + (col * size - offset) * 60_000));
    const jobsAt = new Map(); // minute index -> how many jobs start runs then
    const jobs = (data.jobs || []).map((j, i) => {
      const buckets = new Array(columns).fill(0);
      let total = 0;
      for (const [minute, n] of Object.entries(j.counts || {})) {
        const m = Number(minute);
        const col = Math.floor((m + offset) / size);
        if (col < 0 || col >= columns || !n) continue;
        buckets[col] += n;
        total += n;
        jobsAt.set(m, (jobsAt.get(m) || 0) + 1);
      }
      return { tag: j.job_tag, color: PALETTE[i % PALETTE.length], buckets, counts: j.counts || {}, total };
    });
    const overlaps = new Array(columns).fill(0);
    for (const [m, n] of jobsAt) {
      const col = Math.floor((m + offset) / size);
      overlaps[col] = Math.max(overlaps[col], n > 1 ? n : 0);
    }
    const total = jobs.reduce((n, j) => n + j.total, 0);
    const clashes = [...jobsAt.values()].filter((n) => n > 1).length;
    mount(summary, `${total} run${total === 1 ? "" : "s"} from ${jobs.length} job${jobs.length === 1 ? "" : "s"} between `,
      utc(start, { seconds: false }), " and ", utc(new Date(start.getTime() + minutes * 60_000), { seconds: false }),
      `; ${clashes} minute${clashes === 1 ? "" : "s"} in which more than one job starts.`,
      data.truncated ? h("strong", {}, " Truncated: the most frequent schedules are not counted in full.") : null);
    if (!jobs.length) {
      mount(bars, h("p", { class: "empty" }, "No active schedule fires in this window."));
      mount(heat);
      mount(busiest);
      return;
    }
    const span = columns * size; // minutes on the axis: a label every 1, 2, 3 or 6 hours, at most ~24
    const every = [60, 120, 180, 360, 720].find((m) => span / m <= 24) || 1440;
    const labelAt = (at) => (at.getUTCHours() * 60 + at.getUTCMinutes()) % (size > every ? size : every) === 0;
    const shortLabel = (at) => size < 60 && span <= 180 ? at.getUTCMinutes() % 15 === 0 : labelAt(at);
    mount(bars,
      stackedBars({
        label: `Runs starting per ${size} minutes over the next ${hours.value} hours, stacked by job`,
        series: jobs.map((j) => ({ key: j.tag, color: j.color })),
        points: times.map((at, col) => ({ at, values: Object.fromEntries(jobs.map((j) => [j.tag, j.buckets[col]])) })),
        labelAt: shortLabel,
        width: 1180,
        height: 180,
        barTitle: (p, n) => `${p.at.toISOString().slice(11, 16)} UTC: ${n} run${n === 1 ? "" : "s"}` +
          jobs.filter((j) => p.values[j.tag]).map((j) => `\n  ${j.tag}: ${p.values[j.tag]}`).join(""),
      }),
      legend(jobs.map((j) => [`${j.tag} (${j.total})`, j.color])));
    mount(heat, heatmap({
      rows: jobs, overlaps, times, bucketMinutes: size, labelAt: shortLabel,
      label: `Heatmap of runs per job per ${size} minutes, with the overlaps`,
    }));
    mount(busiest, busiestMinutes(jobs, start));
    mount(overLimits, table(
      [{ title: "Minute (UTC)" }, { title: "Resource" }, { title: "Starts due", num: true }, { title: "Allowed", num: true }],
      (data.over_limits || []).slice(0, 50).map((o) => [
        utc(new Date(start.getTime() + o.minute * 60_000), { seconds: false }), `${o.product_tag}/${o.resource}`,
        h("span", { class: "badge failed" }, String(o.starts)), o.allowed,
      ]),
      { empty: "No minute exceeds a resource's rate.", label: "Minutes over a rate limit" }));
  }

  function busiestMinutes(jobs, start) {
    const perMinute = new Map();
    for (const j of jobs) {
      for (const [minute, n] of Object.entries(j.counts)) {
        const m = Number(minute);
        if (!perMinute.has(m)) perMinute.set(m, []);
        perMinute.get(m).push([j.tag, n]);
      }
    }
    const top = [...perMinute].map(([m, list]) => ({ m, list, n: list.reduce((a, [, c]) => a + c, 0) }))
      .sort((a, b) => b.list.length - a.list.length || b.n - a.n || a.m - b.m).slice(0, 10);
    return table(
      [{ title: "Minute (UTC)" }, { title: "Runs", num: true }, { title: "Jobs" }],
      top.map(({ m, list, n }) => [
        utc(new Date(start.getTime() + m * 60_000), { seconds: false }), n,
        h("span", {}, list.length > 1 ? h("span", { class: "badge failed" }, "overlap") : null, " ",
          list.map(([tag, c]) => `${tag} ×${c}`).join(", ")),
      ]),
      { empty: "No run in this window.", label: "Busiest minutes" });
  }

  const view = {
    async refresh() {
      if (data && Date.now() - fetchedAt < 30_000) return; // the next hours change slowly: not on every run
      data = await api("/stats/forecast", { params: { hours: hours.value } });
      fetchedAt = Date.now();
      draw();
    },
  };
  return view;
}
