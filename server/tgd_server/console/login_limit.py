"""Login rate limiting: at most N failed logins per IP and per username in a window.

The failures are the `login_failed` rows of the security log, so every server
process (and a restarted one) counts the same attempts. The decision itself is a
pure function of the failure times.

Checking the count, verifying the password and logging the failure is one critical
section per address and per username (`serialised`): otherwise twenty attempts sent
at once would all read "4 failures" and all be tried. Inside one process a striped
lock serialises them; across processes PostgreSQL's transaction-scoped advisory
locks do (SQLite deployments run one server process, see docs/server.md).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ..models import SecurityLog

CHANNEL = "console"
EVENT_FAILED = "login_failed"
EVENT_LIMITED = "login_rate_limited"
MAX_FAILURES = 5
WINDOW = timedelta(minutes=5)


def retry_after(failures: Sequence[datetime], now: datetime,
                max_failures: int = MAX_FAILURES, window: timedelta = WINDOW) -> float:
    """Seconds before another attempt is allowed (0: allowed now).

    `failures` are the failure times in the window, oldest first.
    """
    recent = [t for t in failures if t > now - window]
    if len(recent) < max_failures:
        return 0.0
    unlock_at = recent[-max_failures] + window
    return max(0.0, (unlock_at - now).total_seconds())


_STRIPES = tuple(threading.Lock() for _ in range(64))


def _lock_key(kind: str, value: str) -> int:
    """A stable signed 64-bit key for `kind:value` (the same in every process)."""
    digest = hashlib.sha256(f"tgd-login:{kind}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_keys(ip: str, username: str) -> list[int]:
    return sorted({_lock_key("ip", ip), _lock_key("user", username.strip().lower())})


def lock_across_processes(session: Session, keys: list[int]) -> None:
    """PostgreSQL: wait for the advisory locks of `keys` (held until the transaction ends)."""
    if session.get_bind().dialect.name == "postgresql":
        for key in keys:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@contextmanager
def serialised(session: Session, ip: str, username: str) -> Iterator[None]:
    """Hold the locks of this address and this username for a check-verify-log turn.

    Locks are taken in key order, so two requests never wait for each other in a
    cycle. The PostgreSQL locks are released when `session`'s transaction ends:
    log the failure before ending it.
    """
    keys = lock_keys(ip, username)
    stripes = sorted({key % len(_STRIPES) for key in keys})
    for index in stripes:
        _STRIPES[index].acquire()
    try:
        lock_across_processes(session, keys)
        yield
    finally:
        for index in reversed(stripes):
            _STRIPES[index].release()


def user_detail(username: str) -> str:
    return "user=" + username.strip().lower()[:64]


def failure_times(session: Session, ip: str, username: str, now: datetime,
                  user_since: datetime | None = None,
                  window: timedelta = WINDOW) -> tuple[list[datetime], list[datetime]]:
    """(failures from this IP, failures for this username) in the window, oldest first.

    `user_since` (the user's last successful login) drops the username's older failures.
    """
    base = select(SecurityLog.at).where(
        SecurityLog.channel == CHANNEL,
        SecurityLog.event == EVENT_FAILED,
        SecurityLog.at > now - window,
    ).order_by(SecurityLog.at)
    by_ip = list(session.scalars(base.where(SecurityLog.source == ip)))
    by_user_q = base.where(SecurityLog.detail == user_detail(username))
    if user_since is not None:
        by_user_q = by_user_q.where(SecurityLog.at > user_since)
    by_user = list(session.scalars(by_user_q))
    return by_ip, by_user


def count_failures(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(SecurityLog).where(
        SecurityLog.channel == CHANNEL, SecurityLog.event == EVENT_FAILED)) or 0
