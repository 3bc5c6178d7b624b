"""The security log: refused requests, sanitised, bounded, and never a cause of failure.

- Whatever a stranger sent is cleaned before it is stored (`clean_text`): no NUL
  (PostgreSQL text cannot hold one), no lone surrogate (neither database can encode
  one), lengths capped; the body excerpt is its first EXCERPT_BYTES bytes, escaped.
- Repeats are aggregated (`Aggregator`): the same refusal (channel, source, event,
  device) within AGGREGATE_WINDOW is one row whose `repeats` grows, so a flood costs
  one row per source and reason every few minutes, not one per request. Failed logins
  stay one row each (the login limits count them).
- Rows are stored inside a SAVEPOINT: a row that still fails is logged as text and
  dropped, never the transaction around it (the ingest batch with its alarms).
- `purge-positions` deletes the rows older than the retention (retention.py).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections import Counter

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session, sessionmaker

from . import db
from .models import SecurityLog, utcnow

log = logging.getLogger("tgd.security")

EXCERPT_BYTES = 512
AGGREGATE_WINDOW_S = 300.0
NOT_AGGREGATED = frozenset({"login_failed"})  # counted row by row by the login limits
_MAX_OPEN = 10_000

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(value, limit: int | None = None) -> str:
    """`value` as text any database stores: NUL and lone surrogates become U+FFFD."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None:
        text = text[:limit]
    return _UNSTORABLE.sub("\ufffd", text)


def excerpt(body: bytes) -> str:
    """Printable first bytes of a refused body (kept so a refused alarm can still be read)."""
    text = body[:EXCERPT_BYTES].decode("utf-8", errors="backslashreplace")
    return text.replace("\x00", "\\x00")


def refusal_row(channel: str, source: str, event: str, device_id: str | None = None,
                detail: str = "", body: bytes = b"") -> SecurityLog:
    """The security-log row of a refusal (logged as one line too), not yet stored."""
    channel, source, event = clean_text(channel, 16), clean_text(source, 128), clean_text(event, 32)
    device_id = clean_text(device_id, 64) if device_id else None
    detail = clean_text(detail, 1000)
    log.warning("refused channel=%s source=%s event=%s dev=%s detail=%s",
                channel, source, event, device_id, detail)
    now = utcnow()
    return SecurityLog(at=now, last_at=now, repeats=1, channel=channel, source=source,
                       event=event, device_id=device_id, detail=detail,
                       body_excerpt=excerpt(body))


_TABLE = SecurityLog.__table__
_REPEAT = (update(_TABLE).where(_TABLE.c.id == bindparam("rid"))
           .values(repeats=_TABLE.c.repeats + bindparam("n"),
                   last_at=bindparam("t", type_=_TABLE.c.last_at.type)))


class Aggregator:
    """Stores refusal rows for one database, one row per (channel, source, event,
    device) and window. Remembers the rows it opened (in this process)."""

    def __init__(self) -> None:
        self._open: dict[tuple, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def store(self, session: Session, rows: list[SecurityLog]) -> int:
        """Add or aggregate `rows` in `session`'s transaction; returns the rows dropped.

        Never raises for a row's content: the rows go in a SAVEPOINT, and if that
        fails each row is retried alone, stripped to its bare facts, then dropped.
        """
        if not rows:
            return 0
        try:
            with session.begin_nested():
                self._store(session, rows)
            return 0
        except Exception:
            log.exception("security log: %d rows failed together, storing one by one",
                          len(rows))
        dropped = 0
        for row in rows:
            bare = SecurityLog(at=row.at, last_at=row.at, repeats=row.repeats or 1,
                               channel=_ascii(row.channel, 16), source=_ascii(row.source, 128),
                               event=_ascii(row.event, 32), device_id=None,
                               detail=_ascii(row.detail, 1000), body_excerpt="")
            try:
                with session.begin_nested():
                    session.add(bare)
                    session.flush()
            except Exception:
                log.exception("security log row dropped: %s %s", bare.event, bare.source)
                dropped += 1
        return dropped

    def _store(self, session: Session, rows: list[SecurityLog]) -> None:
        now, wall = time.monotonic(), utcnow()
        fresh: dict[tuple, SecurityLog] = {}
        repeats: Counter = Counter()
        with self._lock:
            for row in rows:
                if row.event in NOT_AGGREGATED:
                    session.add(row)
                    continue
                key = (row.channel, row.source, row.event, row.device_id)
                first = fresh.get(key)
                if first is not None:
                    first.repeats += 1
                    first.last_at = row.at
                    continue
                known = self._open.get(key)
                if known is not None and now - known[1] < AGGREGATE_WINDOW_S:
                    repeats[known[0]] += 1
                    continue
                session.add(row)
                fresh[key] = row
        session.flush()
        if repeats:
            session.connection().execute(_REPEAT, [{"rid": rid, "n": n, "t": wall}
                                                   for rid, n in repeats.items()])
        with self._lock:
            if len(self._open) > _MAX_OPEN:
                self._open = {k: v for k, v in self._open.items()
                              if now - v[1] < AGGREGATE_WINDOW_S}
                if len(self._open) > _MAX_OPEN:
                    self._open.clear()
            for key, row in fresh.items():
                self._open[key] = (row.id, now)


def _ascii(value, limit: int) -> str:
    return (value or "").encode("ascii", "backslashreplace").decode("ascii")[:limit]


_aggregators: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_aggregators_lock = threading.Lock()


def aggregator(factory: sessionmaker) -> Aggregator:
    """The aggregator of `factory`'s database (one per session factory, so per app)."""
    with _aggregators_lock:
        found = _aggregators.get(factory)
        if found is None:
            found = _aggregators[factory] = Aggregator()
        return found


def log_refusal(channel: str, source: str, event: str, device_id: str | None = None,
                detail: str = "", body: bytes = b"",
                factory: sessionmaker | None = None) -> None:
    """Store a refusal in its own write transaction (the console, the API, MQTT).

    The device ingest stores its refusals through its writer instead
    (ingest.log_ingest_refusal), so that a flood of bad requests costs no extra
    transactions and cannot starve real messages of the database."""
    row = refusal_row(channel, source, event, device_id, detail, body)
    factory = factory or db.session_factory()
    with db.write_session(factory) as session:
        aggregator(factory).store(session, [row])
