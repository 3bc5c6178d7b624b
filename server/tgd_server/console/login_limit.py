"""Login rate limiting (OWASP authentication guidance): per address, and per account
in a way an attacker cannot turn into a denial of service.

- Per address: at most N failed logins from one address in a window (429 after).
- Per account: N failed logins for one username in the window (from any addresses)
  lock the account for *unknown* clients only. A client the account has logged in
  from before passes the lock: a browser holding the signed "known device" cookie
  that a successful login of this user gave it, or an address this user logged in
  from (audit log) within KNOWN_ADDRESS_DAYS. Twenty addresses guessing an operator's
  password lock nobody out of the console at the police station.
- A known-device browser passes the address limit too (an attacker behind the same
  NAT cannot lock the station out), with a limit of its own: N failures carrying its
  cookie (the cookie's nonce is the failure row's `device_id`, "browser:<nonce>").

The failures are the `login_failed` rows of the security log, so every server
process (and a restarted one) counts the same attempts; a refusal by the account
lock is a `login_account_locked` row, by the address limit a `login_rate_limited`
row. The decision itself is a pure function of the failure times (`retry_after`).

Checking the count, verifying the password and logging the failure is one critical
section per address and per username (`serialised`): otherwise twenty attempts sent
at once would all read "4 failures" and all be tried. Inside one process a striped
lock serialises them; across processes PostgreSQL's transaction-scoped advisory
locks do (SQLite deployments run one server process, see docs/server.md).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ..models import AuditLog, SecurityLog

CHANNEL = "console"
EVENT_FAILED = "login_failed"
EVENT_LIMITED = "login_rate_limited"  # the address is over its limit
EVENT_ACCOUNT_LOCKED = "login_account_locked"  # the account is locked for unknown clients
MAX_FAILURES = 5
WINDOW = timedelta(minutes=5)
KNOWN_ADDRESS_DAYS = 90
DEVICE_COOKIE = "tgd_known_device"
DEVICE_COOKIE_MAX_AGE_S = KNOWN_ADDRESS_DAYS * 86400
_DEVICE_COOKIE_SALT = "tgd-login-known-device"


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


def device_cookie(secret_key: str, user_id: int) -> str:
    """The signed "known device" cookie a successful login of `user_id` leaves."""
    return URLSafeTimedSerializer(secret_key, salt=_DEVICE_COOKIE_SALT).dumps(
        [user_id, secrets.token_hex(8)])


def read_device_cookie(secret_key: str, cookie: str | None) -> tuple[int, str] | None:
    """(user id, nonce) of a valid, unexpired known-device cookie."""
    if not cookie or len(cookie) > 512:
        return None
    try:
        value = URLSafeTimedSerializer(secret_key, salt=_DEVICE_COOKIE_SALT).loads(
            cookie, max_age=DEVICE_COOKIE_MAX_AGE_S)
    except BadSignature:
        return None
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
            and isinstance(value[1], str) and len(value[1]) == 16):
        return value[0], value[1]
    return None


def browser_tag(nonce: str) -> str:
    """The security-log `device_id` of a failure sent with a known-device cookie."""
    return "browser:" + nonce


def browser_failure_times(session: Session, nonce: str, now: datetime,
                          window: timedelta = WINDOW) -> list[datetime]:
    return list(session.scalars(select(SecurityLog.at).where(
        SecurityLog.channel == CHANNEL, SecurityLog.event == EVENT_FAILED,
        SecurityLog.at > now - window, SecurityLog.device_id == browser_tag(nonce))
        .order_by(SecurityLog.at)))


def known_address(session: Session, user_id: int, ip: str, now: datetime) -> bool:
    """Whether `user_id` logged in from `ip` within KNOWN_ADDRESS_DAYS (audit log)."""
    return session.scalar(
        select(AuditLog.id).where(
            AuditLog.at > now - timedelta(days=KNOWN_ADDRESS_DAYS),
            AuditLog.user_id == user_id, AuditLog.action == "login",
            AuditLog.detail == f"ip={ip}").limit(1)) is not None


def decide(by_ip: Sequence[datetime], by_user: Sequence[datetime], now: datetime,
           known_client: bool,
           by_browser: Sequence[datetime] | None = None) -> tuple[float, str | None]:
    """(seconds to wait, refusal event) for a login attempt; (0, None) lets it through.

    `by_browser`: the failures of a valid known-device cookie of this user (None: no
    such cookie); under its own limit it passes both limits. Otherwise the address
    limit holds, and the account limit for unknown clients (`known_client` False).
    """
    if by_browser is not None:
        wait_browser = retry_after(by_browser, now)
        return (0.0, None) if wait_browser == 0 else (wait_browser, EVENT_LIMITED)
    wait_ip = retry_after(by_ip, now)
    if wait_ip > 0:
        return wait_ip, EVENT_LIMITED
    wait_user = 0.0 if known_client else retry_after(by_user, now)
    if wait_user > 0:
        return wait_user, EVENT_ACCOUNT_LOCKED
    return 0.0, None


def attacks(session: Session, now: datetime, hours: int = 24) -> list[dict]:
    """Failed logins of the last `hours` by username: the audit page's attack summary.

    Each: username, failures, addresses (distinct), refused (attempts refused by the
    limits), last (time of the last failure); the most failures first.
    """
    since = now - timedelta(hours=hours)
    failed = session.execute(
        select(SecurityLog.detail, func.count(), func.count(SecurityLog.source.distinct()),
               func.max(SecurityLog.at))
        .where(SecurityLog.channel == CHANNEL, SecurityLog.event == EVENT_FAILED,
               SecurityLog.at > since)
        .group_by(SecurityLog.detail)).all()
    refused = dict(session.execute(
        select(SecurityLog.detail, func.coalesce(func.sum(SecurityLog.repeats), 0))
        .where(SecurityLog.channel == CHANNEL,
               SecurityLog.event.in_((EVENT_LIMITED, EVENT_ACCOUNT_LOCKED)),
               SecurityLog.at > since)
        .group_by(SecurityLog.detail)).all())
    rows = [{"username": detail.removeprefix("user="), "failures": failures,
             "addresses": addresses, "refused": int(refused.get(detail, 0)), "last": last}
            for detail, failures, addresses, last in failed]
    return sorted(rows, key=lambda r: (-r["failures"], r["username"]))


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
