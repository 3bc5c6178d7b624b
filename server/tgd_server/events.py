"""Live events for the police console (Server-Sent Events) and the benchmarks.

In one process the bus is an in-memory fan-out: `publish()` puts the event in the
queue of every current subscriber. Across several server processes on PostgreSQL
the console part adds LISTEN/NOTIFY on top (see console/), so this module stays
the single place events go through.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

_MAX_QUEUED = 10_000  # a stalled console tab must not grow memory without bound

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
    sub = Subscription()
    with _lock:
        _subscribers.add(sub)
    return sub


def publish(event: dict) -> None:
    """Deliver `event` to every subscriber. `event["type"]` names it."""
    event.setdefault("published_at", time.time())
    with _lock:
        targets = list(_subscribers)
    for sub in targets:
        sub._offer(event)
