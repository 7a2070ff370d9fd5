// Live updates: Server-Sent Events from /api/v1/events ("event: runs" when runs change), falling back to
// polling every 2 s when the stream cannot be opened or breaks. Views subscribe with live.subscribe(fn).

import { BASE } from "./api.js";

const POLL_MS = 2000;
const RETRY_SSE_MS = 15000;

export class Live {
  constructor(indicator) {
    this.indicator = indicator;
    this.listeners = new Set();
    this.source = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.mode = "off";
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start() {
    if (!("EventSource" in window)) return this.poll("this browser has no EventSource");
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    const source = new EventSource(`${BASE}/events`, { withCredentials: true });
    this.source = source;
    source.addEventListener("open", () => {
      this.stopPolling();
      this.show("sse", "live", "Updates are pushed by the server (Server-Sent Events)");
      this.emit(); // catch up on what changed while the stream was down
    });
    source.addEventListener("runs", () => this.emit());
    source.addEventListener("schedules", () => this.emit());
    source.addEventListener("error", () => {
      // EventSource retries by itself while it can; either way poll until the stream is back.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        this.source = null;
        this.retryTimer = setTimeout(() => this.connect(), RETRY_SSE_MS);
      }
      this.poll("the event stream is unavailable");
    });
  }

  poll(why) {
    if (this.pollTimer) return;
    this.show("polling", "polling", `Polling every ${POLL_MS / 1000} s: ${why}`);
    this.pollTimer = setInterval(() => this.emit(), POLL_MS);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  emit() {
    for (const fn of this.listeners) fn();
  }

  show(mode, text, title) {
    this.mode = mode;
    if (!this.indicator) return;
    this.indicator.className = `live ${mode}`;
    this.indicator.textContent = text;
    this.indicator.title = title;
  }
}
