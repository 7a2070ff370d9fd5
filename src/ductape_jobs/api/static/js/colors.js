// The one colour table of the charts (app.css keeps the page's theme; no chart colour is written twice).

export const COLORS = {
  completed: "#3aa56a",
  failed: "#d9534f",
  overlap: "#d9534f",
};

/** One colour per job in the forecast, in turn. */
export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
  "#7f7f7f", "#d62728"];
