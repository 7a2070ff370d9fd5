// Inline SVG charts, no library: stacked bars (runs per minute) and a per-job heatmap (load forecast).

import { COLORS } from "./colors.js";
import { h, s } from "./dom.js";

const pad = (n) => String(n).padStart(2, "0");
const hhmm = (d) => `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;

/** A rounded-up axis maximum: 1, 2, 5, 10, 20, 50, ... */
function niceMax(value) {
  if (value <= 1) return 1;
  const mag = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * mag) return step * mag;
  return 10 * mag;
}

function yAxis(g, { x0, x1, top, height, max }) {
  const ticks = max % 2 === 0 || max < 1 ? [0, max / 2, max] : [0, max];
  for (const v of ticks) {
    const y = top + height - (v / max) * height;
    g.append(s("line", { class: "grid-line", x1: x0, x2: x1, y1: y, y2: y }));
    g.append(s("text", { x: x0 - 6, y: y + 3, "text-anchor": "end" }, v));
  }
}

/**
 * Stacked bars over time. series: [{key, label, color}], points: [{at: Date, values: {key: n}}].
 * labelAt(date, index): whether to write the time under that bar.
 */
export function stackedBars({ series, points, label, width = 1000, height = 200, labelAt = (_, i) => i % 10 === 0,
  barTitle }) {
  const left = 36, right = 8, top = 8, bottom = 22;
  const plotW = width - left - right, plotH = height - top - bottom;
  const totals = points.map((p) => series.reduce((sum, k) => sum + (p.values[k.key] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const band = plotW / Math.max(points.length, 1);
  const gap = band > 4 ? Math.min(2, band * 0.2) : 0;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  const g = s("g");
  yAxis(g, { x0: left, x1: width - right, top, height: plotH, max });
  points.forEach((p, i) => {
    let y = top + plotH;
    const x = left + i * band + gap / 2;
    const bar = s("g", { class: "bar" });
    for (const k of series) {
      const n = p.values[k.key] || 0;
      if (!n) continue;
      const hgt = (n / max) * plotH;
      y -= hgt;
      bar.append(s("rect", { x, y, width: Math.max(band - gap, 0.5), height: hgt, class: k.key, fill: k.color }));
    }
    bar.append(s("title", {}, barTitle ? barTitle(p, totals[i]) : `${hhmm(p.at)} UTC: ${totals[i]}`));
    // an invisible full-height target so the tooltip shows on empty minutes too
    bar.prepend(s("rect", { x: left + i * band, y: top, width: band, height: plotH, fill: "transparent" }));
    g.append(bar);
    if (labelAt(p.at, i)) {
      g.append(s("text", { x: left + i * band, y: height - 6, "text-anchor": "start" }, hhmm(p.at)));
    }
  });
  svg.append(g);
  return svg;
}

/**
 * One row of cells per job, one column per time bucket; a cell's opacity follows its count. A last row, in red,
 * marks the buckets holding a minute in which two or more jobs start runs: the overlaps on shared resources.
 * rows: [{tag, color, buckets: [n per column]}], overlaps: [jobs overlapping per column, 0 when none].
 */
export function heatmap({ rows, overlaps, times, bucketMinutes, label, labelAt, width = 1180 }) {
  const left = 150, right = 6, top = 20, rowH = 26, bottom = 24;
  const lanes = rows.length + 1;
  const height = top + lanes * rowH + bottom;
  const columns = times.length;
  const cellW = (width - left - right) / Math.max(columns, 1);
  const max = Math.max(1, ...rows.flatMap((r) => r.buckets));
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  times.forEach((at, col) => {
    if (!labelAt(at, col)) return;
    const x = left + col * cellW;
    svg.append(s("text", { x, y: 12 }, hhmm(at)));
    svg.append(s("line", { class: "grid-line", x1: x, x2: x, y1: 15, y2: top + lanes * rowH }));
  });
  const lane = (r, text, cls) => {
    const y = top + r * rowH;
    svg.append(s("line", { class: "grid-line", x1: left, x2: width - right, y1: y + rowH, y2: y + rowH }));
    svg.append(s("text", { x: left - 8, y: y + rowH / 2 + 4, "text-anchor": "end", class: cls },
      text.length > 22 ? `${text.slice(0, 21)}…` : text));
    return y;
  };
  const cell = (col, y, fill, opacity, title) => svg.append(s("rect", {
    class: "cell", x: left + col * cellW, y: y + 2, width: Math.max(cellW, 1), height: rowH - 4,
    fill, "fill-opacity": opacity.toFixed(2),
  }, s("title", {}, title)));
  rows.forEach((row, r) => {
    const y = lane(r, row.tag, "row-label");
    row.buckets.forEach((n, col) => {
      if (n) cell(col, y, row.color, 0.25 + 0.75 * (n / max), `${row.tag}: ${n} run${n === 1 ? "" : "s"} from ${hhmm(times[col])} UTC`);
    });
  });
  const y = lane(rows.length, "overlaps", "overlap-label");
  const most = Math.max(2, ...overlaps);
  overlaps.forEach((jobs, col) => {
    if (jobs > 1) cell(col, y, COLORS.overlap, 0.4 + 0.6 * ((jobs - 1) / (most - 1)), `from ${hhmm(times[col])} UTC: ${jobs} jobs start in the same minute`);
  });
  svg.append(s("text", { x: left, y: height - 6 },
    `${bucketMinutes}-minute buckets, UTC; darker = more runs (at most ${max} in a bucket)`));
  return svg;
}

export function legend(entries) {
  return h("div", { class: "legend" }, entries.map(([text, color]) => h("span", {}, swatch(color), text)));
}

function swatch(color) {
  const i = h("i");
  i.style.background = color;
  return i;
}
