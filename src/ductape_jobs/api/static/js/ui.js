// Feedback for actions: a flash line under the top bar, a confirm dialog, and a button wrapper.

import { h, mount } from "./dom.js";

/** Rows per page of the lists. */
export const PAGE = 50;

let flashTimer = null;

export function flash(text, kind = "info") {
  const el = document.getElementById("flash");
  el.textContent = text;
  el.className = `flash ${kind}`;
  el.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 8000 : 4000);
}

/** Run an action from a button: disabled while it runs, a flash with the outcome, then after(). */
export async function act(button, fn, done, after) {
  button.disabled = true;
  try {
    await fn();
    if (done) flash(done);
    if (after) await after();
  } catch (err) {
    flash(err.message || String(err), "error");
  } finally {
    button.disabled = false;
  }
}

/** A modal asking to confirm, with an optional reason field; resolves to {reason} or null. */
export function confirmDialog({ title, text, confirm, danger = false, reason = false }) {
  return new Promise((resolve) => {
    const input = reason ? h("input", { id: "dialog-reason", name: "reason", type: "text", maxlength: 500 }) : null;
    const dialog = h("dialog", { "aria-labelledby": "dialog-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "dialog-title" }, title),
        h("p", {}, text),
        reason ? [h("label", { for: "dialog-reason" }, "Reason (optional)"), input] : null,
        h("div", { class: "toolbar" },
          h("button", { type: "submit", value: "no" }, "Keep"),
          h("button", { type: "submit", value: "yes", class: danger ? "danger solid" : "primary" }, confirm),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "yes";
      const value = input && input.value.trim() ? input.value.trim() : null;
      dialog.remove();
      resolve(ok ? { reason: value } : null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** "1–50  ← Newer  Older →" under a list; go(offset) shows another page. The next page starts after this one's
 * last row: a page the server cut by its size in bytes holds fewer than PAGE. */
export function pagerButtons(box, offset, count, more, go) {
  const prev = h("button", { type: "button", disabled: offset === 0 }, "← Newer");
  const next = h("button", { type: "button", disabled: !more }, "Older →");
  prev.addEventListener("click", () => go(Math.max(0, offset - PAGE)));
  next.addEventListener("click", () => go(offset + count));
  mount(box, offset || more ? [h("span", { class: "muted" }, `${offset + 1}–${offset + count}`), prev, next] : []);
}
