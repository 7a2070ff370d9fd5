// Overview: runs per minute, failures in the last hour, queue depth, lateness percentiles, next runs due, and
// each resource's limits and use with the runs waiting on them.

import { api } from "../api.js";
import { stackedBars, legend } from "../charts.js";
import { COLORS } from "../colors.js";
import { duration, h, mount, shortId, table, timeCell } from "../dom.js";

function card(label, value, sub, bad = false) {
  return h("div", { class: "card" },
    h("div", { class: "label" }, label),
    h("div", { class: `value${bad ? " bad" : ""}` }, value),
    sub ? h("div", { class: "sub" }, sub) : null);
}

function latencyCard(lateness) {
  const l = lateness || {};
  return h("div", { class: "card", "aria-label": "Lateness percentiles" },
    h("div", { class: "label" }, "Lateness (start − due)"),
    h("div", { class: "trio" }, ["p50", "p95", "p99"].map((p) => h("div", {}, h("b", {}, duration(l[p])), h("span", {}, p)))),
    l.sample !== undefined ? h("div", { class: "sub" }, `over ${l.sample} run${l.sample === 1 ? "" : "s"} started in the last hour`) : null);
}

export function overview(root) {
  const cards = h("div", { class: "grid cards" });
  const chart = h("div");
  const next = h("div");
  const limits = h("div");
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, "Overview"), h("span", { class: "muted" }, "the last hour, in UTC")),
    cards,
    h("section", { class: "panel", "aria-labelledby": "rpm-title" }, h("h2", { id: "rpm-title" }, "Runs per minute"), chart),
    h("section", { class: "panel", "aria-labelledby": "next-title" }, h("h2", { id: "next-title" }, "Next runs due"), next),
    h("section", { class: "panel", "aria-labelledby": "limits-title" }, h("h2", { id: "limits-title" }, "Resources and limits"), limits),
  );

  return {
    async refresh() {
      const stats = await api("/stats/overview");
      const perMinute = stats.runs_per_minute || [];
      const done = perMinute.reduce((n, m) => n + (m.completed || 0), 0);
      mount(cards,
        card("Completed", done, `runs in the last ${perMinute.length || 60} min`),
        card("Failures", stats.failures_last_hour ?? 0, "failed runs in the last hour", (stats.failures_last_hour ?? 0) > 0),
        card("Queue depth", stats.queue_depth ?? 0, "runs due and waiting for a worker"),
        latencyCard(stats.lateness_ms));
      mount(chart,
        stackedBars({
          label: `Runs per minute over the last hour: ${done} completed, ${stats.failures_last_hour ?? 0} failed`,
          series: [{ key: "completed", color: COLORS.completed }, { key: "failed", color: COLORS.failed }],
          points: perMinute.map((m) => ({ at: new Date(m.minute), values: m })),
          height: 170,
          barTitle: (p) => `${p.at.toISOString().slice(11, 16)} UTC: ${p.values.completed || 0} completed, ${p.values.failed || 0} failed`,
        }),
        legend([["completed", COLORS.completed], ["failed", COLORS.failed]]));
      const due = stats.next_runs || [];
      mount(next, table(
        [{ title: "Job" }, { title: "Schedule" }, { title: "Due" }],
        due.map((r) => [
          h("a", { href: `#/runs?job_tag=${encodeURIComponent(r.job_tag)}` }, r.job_tag),
          h("a", { href: `#/schedules/${encodeURIComponent(r.job_id)}`, class: "mono" }, shortId(r.job_id)),
          timeCell(r.next_run_at),
        ]),
        { empty: "No run is due: no active schedule.", label: "Next runs due" },
      ));
      const [resources, waiting] = await Promise.all([api("/resources"), api("/resources/waiting", { params: { limit: 20 } })]);
      mount(limits,
        table(
          [{ title: "Resource" }, { title: "Concurrency" }, { title: "Rate" }, { title: "Executing" }, { title: "Started in window" }, { title: "Waiting" }],
          (resources.items || []).map((r) => [
            r.product_tag ? `${r.product_tag}/${r.name}` : r.name, r.concurrency ?? "–", r.rate ?? "–", r.running, r.recent_starts, r.waiting,
          ]),
          { empty: "No resource declares a limit.", label: "Resources and their use" },
        ),
        table(
          [{ title: "Run waiting on a limit" }, { title: "Job" }, { title: "Priority" }, { title: "Waiting on" }],
          (waiting.items || []).map((r) => [
            h("a", { href: `#/runs/${encodeURIComponent(r.id)}`, class: "mono" }, shortId(r.id)), r.job_tag, r.priority, r.waiting_on,
          ]),
          { empty: "No run is waiting on a limit.", label: "Runs waiting on a limit" },
        ));
    },
  };
}
