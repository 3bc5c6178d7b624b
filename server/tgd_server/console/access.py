"""Who is logged in, what their role lets them see, and the guards every request passes.

- Session cookie (Flask's signed cookie; Secure/HttpOnly/SameSite=Strict from settings),
  holding the user id and the login time; the user is re-read on every request so a
  deactivated account or a changed role takes effect at once.
- `require_roles(...)` on each view; technicians and admins never see cases.
- CSRF on every POST; a Content-Security-Policy without 'unsafe-inline' on every page.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import select

from .. import db
from ..auth import CASE_READERS, DEVICE_READERS
from ..models import AuditLog, User
from . import csrf

AUDIT_READERS = ("supervisor", "admin")
SESSION_MAX_AGE_S = 12 * 3600  # one shift; then log in again


class NotLoggedIn(Exception):
    """The request needs a logged-in user."""


def current_user() -> User | None:
    if "console_user" in g:
        return g.console_user
    user = None
    user_id = session.get("uid")
    sid = session.get("sid")
    logged_in_at = session.get("login_at", 0)
    if user_id is not None and sid and time.time() - logged_in_at < SESSION_MAX_AGE_S:
        db_session = db.get_session()
        candidate = db_session.get(User, user_id)
        if candidate is not None and candidate.active and not _logged_out(
                db_session, user_id, sid, logged_in_at):
            user = candidate
    g.console_user = user
    return user


def _logged_out(db_session, user_id: int, sid: str, logged_in_at: float) -> bool:
    """A signed cookie cannot be taken back: its session id is ended in the audit log.

    Only rows since the login are read (audit_log is indexed on `at`).
    """
    since = datetime.fromtimestamp(logged_in_at, UTC) - timedelta(seconds=1)
    return db_session.scalar(
        select(AuditLog.id).where(AuditLog.at >= since, AuditLog.user_id == user_id,
                                  AuditLog.action == "logout",
                                  AuditLog.detail == logout_detail(sid)).limit(1)) is not None


def logout_detail(sid: str) -> str:
    return f"sid={sid}"


def log_in(user: User) -> None:
    session.clear()  # a fresh session: no fixation of a pre-login cookie
    session["uid"] = user.id
    session["sid"] = secrets.token_hex(16)
    session["login_at"] = time.time()
    session.permanent = True
    csrf.rotate(session)
    g.console_user = user


def log_out() -> str | None:
    """Ends the session; returns its id for the audit row that keeps it ended."""
    sid = session.get("sid")
    session.clear()
    g.pop("console_user", None)
    return sid


def can_see_cases(user: User | None) -> bool:
    return user is not None and user.role in CASE_READERS


def can_see_devices(user: User | None) -> bool:
    return user is not None and user.role in DEVICE_READERS


def can_audit(user: User | None) -> bool:
    return user is not None and user.role in AUDIT_READERS


def require_roles(*roles: str) -> Callable:
    """A logged-in user whose role is in `roles` (any role when empty)."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                raise NotLoggedIn()
            if roles and user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def login_redirect():
    target = request.full_path if request.method == "GET" else None
    return redirect(url_for("console.login", next=safe_next(target) or None))


def safe_next(target: str | None) -> str | None:
    """Only a local path may follow a login (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target.rstrip("?")


def check_csrf() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    submitted = request.form.get(csrf.FORM_FIELD) or request.headers.get(csrf.HEADER)
    csrf.check(session, submitted)


def tile_origin(tile_url: str) -> str | None:
    """The CSP source of a Leaflet tile URL template ({s} subdomains become a wildcard)."""
    if not tile_url:
        return None
    parts = urlsplit(tile_url.replace("{s}", "*"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy() -> str:
    img = ["'self'", "data:"]
    origin = tile_origin(current_app.config.get("TGD_TILE_URL", ""))
    if origin:
        img.append(origin)
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src " + " ".join(img),
        "connect-src 'self'",
        "media-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def secure_headers(response):
    response.headers["Content-Security-Policy"] = content_security_policy()
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    if response.mimetype in ("text/html", "application/json", "text/event-stream"):
        # Pages show protected people's positions: never keep them in a cache.
        response.headers["Cache-Control"] = "no-store"
    return response
