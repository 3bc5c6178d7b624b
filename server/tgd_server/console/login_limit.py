"""Login rate limiting: at most N failed logins per IP and per username in a window.

The failures are the `login_failed` rows of the security log, so every server
process (and a restarted one) counts the same attempts. The decision itself is a
pure function of the failure times.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
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
