// The dashboard's entry point: a hash router (#/runs?phase=failed, #/runs/<id>, ...) and live refresh.
//
// A view is a function (root, params, query) -> {refresh(), stop?()}. The router calls refresh() once, then
// again whenever the live channel says something changed (one refresh at a time, at most every 500 ms),
// and every 10 s so relative times ("in 3 min") stay true.

import { loadMe } from "./api.js";
import { mount, h } from "./dom.js";
import { Live } from "./live.js";
import { overview } from "./views/overview.js";
import { scheduleDetail, schedules } from "./views/schedules.js";
import { runDetail, runs } from "./views/runs.js";
import { forecast } from "./views/forecast.js";

const ROUTES = [
  [/^\/?$/, overview, "overview"],
  [/^\/schedules\/?$/, schedules, "schedules"],
  [/^\/schedules\/([^/]+)$/, scheduleDetail, "schedules"],
  [/^\/runs\/?$/, runs, "runs"],
  [/^\/runs\/([^/]+)$/, runDetail, "runs"],
  [/^\/forecast\/?$/, forecast, "forecast"],
];

const root = document.getElementById("main");
const live = new Live(document.getElementById("live"));
let current = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  return { path, query: new URLSearchParams(qs || "") };
}

class Refresher {
  constructor(view) {
    this.view = view;
    this.running = false;
    this.again = false;
    this.last = 0;
    this.timer = null;
    this.stopped = false;
    this.loaded = false;
    this.failed = false;
  }

  request() {
    if (this.stopped) return;
    if (this.running) { this.again = true; return; }
    const wait = Math.max(0, this.last + 500 - Date.now());
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), wait);
  }

  async run() {
    if (this.stopped) return;
    this.running = true;
    this.last = Date.now();
    try {
      await this.view.refresh();
      if (this.failed) { route(); return; } // the first load failed and left an error panel: build the view anew
      this.loaded = true;
    } catch (err) {
      if (err.status === 401) return;
      console.error(err);
      if (!this.loaded && !this.stopped) {
        this.failed = true;
        const what = err.status === 404 ? "Not found" : "Could not load this page";
        mount(root, h("div", { class: "panel", role: "alert" }, h("h1", {}, what), h("p", {}, err.message),
          h("p", {}, h("a", { href: "#/" }, "Back to the overview"))));
      }
    } finally {
      this.running = false;
      if (this.again) { this.again = false; this.request(); }
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.view.stop) this.view.stop();
  }
}

async function route() {
  const { path, query } = parseHash();
  if (current) current.stop();
  current = null;
  const match = ROUTES.map(([re, make, nav]) => [re.exec(path), make, nav]).find(([m]) => m);
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (match && link.dataset.nav === match[2]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!match) {
    mount(root, h("div", { class: "panel" }, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview"))));
    return;
  }
  const [m, make] = match;
  const params = m.slice(1).map(decodeURIComponent);
  const view = make(root, params, query);
  const refresher = new Refresher(view);
  current = refresher;
  await refresher.run();
}

/** The key's name, scope and limits in the top bar (a read key's page has no buttons that change anything). */
async function showWho() {
  const box = document.getElementById("who");
  try {
    const me = await loadMe();
    const limits = [me.product_tag && `product ${me.product_tag}`, me.env && `env ${me.env}`].filter(Boolean);
    mount(box, h("span", { class: "mono" }, me.name), ` · ${me.scope}`, limits.length ? ` · ${limits.join(", ")}` : "");
    box.title = `API key ${me.prefix}…: scopes ${me.scopes.join(", ")}`;
    box.dataset.scope = me.scope;
  } catch (err) {
    if (err.status !== 401) console.error(err);
  }
}

await showWho();
live.subscribe(() => current && current.request());
setInterval(() => current && current.request(), 10_000);
window.addEventListener("hashchange", () => { route(); root.focus({ preventScroll: true }); });
route();
live.start();
