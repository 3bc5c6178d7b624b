"""Live events for the police console (Server-Sent Events) and the benchmarks.

In one process the bus is an in-memory fan-out: `publish()` puts the event in the
queue of every current subscriber. When the server runs as several processes on
PostgreSQL, `enable_pg_fanout(url)` adds LISTEN/NOTIFY on top: every event
published here is also sent with `pg_notify`, and a listener thread delivers the
events of the *other* processes to this process's subscribers. Local delivery
never waits for PostgreSQL, and a PostgreSQL outage never loses a local event.
This module stays the single place events go through: `publish()` and
`subscribe()` keep the same signatures whatever the fan-out.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

_MAX_QUEUED = 10_000  # a stalled console tab must not grow memory without bound
PG_CHANNEL = "tgd_events"
_PG_PAYLOAD_LIMIT = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
RESYNC_EVENT = "bus.resync"  # "you may have missed events: reload what you show"

_lock = threading.Lock()
_subscribers: set[Subscription] = set()


class Subscription:
    """One listener (one console page, one benchmark probe)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=_MAX_QUEUED)
        self.dropped = 0

    def _offer(self, event: dict) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def get(self, timeout: float | None = None) -> dict | None:
        """Next event, or None after `timeout` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def iter(self, timeout: float) -> Iterator[dict | None]:
        """Yields events, and None every `timeout` seconds of silence (for keep-alives)."""
        while True:
            yield self.get(timeout)

    def close(self) -> None:
        with _lock:
            _subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def subscribe() -> Subscription:
    _ensure_pg_bridge()
    sub = Subscription()
    with _lock:
        _subscribers.add(sub)
    return sub


def publish(event: dict) -> None:
    """Deliver `event` to every subscriber (of every process when PG fan-out is on).

    `event["type"]` names it.
    """
    event.setdefault("published_at", time.time())
    _deliver_locally(event)
    bridge = _ensure_pg_bridge()
    if bridge is not None:
        bridge.enqueue(event)  # sent by the bridge's sender thread, batched with others


def _deliver_locally(event: dict) -> None:
    with _lock:
        targets = list(_subscribers)
    for sub in targets:
        sub._offer(event)


# --- PostgreSQL LISTEN/NOTIFY fan-out across processes --------------------------------

_pg_url: str | None = None
_pg_bridge: PgBridge | None = None
_STOP_SENDING = object()


def enable_pg_fanout(database_url: str) -> None:
    """Fan events out across processes through PostgreSQL `database_url`.

    Accepts an SQLAlchemy URL (`postgresql+psycopg://...`) or a libpq one. Nothing
    connects here: the bridge starts on the first publish/subscribe of each process,
    so a pre-forking server (gunicorn --preload) gets one bridge per worker.
    """
    global _pg_url
    with _lock:
        _pg_url = to_libpq_url(database_url)


def disable_pg_fanout() -> None:
    global _pg_url, _pg_bridge
    with _lock:
        bridge, _pg_bridge, _pg_url = _pg_bridge, None, None
    if bridge is not None:
        bridge.stop()


def pg_fanout_status() -> dict:
    """For health pages and tests: is the bridge on, connected, how many failures."""
    bridge = _pg_bridge
    if bridge is None:
        return {"enabled": _pg_url is not None, "listening": False}
    return {
        "enabled": True,
        "listening": bridge.listening.is_set(),
        "send_failures": bridge.send_failures,
        "received": bridge.received,
    }


def to_libpq_url(database_url: str) -> str:
    """`postgresql+psycopg://u@h/db` -> `postgresql://u@h/db` (libpq has no driver part)."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise ValueError(f"not a PostgreSQL URL: {scheme or database_url!r}")
    return "postgresql://" + rest


