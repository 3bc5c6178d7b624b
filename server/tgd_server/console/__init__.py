"""French police console: session login, live alarm list (SSE), alarm pages, devices, audit.

The blueprint `bp` is registered by create_app at `/`. Its guards (login, roles,
CSRF) run before every console view; its security headers go on every answer.
"""

from __future__ import annotations

import os
import zoneinfo
from datetime import datetime, timedelta

from flask import (
    Blueprint,
    current_app,
    jsonify,
    make_response,
    render_template,
    request,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from .. import http_guards
from . import access, basemap, csrf, places, wording
from . import strings_fr as t

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console-static",
)

DEFAULT_TIMEZONE = "Pacific/Noumea"
STALE_FIX_S = 120  # during an alarm a fix older than this is shown as old (track every 30 s)

# Fetches and the live stream get a status, not a login page.
_NON_PAGE_ENDPOINTS = ("console.stream", "console.alarms_fragment", "console.alarm_fragment",
                       "console.tile", "console.unacknowledged")
ALERT_REPEAT_S = 6.0  # the new-alarm sound repeats this often until the alarm is taken


@bp.record_once
def _configure(state) -> None:
    app = state.app
    env = os.environ
    app.config.setdefault("TGD_TIMEZONE", env.get("TGD_TIMEZONE") or DEFAULT_TIMEZONE)
    app.config.setdefault("TGD_STALE_FIX_S", int(env.get("TGD_STALE_FIX_S") or STALE_FIX_S))
    app.config.setdefault("TGD_TILE_ATTRIBUTION", env.get("TGD_TILE_ATTRIBUTION", ""))
    app.config.setdefault("TGD_BASEMAP", env.get("TGD_BASEMAP", ""))
    app.config.setdefault("TGD_ALERT_REPEAT_S",
                          float(env.get("TGD_ALERT_REPEAT_S") or ALERT_REPEAT_S))
    # A wrong basemap path fails at start with the file's name, not as a grey map later.
    app.extensions["tgd_basemap"] = basemap.open_archive(app.config["TGD_BASEMAP"])
    places.warm_up()
    # The session cookie lives one shift, like the server-side check (access.py).
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=access.SESSION_MAX_AGE_S)
    zoneinfo.ZoneInfo(app.config["TGD_TIMEZONE"])  # an unknown zone fails at start, not per page
    if type(app.session_interface) is SecureCookieSessionInterface:
        app.session_interface = _QuietFetchSessions()
    url = app.config.get("TGD_DATABASE_URL", "")
    # On PostgreSQL the live events cross processes (LISTEN/NOTIFY); tests opt in.
    fan_out = app.config.get("TGD_EVENTS_PG")
    if fan_out is None and env.get("TGD_EVENTS_PG"):
        fan_out = env["TGD_EVENTS_PG"].strip().lower() not in ("0", "false", "no", "off")
    if fan_out is None:
        fan_out = not app.testing
    if url.startswith(("postgresql", "postgres")) and fan_out:
        from .. import events

        events.enable_pg_fanout(url)


class _QuietFetchSessions(SecureCookieSessionInterface):
    """The page scripts' background fetches (fragments, tiles, the alert poll, the feed)
    never rewrite the session cookie: sent with the cookie they started with, a late one
    would otherwise undo what a page answer set meanwhile (the flash "Alarme prise en
    charge" lost, a logged-out session brought back). Pages still refresh it."""

    def should_set_cookie(self, app, session) -> bool:
        if request.endpoint in _NON_PAGE_ENDPOINTS and not session.modified:
            return False
        return super().should_set_cookie(app, session)


@bp.before_request
def _guard_csrf():
    try:
        access.check_csrf()
    except csrf.CsrfError:
        return render_template("console/error.html", title=t.FORBIDDEN_TITLE,
                               text=t.CSRF_FAILED), 400


@bp.after_request
def _headers(response):
    return access.secure_headers(response)


@bp.errorhandler(access.NotLoggedIn)
def _not_logged_in(_exc):
    if request.endpoint in _NON_PAGE_ENDPOINTS:
        return jsonify({"ok": False, "error": "login_required",
                        "login": url_for("console.login")}), 401
    return access.login_redirect()


@bp.errorhandler(403)
def _forbidden(_exc):
    return render_template("console/error.html", title=t.FORBIDDEN_TITLE,
                           text=t.FORBIDDEN_TEXT), 403


@bp.app_errorhandler(404)
def _not_found(exc):
    """A French page for any unknown address a person may type (the API keeps its own
    JSON error: Flask takes this handler for a 404 before the API's HTTPException one)."""
    if request.path.startswith(http_guards.API_PREFIX):
        return http_guards.http_error(exc)
    page = render_template("console/error.html", title=t.NOT_FOUND_TITLE, text=t.NOT_FOUND_TEXT)
    # Outside the blueprint its after_request does not run: the same headers here.
    return access.secure_headers(make_response(page, 404))


@bp.app_template_filter("signal")
def _signal(csq: int | None) -> str:
    return wording.signal_text(csq)


@bp.app_template_filter("local_time")
def _local_time(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    tz = zoneinfo.ZoneInfo(current_app.config.get("TGD_TIMEZONE", DEFAULT_TIMEZONE))
    return datetime.fromtimestamp(epoch, tz).strftime("%d/%m/%Y %H:%M:%S")


@bp.app_context_processor
def _template_globals() -> dict:
    from flask import session

    user = access.current_user()
    return {
        "t": t,
        "user": user,
        "csrf_token": lambda: csrf.token(session),
        "can_see_cases": access.can_see_cases(user),
        "can_see_devices": access.can_see_devices(user),
        "can_audit": access.can_audit(user),
        "stale_fix_s": current_app.config.get("TGD_STALE_FIX_S", STALE_FIX_S),
        "alert_repeat_ms": int(current_app.config.get("TGD_ALERT_REPEAT_S",
                                                      ALERT_REPEAT_S) * 1000),
    }


from . import views  # noqa: E402,F401  (routes register themselves on bp)
