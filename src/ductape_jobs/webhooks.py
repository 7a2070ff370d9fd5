"""Lifecycle webhooks, as the SDK's ``setWebhook``: a product's schedules and runs POST their events to a URL.

Events (``ductape_jobs.lifecycle``): ``job.scheduled``, ``job.paused``, ``job.resumed``, ``job.cancelled``,
``job.started``, ``job.completed``, ``job.failed`` (a run that failed for good) and the attempt-level
``run.queued``, ``run.attempt_failed`` (an attempt failed; a retry is scheduled), ``run.attempt_lost`` (an
attempt's worker stopped heartbeating) and ``run.cancelled`` (an attempt failed, was lost or given back after its
schedule was cancelled: no retry is made). The store writes each event into its outbox in the transaction of the
change it describes, and only when some webhook of the product takes it; a relay (``relay``: the delivery loop
``run``, in every worker process and in ``ductape serve``, before each batch) turns the events after its cursor
into one delivery row per matching webhook and moves the cursor, in one transaction. So a crash at any point
loses no event, and a relay that was down catches up. Due deliveries are then sent::

    POST <url>
    Content-Type: application/json
    X-Ductape-Event: job.completed
    X-Ductape-Delivery: dlv_...
    X-Ductape-Timestamp: <unix seconds>
    X-Ductape-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

    {"id": "dlv_...", "event": "job.completed", "created_at": "...", "data": {"run_id": ..., "job_id": ...}}

(the signature of callbacks: ``ductape_jobs.executors.notify.verify_signature`` checks it). A delivery that
does not get a 2xx answer is retried with exponential backoff (1 s, 2 s, 4 s, ... capped at 1 h) up to
``max_attempts``; every attempt is recorded (status, attempts, last error, delivered_at). A failed attempt's
``last_error`` says what happened, e.g. ``HTTP 500 after 12 ms: <answer>``: the HTTP status, the time taken and
at most 200 characters of the answer (``ductape_jobs.targets.answer_snippet``), with what the webhook's URL keeps
hidden masked. A webhook's URL is shown (answers, the CLI, messages) without its secrets: its scheme, host, port
and first path segment only (``redaction.redact_webhook_url``); deliveries use it whole. Delivery is at least once (a
receiver should de-duplicate on the ``id``: a sender that crashes after a send and before recording it leaves it
to be sent again). A sender starts a delivery only while its hold on the webhook outlasts the send, so no other
sender sends it at the same time; the events of one schedule reach a webhook in the order of their
changes, but a delivery that is retried arrives after the events that followed it.

Targets (``ductape_jobs.targets``): a webhook's URL must be an http(s) URL whose host is, and resolves only
to, public (global unicast) addresses. Loopback, private, shared, link-local, unique-local, multicast,
reserved and unspecified addresses and the cloud metadata hosts (169.254.169.254, fd00:ec2::254,
metadata.google.internal, ...) are refused, unless they are inside a network of the allowlist:
``Ductape(webhook_allow=["10.0.0.0/8"])``, ``ductape serve --webhook-allow 10.0.0.0/8`` or
``$DUCTAPE_WEBHOOK_ALLOW`` (CIDRs, comma separated). The rule is checked when a webhook is created
(``ValidationError`` on field ``url``; 422 through the API) and again before every delivery, after resolving
the host; the delivery then connects to the address it checked and follows no redirect. A delivery whose
target is refused then is not sent and fails for good (``last_error`` says why).

Events cost nothing when nobody listens: an event no webhook takes is not written (the trigger looks it up in
the webhooks table) unless a live stream (the dashboard's, ``api/events.py``) is open, and a process whose cached
webhook list (``ttl``: 5 s) is empty does not look at the outbox. As the outbox may hold events written for a live
stream or another webhook, a webhook takes only the events of changes made since it was created.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import itertools
import os
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ductape_jobs.clock import Clock, iso_text, to_ms
from ductape_jobs.errors import NotFoundError, StoreError, TargetRefused
from ductape_jobs.ids import new_id
from ductape_jobs.lifecycle import KINDS, LifecycleEvent
from ductape_jobs.limits import check_page
from ductape_jobs.logs import Repeats, logger
from ductape_jobs.models import DeliveryStatus, Webhook, WebhookDelivery, check_filter, read_past
from ductape_jobs.redaction import Secrets
from ductape_jobs.store.base import DueDelivery, Store
from ductape_jobs.targets import TargetPolicy, answer_snippet
from ductape_jobs.timing.backoff import Backoff

if TYPE_CHECKING:
    import httpx

    from ductape_jobs.executors.http import HttpError
    from ductape_jobs.inputs import WebhookRequest

log = logger("ductape_jobs.webhooks")

EVENTS = tuple(KINDS)
CONSUMER = "webhooks"  # this consumer's cursor in the outbox
RELAY_BATCH = 500
#: How long a sender holds a webhook it took (``Webhooks(lease=...)``): a sender that dies lets it go at its end.
HOLD = timedelta(seconds=60)
#: Left under a webhook's hold for recording a delivery's outcome after its send (``Webhooks._last_start``).
SEND_MARGIN = timedelta(seconds=5)
#: Webhooks whose deliveries one process sends at once (``Webhooks.run``): fewer than its HTTP client's connections
#: (httpx's pool: 100).
MAX_SENDING = 50
#: A webhook's failed deliveries are logged at most once a FAILURES_LOGGED_EVERY (the first, then a line counting the
#: rest since): a receiver that was down wrote 2,000 warnings a minute, 700 MB of log a day (a probe).
FAILURES_LOGGED_EVERY = timedelta(minutes=1)
EVENT_HEADER = "X-Ductape-Event"
DELIVERY_HEADER = "X-Ductape-Delivery"


class Webhooks:
    """Reached as ``ductape.webhooks``: manage webhooks, emit events, send due deliveries.

    ``allow``: networks (CIDRs) that targets may use besides public addresses (see the module doc for the
    rule); settable later (``ductape.webhooks.allow = ["127.0.0.0/8"]``)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        ttl: float = 5.0,
        backoff: Backoff | None = None,
        max_attempts: int = 8,
        lease: timedelta = HOLD,
        timeout: float = 10.0,
        batch: int = 20,
        allow: Iterable[str] | str | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        if lease < timedelta(seconds=2 * timeout) + SEND_MARGIN:  # no delivery could start under a hold
            raise ValueError(f"lease must be at least twice the timeout plus {SEND_MARGIN.total_seconds():g}s")
        self._store = store
        self.secrets = secrets  # masked out of what a delivery keeps of an answer (the products' secrets)
        self.policy = TargetPolicy.of(allow)
        self._clock = clock
        self.ttl = ttl
        self.backoff = backoff or Backoff(cap=timedelta(hours=1))
        self.max_attempts = max_attempts
        self.lease = lease
        self.timeout = timeout
        self.batch = batch
        self._hooks: list[Webhook] = []
        self._loaded_at: float | None = None
        self._lock = threading.Lock()
        self._failures_logged: dict[str, tuple[datetime, int]] = {}  # by webhook: when last logged, failed since

    @property
    def allow(self) -> tuple[str, ...]:
        """The allowlist, as CIDRs (setting it takes CIDRs, a list or a comma separated string)."""
        return tuple(str(net) for net in self.policy.allow)

    @allow.setter
    def allow(self, networks: Iterable[str] | str | None) -> None:
        self.policy = TargetPolicy.of(networks)

    # -------------------------------------------------------------------------------- management

    def create(self, request: WebhookRequest | dict[str, Any]) -> tuple[Webhook, str]:
        """Store a webhook; returns it and its secret (drawn when the request has none). The secret is shown
        only here: listings never carry it. A target the policy refuses (module doc) is a ``ValidationError``
        on ``url`` (its host is resolved here)."""
        from ductape_jobs.inputs import WebhookRequest, parse  # pydantic: loaded when a webhook is first made

        req = parse(WebhookRequest, request)
        self.policy.check_url(req.url)
        secret = req.secret or "whsec_" + secrets.token_urlsafe(32)
        hook = Webhook(new_id("wh"), req.product_tag, req.url, list(req.events), secret, to_ms(self._clock.now()))
        self._store.add_webhook(hook)
        self.forget()
        return hook, secret

    def list(self, product_tag: str | None = None) -> list[Webhook]:
        return self._store.list_webhooks(product_tag=check_filter(product_tag, "product_tag"))

    def get(self, webhook_id: str) -> Webhook:
        found = self._store.get_webhook(webhook_id)  # an id no id can be is refused by the store, naming id
        if found is None:
            raise NotFoundError("webhook", webhook_id)
        return found

    def delete(self, webhook_id: str) -> None:
        self._store.delete_webhook(webhook_id)
        self.forget()

    def deliveries(
        self, webhook_id: str, *, limit: int = 100, offset: int = 0, after: str | None = None
    ) -> builtins.list[WebhookDelivery]:
        """A webhook's deliveries, newest first; events still in the outbox are relayed first (``relay``), so
        every event written so far is listed, pending if not yet sent. ``after``: a delivery's id (the last of the
        page before): those past it in this order, found by the index where a deep ``offset`` counts every delivery
        before it (``ValidationError`` when the webhook has no such delivery)."""
        check_page(limit, offset)
        self.get(webhook_id)
        self.relay()
        read = functools.partial(self._store.list_deliveries, webhook_id, limit=limit, offset=offset, after=after)
        return read_past(read, "webhook delivery", after, "never made, pruned since, or another webhook's")

    # ---------------------------------------------------------------------------------- relaying

    def forget(self) -> None:
        """Drop the cached webhook list (this process changed it)."""
        with self._lock:
            self._loaded_at = None

    def _current(self) -> builtins.list[Webhook]:
        with self._lock:
            if self._loaded_at is not None and time.monotonic() - self._loaded_at < self.ttl:
                return self._hooks
        hooks = self._store.list_webhooks()
        with self._lock:
            self._hooks, self._loaded_at = hooks, time.monotonic()
        return hooks

    def relay(self) -> int:
        """Turn the lifecycle events of the outbox into deliveries (one per webhook that takes each), until none
        is left; returns how many events. The store moves this consumer's cursor (``CONSUMER``) with the
        deliveries in one transaction, so an event is relayed once, even across a crash."""
        relayed = 0
        while True:
            n = self._store.relay_events(CONSUMER, RELAY_BATCH, self._clock.now(), _fan_out)
            relayed += n
            if n < RELAY_BATCH:
                return relayed

    def flush(self) -> None:
        """``relay`` now (deliveries are then due; ``deliver_due`` also relays first)."""
        self.relay()

    def close(self) -> None:
        """Nothing to finish: events wait in the outbox until a relay takes them."""

    # --------------------------------------------------------------------------------- delivering

    async def deliver_due(self, client: httpx.AsyncClient | None = None) -> int:
        """Send the deliveries due now (one batch); returns how many were attempted. Their webhooks are this
        process's until they are sent (``Store.due_deliveries``): another sends none of theirs meanwhile."""
        now = self._clock.now()
        due = await self._take_due(now)
        if not due:
            return 0
        if client is None:
            import httpx  # loaded when a delivery is first due, not with the package

            async with httpx.AsyncClient(follow_redirects=False) as own:
                await self._send_batch(own, due, now)
        else:
            await self._send_batch(client, due, now)
        return len(due)

    async def _send_batch(self, client: httpx.AsyncClient, due: builtins.list[DueDelivery], now: datetime) -> None:
        """Each webhook's deliveries of the batch (``_send_held``), different webhooks at the same time."""
        ended = await asyncio.gather(
            *(self._send_held(client, queue, now) for queue in _by_hook(due)), return_exceptions=True
        )
        failed = next((e for e in ended if isinstance(e, BaseException)), None)
        if failed is not None:
            raise failed

    async def _send_held(self, client: httpx.AsyncClient, queue: builtins.list[DueDelivery], now: datetime) -> None:
        """One webhook's deliveries in order (oldest first), each started by ``_last_start``, then the webhook held
        for them (since ``now``) let go: another sender may take its next deliveries (a stop meanwhile lets it go
        too; a crash, at the lease's end). A delivery is sent only if it ends before the hold does: past it another
        sender may take the webhook and its claimed deliveries, and would send them again; those left are due again
        at once, in their place. Each webhook is let go when its own queue ends: a slow receiver holds its own
        webhook, never another's (every webhook of a batch waited for the slowest, up to the hold's end)."""
        held_until = now + self.lease
        last_start = self._last_start(held_until)
        unsent = {d.delivery.id for d in queue}
        try:
            for d in queue:
                if self._clock.now() > last_start:
                    return  # this one and those after it: due again once the webhook is let go
                unsent.discard(d.delivery.id)
                await self._send(client, d)
        finally:
            hook = [queue[0].delivery.webhook_id]
            await asyncio.to_thread(self._store.release_webhooks, hook, held_until, sorted(unsent))

    def _last_start(self, held_until: datetime) -> datetime:
        """The latest time a delivery may start under a hold until ``held_until``: a send (resolving its host, then
        the request) takes at most ``timeout`` each, and ``SEND_MARGIN`` is left for recording it."""
        return held_until - timedelta(seconds=2 * self.timeout) - SEND_MARGIN

    async def _take_due(self, now: datetime, limit: int | None = None) -> builtins.list[DueDelivery]:
        """Relay, then lease the deliveries due at ``now`` (one batch, of at most ``limit``) of webhooks no sender
        holds."""
        if not await asyncio.to_thread(self._current):
            return []  # no webhook at all (as of the cache): nothing can be due, no event was written
        await asyncio.to_thread(self.relay)
        return await asyncio.to_thread(self._store.due_deliveries, now, limit or self.batch, self.lease)

    async def _send(self, client: httpx.AsyncClient, due: DueDelivery) -> None:
        d = due.delivery
        headers = {EVENT_HEADER: d.event, DELIVERY_HEADER: d.id, "User-Agent": "ductape-jobs-webhooks"}
        error: str | None = None
        status: int | None = None
        took: int | None = None
        try:
            async with asyncio.timeout(self.timeout):  # a resolver that never answers: within the hold still
                address = await self.policy.resolve(due.url)
        except TargetRefused as exc:  # checked when created; the DNS answer (or the allowlist) changed since
            # not sent; retried, since another process (with the allowlist this one lacks) may send it
            error = f"not sent: {exc}; targets must be public addresses {self.policy.hint()}"
        except TimeoutError:
            error = f"not sent: resolving the target's host took more than {self.timeout:g}s"
        except (OSError, UnicodeError, ValueError) as exc:
            reason = answer_snippet(str(exc) or type(exc).__name__, secrets=self.secrets, url=due.url)
            error = f"not sent: cannot resolve the target's host: {reason}"
        else:
            from ductape_jobs.executors.http import HttpError
            from ductape_jobs.executors.notify import post_callback  # with httpx, at the first delivery

            started = time.perf_counter()
            try:
                answer = await post_callback(
                    client,
                    due.url,
                    d.payload,
                    secret=due.secret,
                    headers=headers,
                    timeout=self.timeout,
                    address=str(address),
                    follow_redirects=False,
                    webhook=True,
                )
                status, took = answer["status"], answer["duration_ms"]
            except HttpError as exc:  # non-2xx or transport: try again later
                status, took, error = failure(exc, started, self.secrets, due.url)
            except Exception as exc:  # anything unexpected: try again later
                reason = answer_snippet(str(exc) or type(exc).__name__, secrets=self.secrets, url=due.url)
                took, error = _ms_since(started), reason
        now = self._clock.now()
        attempt = d.attempts + 1
        retry_at = None
        if error is not None and attempt < self.max_attempts:
            retry_at = now + self.backoff.delay(attempt)
        if error is not None:
            what = f"webhook delivery {d.id} ({d.event}) attempt {attempt} failed" + ("" if retry_at else ", given up")
            self._log_failure(d.webhook_id, what, error, now, last_attempt=retry_at is None)
        await asyncio.to_thread(
            functools.partial(
                self._store.record_delivery,
                d.id,
                now,
                ok=error is None,
                error=error,
                retry_at=retry_at,
                status=status,
                duration_ms=took,
            )
        )

    def _log_failure(self, webhook_id: str, what: str, error: str, now: datetime, last_attempt: bool) -> None:
        """A failed delivery's warning, unless its webhook's last was logged less than ``FAILURES_LOGGED_EVERY`` ago
        (before or after now: a clock stepped back silenced it): then counted, and the next line says how many failed
        since. A delivery given up (its ``last_attempt``) is always logged."""
        last, quiet = self._failures_logged.get(webhook_id, (None, 0))
        if last is not None and abs(now - last) < FAILURES_LOGGED_EVERY and not last_attempt:
            self._failures_logged[webhook_id] = (last, quiet + 1)
            return
        since = f" ({quiet} more of this webhook's deliveries failed since the last such line)" if quiet else ""
        log.warning("%s: %s%s", what, error, since)
        self._failures_logged[webhook_id] = (now, 0)

    async def run(self, stop: asyncio.Event, poll: timedelta = timedelta(seconds=1)) -> None:
        """Send due deliveries until ``stop`` is set, looking every ``poll``. Each webhook's deliveries are sent by a
        task of their own, so the next batch (other webhooks', and the retries that fall due) is taken while a slow
        receiver still answers, up to ``MAX_SENDING`` webhooks at a time (the HTTP client's pool holds 100
        connections: a request waiting for one would time out, recorded as the receiver's failure); at a stop, the
        tasks sending finish first. The HTTP client (httpx) is opened when a delivery is first due, so a process
        whose products have no webhook never loads it."""
        client: httpx.AsyncClient | None = None
        sending: set[asyncio.Task[None]] = set()
        ended = asyncio.Event()  # a webhook's task ended: its next batch may be taken at once, not a poll later
        repeats = Repeats(log, "sending webhook deliveries")  # the store away: not at each poll
        try:
            while not stop.is_set():
                taken = 0
                room = min(self.batch, MAX_SENDING - len(sending))  # a delivery each: a webhook each at most
                if room <= 0:  # the next webhook when one of them is done
                    await _either(stop, ended, poll)
                    ended.clear()
                    continue
                try:
                    now = self._clock.now()
                    due = await self._take_due(now, room)
                    if due:
                        if client is None:
                            import httpx

                            client = httpx.AsyncClient(follow_redirects=False)
                        for queue in _by_hook(due):
                            task = asyncio.create_task(self._send_held(client, queue, now))
                            sending.add(task)
                            task.add_done_callback(functools.partial(_sent, sending, repeats, ended))
                        taken = len(due)
                except StoreError as exc:
                    repeats.failed(exc)
                except Exception:
                    log.exception("sending webhook deliveries failed")
                else:
                    repeats.ok()
                if taken >= room:
                    continue
                await _either(stop, ended, poll)
                ended.clear()
        finally:
            try:
                if sending:
                    await asyncio.gather(*sending, return_exceptions=True)  # each ends within its hold
            finally:  # cancelled meanwhile (a stop that would not wait): the client is closed still
                if client is not None:
                    await client.aclose()


