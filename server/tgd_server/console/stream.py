"""Server-Sent Events: the console's live feed, from events.subscribe().

The browser gets only what changed (event type, alarm and device ids, state),
never positions or names: it then fetches the page parts it shows, and those
fetches are access-checked and audited like any page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from ..events import RESYNC_EVENT, Subscription

KEEPALIVE_S = 15.0
MAX_STREAM_S = 3600.0  # recycle long connections; EventSource reconnects by itself
RETRY_MS = 2000
FORWARDED_KEYS = ("type", "alarm_id", "device_id", "state", "aid")


def browser_event(event: dict) -> dict:
    return {k: event[k] for k in FORWARDED_KEYS if k in event}


def format_event(event: dict) -> str:
    data = browser_event(event)
    name = str(data.get("type", "message")).replace("\n", "")
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def event_stream(sub: Subscription, keepalive_s: float = KEEPALIVE_S,
                 max_s: float = MAX_STREAM_S) -> Iterator[str]:
    """Yields SSE text until `max_s`; a comment line every `keepalive_s` of silence.

    Closes the subscription however the stream ends (client gone, server stopping).
    """
    started = time.monotonic()
    dropped = sub.dropped
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        for event in sub.iter(timeout=keepalive_s):
            if sub.dropped != dropped:
                # This page fell so far behind that events were dropped: make it reload.
                dropped = sub.dropped
                yield format_event({"type": RESYNC_EVENT})
            if event is None:
                yield ": keep-alive\n\n"
            else:
                yield format_event(event)
            if time.monotonic() - started > max_s:
                return
    finally:
        sub.close()
