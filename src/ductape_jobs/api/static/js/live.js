// Live updates: Server-Sent Events from /api/v1/events, falling back to polling every 2 s when the stream cannot be
// opened or breaks. Views subscribe with live.subscribe(fn), called when runs change ("event: runs") and when the
// stream says to reload ("event: reload": events were missed while it was away). Each lifecycle event of the
// store ("event: lifecycle": name, job_id, run_id, product_tag, at, payload) goes to live.onLifecycle(fn)'s
// listeners, and the indicator's title names the last one. The browser resumes after the last event's id by
// itself (Last-Event-ID) when the stream reconnects.

import { BASE } from "./api.js";

const POLL_MS = 2000;
const RETRY_SSE_MS = 15000;

export class Live {
  constructor(indicator) {
    this.indicator = indicator;
    this.listeners = new Set();
    this.lifecycleListeners = new Set();
    this.lastEvent = null;
    this.source = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.mode = "off";
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onLifecycle(fn) {
    this.lifecycleListeners.add(fn);
    return () => this.lifecycleListeners.delete(fn);
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
    source.addEventListener("reload", () => this.emit()); // events were missed: fetch the current state again
    source.addEventListener("lifecycle", (message) => this.lifecycle(message));
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

  lifecycle(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    this.lastEvent = event;
    if (this.mode === "sse" && this.indicator) {
      this.indicator.title = `Updates are pushed by the server (Server-Sent Events); last event: ${event.name} at ${event.at}`;
    }
    for (const fn of this.lifecycleListeners) fn(event);
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
