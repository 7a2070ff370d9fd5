// Small DOM and formatting helpers shared by the views. No framework: elements are built with h().

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function assign(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
}

/** h("a", {href: "#/"}, "text", child, [more]) -> an HTML element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  assign(el, attrs);
  append(el, children);
  return el;
}

/** s("rect", {x: 1}) -> an SVG element. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  assign(el, attrs);
  append(el, children);
  return el;
}

/** Replace the children of el. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ------------------------------------------------------------------------------------------ time

const pad = (n) => String(n).padStart(2, "0");

export function parseTime(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "2026-03-02 12:00:05 UTC" */
export function utc(value, { seconds = true } = {}) {
  const d = parseTime(value);
  if (!d) return "—";
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}${seconds ? ":" + pad(d.getUTCSeconds()) : ""}`;
  return `${day} ${time} UTC`;
}

/** The time of day in a zone: "09:00" (and the date parts, for grouping). */
export function zoned(value, tz) {
  const d = parseTime(value);
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", weekday: "short",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
    }).formatToParts(d).map((p) => [p.type, p.value]),
  );
  return {
    date: `${parts.year}-${parts.month}-${parts.day}`,
    weekday: parts.weekday,
    time: parts.second === "00" ? `${parts.hour}:${parts.minute}` : `${parts.hour}:${parts.minute}:${parts.second}`,
    zone: parts.timeZoneName,
  };
}

/** "in 3 min", "12 s ago" */
export function relative(value, now = Date.now()) {
  const d = parseTime(value);
  if (!d) return "";
  const diff = (d.getTime() - now) / 1000;
  const abs = Math.abs(diff);
  let text;
  if (abs < 1) return "now";
  if (abs < 60) text = `${Math.round(abs)} s`;
  else if (abs < 3600) text = `${Math.round(abs / 60)} min`;
  else if (abs < 86400 * 2) text = `${(abs / 3600).toFixed(abs < 36000 ? 1 : 0)} h`;
  else text = `${Math.round(abs / 86400)} d`;
  return diff > 0 ? `in ${text}` : `${text} ago`;
}

/** A cell with the UTC time and, below, how far it is from now. */
export function timeCell(value) {
  if (!value) return h("span", { class: "muted" }, "—");
  return h("span", { class: "time nowrap", title: utc(value) }, utc(value), h("small", {}, relative(value)));
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** "every 5 min", "every 1.0 h (the job's)", "cron 0 9 * * * (America/New_York)", "once" (as the CLI says them). */
export function cadence(schedule) {
  if (schedule.cron) return `cron ${schedule.cron}${schedule.tz && schedule.tz !== "UTC" ? ` (${schedule.tz})` : " (UTC)"}`;
  if (schedule.every) return `every ${duration(Number(schedule.every))}${schedule.follows_job ? " (the job's)" : ""}`;
  return "once";
}

// ------------------------------------------------------------------------------------------ bits

export function badge(status) {
  return h("span", { class: `badge ${status || ""}` }, (status || "unknown").replace("_", " "));
}

/** "run_…4a50292": ids start with their creation time, so their end tells them apart. */
export function shortId(id) {
  if (!id || id.length <= 16) return id || "";
  const cut = id.indexOf("_") + 1;
  return `${id.slice(0, cut)}…${id.slice(-8)}`;
}

export function json(value) {
  return h("pre", { class: "block" }, value === undefined ? "—" : JSON.stringify(value, null, 2));
}

export function facts(rows) {
  return h("dl", { class: "facts" }, rows.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

export function table(columns, rows, { empty = "Nothing here yet.", label = "" } = {}) {
  return h("div", { class: "table-wrap" },
    h("table", { "aria-label": label || null },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.title)))),
      h("tbody", {},
        rows.length
          ? rows.map((row) => row instanceof Node ? row : h("tr", {}, row.map((cell, i) => (
            cell instanceof HTMLTableCellElement ? cell : h("td", { class: columns[i]?.num ? "num" : null }, cell)
          ))))
          : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty)),
      ),
    ),
  );
}