def _ensure_pg_bridge() -> PgBridge | None:
    global _pg_bridge
    if _pg_url is None:
        return None
    bridge = _pg_bridge
    if bridge is not None and bridge.pid == os.getpid():
        return bridge
    with _lock:
        # Re-check under the lock; a bridge inherited through fork() has no thread.
        if _pg_bridge is None or _pg_bridge.pid != os.getpid():
            _pg_bridge = PgBridge(_pg_url, deliver=_deliver_locally)
            _pg_bridge.start()
            atexit.register(_send_queued_at_exit, _pg_bridge)
        return _pg_bridge


def _send_queued_at_exit(bridge: PgBridge) -> None:
    """A process that exits right after publishing (a command, a worker restart) still
    sends what its sender thread holds."""
    if bridge.pid == os.getpid():
        bridge.stop()


def encode_for_notify(event: dict, origin: str) -> str | None:
    """The NOTIFY payload of one event: its origin first, then the event, shrunk to its
    scalar keys if too big.

    None when even that does not fit (the event then stays local, and is logged).
    """
    payload = json.dumps({"_origin": origin, **event}, separators=(",", ":"), default=str)
    if len(payload.encode()) < _PG_PAYLOAD_LIMIT:
        return payload
    slim = {k: v for k, v in event.items() if isinstance(v, str | int | float | bool | None)}
    slim = {"_origin": origin, **slim, "truncated": True}
    payload = json.dumps(slim, separators=(",", ":"), default=str)
    if len(payload.encode()) < _PG_PAYLOAD_LIMIT:
        return payload
    return None


def encode_batch_for_notify(events_: list[dict], origin: str) -> tuple[list[str], int]:
    """NOTIFY payloads carrying `events_` in order, as many per payload as fit:
    `{"_origin": ..., "events": [...]}` (one event alone keeps the one-event form).
    Returns (payloads, number of events too large even slimmed, left out)."""
    head = json.dumps({"_origin": origin}, separators=(",", ":"))[:-1] + ',"events":['
    origin_prefix = '{"_origin":' + json.dumps(origin)
    payloads: list[str] = []
    parts: list[str] = []
    last_single = ""
    size = len(head.encode()) + 2
    dropped = 0

    def flush() -> None:
        if len(parts) == 1:
            payloads.append(last_single)
        elif parts:
            payloads.append(head + ",".join(parts) + "]}")

    for event in events_:
        single = encode_for_notify(event, origin)
        if single is None:
            dropped += 1
            continue
        # The event alone, without the origin (the batch carries it once).
        part = "{" + single[len(origin_prefix):].lstrip(",")
        part_size = len(part.encode()) + 1
        if parts and size + part_size >= _PG_PAYLOAD_LIMIT:
            flush()
            parts, size = [], len(head.encode()) + 2
        parts.append(part)
        last_single = single
        size += part_size
    flush()
    return payloads, dropped


