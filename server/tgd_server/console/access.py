"""Who is logged in, what their role lets them see, and the guards every request passes.

- Session cookie (Flask's signed cookie; Secure/HttpOnly/SameSite=Strict from settings),
  holding the user id and the login time; the user is re-read on every request so a
  deactivated account or a changed role takes effect at once.
- `require_roles(...)` on each view; technicians and admins never see cases.
- CSRF on every POST; a Content-Security-Policy without 'unsafe-inline' on every page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, request, session, url_for

from .. import db
from ..auth import CASE_READERS, DEVICE_READERS
from ..models import User
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
    logged_in_at = session.get("login_at", 0)
    if user_id is not None and time.time() - logged_in_at < SESSION_MAX_AGE_S:
        candidate = db.get_session().get(User, user_id)
        if candidate is not None and candidate.active:
            user = candidate
    g.console_user = user
    return user


def log_in(user: User) -> None:
    session.clear()  # a fresh session: no fixation of a pre-login cookie
    session["uid"] = user.id
    session["login_at"] = time.time()
    session.permanent = True
    csrf.rotate(session)
    g.console_user = user


def log_out() -> None:
    session.clear()
    g.pop("console_user", None)


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
    if response.mimetype in ("text/html", "application/json", "text/event-stream"):
        # Pages show protected people's positions: never keep them in a cache.
        response.headers["Cache-Control"] = "no-store"
    return response
