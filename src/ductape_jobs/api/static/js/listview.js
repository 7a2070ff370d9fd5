// One list view for the dashboard's lists (runs, schedules): its filters and its page are kept in the URL both
// ways (#/runs?phase=failed&offset=50 opens on that page with those filters; changing either writes the URL
// back, shareable, without a new history entry), it reads the API's one list shape (Page{items, has_more}),
// and it fills the job <select> both lists filter by.

import { api, items } from "./api.js";
import { h, mount } from "./dom.js";
import { PAGE, pagerButtons } from "./ui.js";

/** A filter <select> of job tags: "any", then the tags of GET /jobs (listView fills it on each refresh). */
export function jobSelect() {
  return h("select", { id: "f-job", name: "job_tag", dataset: { jobs: "1" } }, h("option", { value: "" }, "any"));
}

/**
 * listView({route: "runs", query, filters: {phase: <select>, job_tag: jobSelect(), ...}, path: "/runs", render})
 * -> {box, pager, form(label, ...labels), refresh()}.
 * Each filter element's name is its query parameter, in the dashboard's URL and in the API's.
 * render(box, rows, refresh) draws one page of rows into box.
 */
export function listView({ route, query, filters, path, render }) {
  const wanted = Object.fromEntries(Object.keys(filters).map((name) => [name, query.get(name) || ""]));
  let offset = Math.max(0, Math.floor(Number(query.get("offset")) || 0));
  const box = h("div");
  const pager = h("div", { class: "pager" });

  const writeUrl = () => {
    const entries = Object.entries({ ...wanted, offset: offset || "" }).filter(([, v]) => v !== "");
    const qs = new URLSearchParams(entries).toString();
    history.replaceState(null, "", `#/${route}${qs ? `?${qs}` : ""}`);
  };
  const go = (next) => { offset = next; writeUrl(); view.refresh(); };
  const apply = () => {
    for (const [name, el] of Object.entries(filters)) wanted[name] = el.value.trim();
    go(0);
  };
  for (const [name, el] of Object.entries(filters)) {
    el.value = wanted[name];
    el.addEventListener("change", apply);
  }

  const view = {
    box,
    pager,
    /** The filters' <form>: submitting it (Enter in a text field) applies them too. */
    form(label, ...children) {
      return h("form", { class: "filters", role: "search", "aria-label": label,
        onsubmit: (e) => { e.preventDefault(); apply(); } }, ...children);
    },
    async refresh() {
      const jobSelects = Object.values(filters).filter((el) => el.dataset.jobs);
      const [jobs, page] = await Promise.all([
        jobSelects.length ? api("/jobs") : null,
        api(path, { params: { ...wanted, limit: PAGE, offset } }),
      ]);
      for (const select of jobSelects) {
        mount(select, h("option", { value: "" }, "any"), items(jobs).map((j) => h("option", { value: j.tag }, j.tag)));
        select.value = wanted[select.name];
      }
      const rows = items(page);
      render(box, rows, () => view.refresh(), jobs);
      pagerButtons(pager, offset, rows.length, page.has_more, go);
    },
  };
  return view;
}