class PgBridge:
    """One process's link to the other processes: a sender and a listener thread."""

    RECONNECT_DELAYS_S = (0.5, 1, 2, 5)
    SEND_PAUSE_AFTER_FAILURE_S = 2.0
    SEND_BATCH = 500  # events taken from the outbox per round trip

    def __init__(
        self,
        url: str,
        deliver: Callable[[dict], None],
        origin: str | None = None,
        channel: str = PG_CHANNEL,
    ) -> None:
        self.url = url
        self.deliver = deliver
        self.origin = origin or f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.channel = channel
        self.pid = os.getpid()
        self.listening = threading.Event()
        self.send_failures = 0
        self.received = 0
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._send_conn = None
        self._send_paused_until = 0.0
        self._thread: threading.Thread | None = None
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        # Our own notifications come back to our listener: recognised by this prefix
        # without parsing them.
        self._own_prefix = '{"_origin":' + json.dumps(self.origin) + ","

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._listen_forever, name="tgd-events-pg-listen", daemon=True
        )
        self._thread.start()
        self._sender = threading.Thread(
            target=self._send_forever, name="tgd-events-pg-send", daemon=True
        )
        self._sender.start()

    def stop(self) -> None:
        if self._sender is not None:
            self._outbox.put(_STOP_SENDING)  # after what is queued: sent before stopping
            self._sender.join(timeout=5)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._send_lock:
            if self._send_conn is not None:
                self._send_conn.close()
                self._send_conn = None

    def enqueue(self, event: dict) -> None:
        """Send `event` soon, from the sender thread: the publisher does not wait on
        PostgreSQL, and the events waiting together go in one round trip, several per
        NOTIFY (each NOTIFY costs PostgreSQL and every listening process CPU)."""
        if self._sender is None:
            self.send(event)
        else:
            self._outbox.put(event)

    def _send_forever(self) -> None:
        with self._send_lock:  # connect now: the first event does not wait for it
            try:
                self._send_conn = self._connect()
            except Exception as exc:  # retried on the first send
                log.warning("NOTIFY connection failed: %s", exc)
        while True:
            batch = [self._outbox.get()]
            while len(batch) < self.SEND_BATCH:
                try:
                    batch.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is _STOP_SENDING
            batch = [event for event in batch if event is not _STOP_SENDING]
            if batch:
                try:
                    self.send_many(batch)
                except Exception:  # never let the sender thread die
                    log.exception("sending %d events failed", len(batch))
            if stop:
                return

    def send(self, event: dict) -> bool:
        """Send one event now (True when PostgreSQL took it)."""
        return self.send_many([event])

    def send_many(self, events_: list[dict]) -> bool:
        payloads, dropped = encode_batch_for_notify(events_, self.origin)
        if dropped:
            log.warning("%d event(s) too large for NOTIFY: kept local", dropped)
            self.send_failures += dropped
        if not payloads:
            return False
        with self._send_lock:
            if time.monotonic() < self._send_paused_until:
                # PostgreSQL just failed us: do not make every ingest wait on it again.
                self.send_failures += 1
                return False
            statement = "SELECT " + ", ".join(["pg_notify(%s, %s)"] * len(payloads))
            params = [value for payload in payloads for value in (self.channel, payload)]
            for attempt in (1, 2):  # a connection dropped by the server is re-opened once
                try:
                    if self._send_conn is None or self._send_conn.closed:
                        self._send_conn = self._connect()
                    self._send_conn.execute(statement, params)
                    return not dropped
                except Exception as exc:  # psycopg.Error and socket errors alike
                    log.warning("NOTIFY failed (attempt %d): %s", attempt, exc)
                    self._close_sender()
            self.send_failures += 1
            self._send_paused_until = time.monotonic() + self.SEND_PAUSE_AFTER_FAILURE_S
            return False

    def _close_sender(self) -> None:
        if self._send_conn is not None:
            try:
                self._send_conn.close()
            except Exception:  # already broken: nothing more to release
                pass
            self._send_conn = None

    def _connect(self):
        import psycopg  # only servers on PostgreSQL need the driver

        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def _listen_forever(self) -> None:
        failures = 0
        first = True
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self.listening.set()
                    failures = 0
                    if not first:
                        # Events sent while we were away are lost to us: tell the pages.
                        self.deliver({"type": RESYNC_EVENT, "published_at": time.time()})
                    first = False
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._on_notify(note.payload)
            except Exception as exc:
                self.listening.clear()
                delay = self.RECONNECT_DELAYS_S[min(failures, len(self.RECONNECT_DELAYS_S) - 1)]
                failures += 1
                log.warning("event listener lost PostgreSQL (%s): retry in %ss", exc, delay)
                self._stop.wait(delay)
        self.listening.clear()

    def _on_notify(self, payload: str) -> None:
        if payload.startswith(self._own_prefix):
            return  # our own events were already delivered locally
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("ignored a non-JSON notification on %s", self.channel)
            return
        if not isinstance(event, dict) or event.pop("_origin", None) == self.origin:
            return
        batch = event.get("events") if set(event) == {"events"} else None
        for one in batch if isinstance(batch, list) else [event]:
            if isinstance(one, dict):
                self.received += 1
                self.deliver(one)