def _by_hook(due: Sequence[DueDelivery]) -> list[list[DueDelivery]]:
    """The deliveries of a batch by webhook, each webhook's in their order."""
    queues: dict[str, list[DueDelivery]] = {}
    for d in due:
        queues.setdefault(d.delivery.webhook_id, []).append(d)
    return list(queues.values())


async def _either(stop: asyncio.Event, ended: asyncio.Event, poll: timedelta) -> None:
    """Until ``stop`` or ``ended`` is set, or ``poll`` passes."""
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(ended.wait())]
    try:
        await asyncio.wait(waits, timeout=poll.total_seconds(), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _sent(sending: set[asyncio.Task[None]], repeats: Repeats, ended: asyncio.Event, task: asyncio.Task[None]) -> None:
    """A webhook's sending task ended: forgotten, its failure logged (the store away: as ``Repeats`` says), and the
    loop woken to take that webhook's next deliveries."""
    sending.discard(task)
    ended.set()
    if task.cancelled():
        return
    exc = task.exception()
    if isinstance(exc, StoreError):
        repeats.failed(exc)
    elif exc is not None:
        log.error("sending a webhook's deliveries failed", exc_info=exc)


def failure(
    exc: HttpError, started: float, secrets: Secrets | None = None, url: str | None = None
) -> tuple[int | None, int, str]:
    """A failed attempt's status (``None``: no answer), duration (ms) and ``last_error``:
    ``HTTP 500 after 12 ms: <snippet>`` or ``ConnectError: ... after 3 ms`` (never more of the answer than
    ``answer_snippet`` keeps; what the webhook's ``url`` hides is masked in it)."""
    details = exc.details or {}
    took = details.get("duration_ms")
    if not isinstance(took, int):
        took = _ms_since(started)
    status = details.get("status")
    if isinstance(status, int):
        text = f"HTTP {status} after {took} ms"
        if 300 <= status < 400:
            return status, took, text + " (redirects are not followed)"
        snippet = answer_snippet(details.get("body"), secrets=secrets, url=url)
        return status, took, f"{text}: {snippet}" if snippet else text
    reason = details.get("error") or str(exc) or type(exc).__name__
    return None, took, f"{answer_snippet(str(reason), secrets=secrets, url=url)} after {took} ms"


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


_sequence = itertools.count()


def _delivery_id() -> str:
    """Like ``ids.new_id`` (a millisecond prefix, then random bits), with a sequence number in between, so the
    deliveries of one process sort in the order their events happened even within a millisecond."""
    return f"dlv_{time.time_ns() // 1_000_000:011x}{next(_sequence) % 16**6:06x}{os.urandom(5).hex()}"


def _fan_out(events: Sequence[LifecycleEvent], hooks: Sequence[Webhook]) -> builtins.list[WebhookDelivery]:
    """One delivery per (event, webhook of its product that takes it), in the order of the events. A webhook takes
    only the events of changes made since it was created: the outbox may hold older ones (written for another
    webhook of the product, or for a live stream, which has every event written)."""
    out: builtins.list[WebhookDelivery] = []
    for event in events:
        for hook in hooks:
            if (
                hook.product_tag == event.product_tag
                and event.name
                and event.name in hook.events
                and event.at >= hook.created_at
            ):
                out.append(_delivery(hook, event))
    return out


def _delivery(hook: Webhook, event: LifecycleEvent) -> WebhookDelivery:
    delivery_id = _delivery_id()
    body = {"id": delivery_id, "event": event.name, "created_at": iso_text(event.at), "data": event.payload()}
    return WebhookDelivery(
        delivery_id, hook.id, event.name, body, DeliveryStatus.PENDING, 0, event.at, next_attempt_at=event.at
    )


if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        """``WebhookRequest``, here until inputs.py took it (an older import finds it; no pydantic loads before)."""
        if name == "WebhookRequest":
            from ductape_jobs.inputs import WebhookRequest

            return WebhookRequest
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
