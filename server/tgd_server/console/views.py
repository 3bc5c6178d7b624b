"""The console's pages. Each view: check access, read or act, audit, render."""

from __future__ import annotations

import json
import time
import zoneinfo
from pathlib import Path

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from .. import db, events, ota
from ..auth import CASE_READERS, DEVICE_READERS, audit, record_login, verify_password
from ..db import MAX_ROW_ID
from ..models import Alarm, Device, InboundSms, User, utcnow
from ..security_log import log_refusal
from . import access, actions, bp, login_limit, phone, queries, sound, stream
from . import strings_fr as t
from .audit_views import record_shown
from .basemap import Archive

TILE_ATTRIBUTION_DEFAULT = ""


def _leaflet_dir() -> Path:
    import xstatic.pkg.leaflet

    return Path(xstatic.pkg.leaflet.BASE_DIR)


# --- static parts -------------------------------------------------------------------

@bp.route("/leaflet/<path:filename>")
def leaflet_file(filename: str):
    """Leaflet from the xstatic-leaflet package: never a CDN."""
    return send_from_directory(_leaflet_dir(), filename, max_age=86400)


@bp.route("/son/alerte.wav")
def alert_sound():
    return Response(sound.alert_wav(), mimetype="audio/wav",
                    headers={"Cache-Control": "public, max-age=86400"})


@bp.route("/carte/tuiles/<int:z>/<int:x>/<int:y>.<ext>", endpoint="tile")
@access.require_roles()
def basemap_tile(z: int, x: int, y: int, ext: str):
    """A tile of the offline basemap (TGD_BASEMAP, one PMTiles file): never the internet."""
    archive: Archive | None = current_app.extensions.get("tgd_basemap")
    if archive is None or ext != archive.info.extension:
        abort(404)
    data = archive.tile(z, x, y)
    if data is None:
        return Response(status=204, headers={"Cache-Control": "private, max-age=86400"})
    headers = {"Cache-Control": "private, max-age=86400"}
    if archive.info.content_encoding:
        headers["Content-Encoding"] = archive.info.content_encoding
    return Response(data, mimetype=archive.info.mimetype, headers=headers)


# --- login ----------------------------------------------------------------------------

@bp.route("/login")
def login_alias():
    """The address people try first: the console's login page is /connexion."""
    return redirect(url_for("console.login", next=request.args.get("next")), code=301)


@bp.route("/")
def home():
    user = access.current_user()
    if user is None:
        return redirect(url_for("console.login"))
    if access.can_see_cases(user):
        return redirect(url_for("console.alarms"))
    if access.can_see_devices(user):
        return redirect(url_for("console.devices"))
    abort(403)


@bp.route("/connexion", methods=["GET", "POST"])
def login():
    next_url = access.safe_next(request.values.get("next"))
    if request.method == "GET":
        if access.current_user() is not None:
            return redirect(next_url or url_for("console.home"))
        return render_template("console/login.html", next_url=next_url)

    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")[:1024]
    ip = request.remote_addr or "?"
    session = db.get_session()  # reads (and, on PostgreSQL, holds the login locks)
    with login_limit.serialised(session, ip, username):
        known = session.query(User).filter(User.username == username).one_or_none()
        now = utcnow()
        by_ip, by_user = login_limit.failure_times(
            session, ip, username, now, user_since=known.last_login_at if known else None)
        cookie = login_limit.read_device_cookie(current_app.secret_key,
                                                request.cookies.get(login_limit.DEVICE_COOKIE))
        browser = cookie[1] if known is not None and cookie and cookie[0] == known.id else None
        by_browser = (login_limit.browser_failure_times(session, browser, now)
                      if browser else None)
        known_client = browser is not None or (
            known is not None and login_limit.known_address(session, known.id, ip, now))
        wait, refusal = login_limit.decide(by_ip, by_user, now, known_client, by_browser)
        if wait > 0:
            session.rollback()
            log_refusal(login_limit.CHANNEL, ip, refusal,
                        detail=login_limit.user_detail(username))
            minutes = max(1, round(wait / 60))
            page = render_template("console/login.html", next_url=next_url, username=username,
                                   error=t.LOGIN_RATE_LIMITED.format(minutes=minutes))
            return page, 429, {"Retry-After": str(int(wait) + 1)}

        with session.no_autoflush:
            ok = bool(username and password) and verify_password(known, password)
        if not ok:
            # logged before the locks go (the rollback ends the PostgreSQL ones)
            log_refusal(login_limit.CHANNEL, ip, login_limit.EVENT_FAILED,
                        device_id=login_limit.browser_tag(browser) if browser else None,
                        detail=login_limit.user_detail(username))
            session.rollback()
            page = render_template("console/login.html", next_url=next_url, username=username,
                                   error=t.LOGIN_FAILED)
            return page, 401
        session.rollback()
        user = record_login(known.id, password)  # last_login_at, a rehashed password
    access.log_in(user)
    audit(user, "login", "user", user.id, detail=f"ip={ip}")
    response = redirect(next_url or url_for("console.home"))
    response.set_cookie(login_limit.DEVICE_COOKIE,
                        login_limit.device_cookie(current_app.secret_key, user.id),
                        max_age=login_limit.DEVICE_COOKIE_MAX_AGE_S, path=url_for("console.login"),
                        secure=current_app.config.get("SESSION_COOKIE_SECURE", True),
                        httponly=True, samesite="Strict")
    return response


@bp.route("/deconnexion", methods=["POST"])
@access.require_roles()
def logout():
    user = access.current_user()
    sid = access.log_out()
    audit(user, "logout", "user", user.id, detail=access.logout_detail(sid or ""))
    flash(t.LOGGED_OUT, "info")
    return redirect(url_for("console.login"))


# --- live alarm list ------------------------------------------------------------------

def _alarm_list_context(refresh: bool) -> dict:
    session = db.get_session()
    open_ = queries.open_alarms(session, with_case=True)
    closed = queries.recently_closed(session, with_case=True)
    user = access.current_user()
    shown = open_ + closed
    detail = "list, live" if refresh else "list"
    record_shown(user, "view_alarm", "alarm", [a.id for a in shown], detail, refresh)
    record_shown(user, "view_case", "case", sorted({a.case.id for a in shown if a.case}),
                 detail, refresh)
    record_shown(user, "view_positions", "alarm", [a.id for a in open_ if a.last_fix], detail,
                 refresh)
    return {"open_alarms": open_, "recent_closed": closed, "overview": queries.overview(open_)}


@bp.route("/alarmes")
@access.require_roles(*CASE_READERS)
def alarms():
    return render_template("console/alarms.html", nav="alarms", **_map_settings(),
                           **_alarm_list_context(refresh=False))


def _map_settings() -> dict:
    """Where the map's tiles come from: the local basemap file first, else TGD_TILE_URL
    (a tile server of the police network), else none (positions described in words)."""
    archive: Archive | None = current_app.extensions.get("tgd_basemap")
    attribution = current_app.config.get("TGD_TILE_ATTRIBUTION", TILE_ATTRIBUTION_DEFAULT)
    if archive is not None:
        info = archive.info
        url = url_for("console.tile", z=0, x=0, y=0, ext=info.extension)
        url = url.replace("/0/0/0.", "/{z}/{x}/{y}.")
        return {"tile_url": url, "tile_kind": "vector" if info.vector else "raster",
                "tile_max_zoom": info.max_zoom, "tile_min_zoom": info.min_zoom,
                "tile_attribution": attribution or info.attribution}
    url = current_app.config.get("TGD_TILE_URL", "")
    return {"tile_url": url, "tile_kind": "raster" if url else "", "tile_max_zoom": 19,
            "tile_min_zoom": 0, "tile_attribution": attribution}


@bp.route("/alarmes/a-prendre")
@access.require_roles(*CASE_READERS)
def unacknowledged():
    """The ids of the alarms nobody has taken yet: the alert sound repeats while there are
    any. Ids only (no person, no position): not audited, like the live feed."""
    ids = queries.unacknowledged_ids(db.get_session())
    return {"ok": True, "alarm_ids": ids}, 200, {"Cache-Control": "no-store"}


@bp.route("/alarmes/fragment")
@access.require_roles(*CASE_READERS)
def alarms_fragment():
    return render_template("console/_alarm_rows.html", **_alarm_list_context(refresh=True))


@bp.route("/flux", endpoint="stream")
@access.require_roles()
def stream_events():
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":  # the page script's "am I still logged in?" probe
        return Response(b"", mimetype="text/event-stream", headers=headers)
    sub = events.subscribe()  # before the response: nothing published from now on is missed
    body = stream.event_stream(sub, keepalive_s=current_app.config.get(
        "TGD_SSE_KEEPALIVE_S", stream.KEEPALIVE_S), max_s=current_app.config.get(
        "TGD_SSE_MAX_S", stream.MAX_STREAM_S))
    # No stream_with_context: the request context (and its database session) ends now,
    # so an open stream never holds a pooled connection for its hour.
    response = Response(body, mimetype="text/event-stream", headers=headers)
    # A client gone before the first frame never starts the generator: release here too.
    response.call_on_close(sub.close)
    return response



# --- one alarm ------------------------------------------------------------------------

def _alarm_or_404(alarm_id: int) -> Alarm:
    alarm = db.get_session().get(Alarm, alarm_id)
    if alarm is None:
        abort(404)
    return alarm


def _alarm_live_context(alarm: Alarm) -> dict:
    session = db.get_session()
    fixes = queries.positions(session, alarm.id)
    view = queries.alarm_view(session, alarm, with_case=True)
    tz = zoneinfo.ZoneInfo(current_app.config["TGD_TIMEZONE"])
    return {
        "alarm": view,
        "positions": fixes,
        "timeline": queries.timeline(session, alarm.id, tz),
        "map_data": queries.map_data(fixes, view.case),
    }


@bp.route("/alarmes/<int:alarm_id>")
@access.require_roles(*CASE_READERS)
def alarm(alarm_id: int):
    row = _alarm_or_404(alarm_id)
    user = access.current_user()
    context = _alarm_live_context(row)
    audit(user, "view_alarm", "alarm", row.id)
    if row.device.case_id is not None:
        audit(user, "view_case", "case", row.device.case_id, detail=f"alarm={row.id}")
    record_shown(user, "view_positions", "alarm", [row.id],
                 detail=f"count={len(context['positions'])}")
    return render_template("console/alarm.html", nav="alarms", **_map_settings(), **context)


@bp.route("/alarmes/<int:alarm_id>/fragment")
@access.require_roles(*CASE_READERS)
def alarm_fragment(alarm_id: int):
    row = _alarm_or_404(alarm_id)
    context = _alarm_live_context(row)
    record_shown(access.current_user(), "view_positions", "alarm", [row.id],
                 detail=f"count={len(context['positions'])} live", refresh=True)
    return render_template("console/_alarm_live.html", **context)


ACTION_MESSAGES = {
    "already_acknowledged": t.ACK_ALREADY,
    "already_closed": t.ALREADY_CLOSED,
    "note_required": t.CLOSE_NOTE_REQUIRED,
    "note_too_long": t.CLOSE_NOTE_TOO_LONG,
}


@bp.route("/alarmes/<int:alarm_id>/prise-en-charge", methods=["POST"])
@access.require_roles(*CASE_READERS)
def acknowledge(alarm_id: int):
    _alarm_or_404(alarm_id)
    try:
        actions.acknowledge(alarm_id, access.current_user())
        flash(t.ACK_DONE, "ok")
    except actions.ActionRefused as refused:
        flash(ACTION_MESSAGES[refused.code], "error")
    return redirect(url_for("console.alarm", alarm_id=alarm_id))


@bp.route("/alarmes/<int:alarm_id>/cloture", methods=["POST"])
@access.require_roles(*CASE_READERS)
def close(alarm_id: int):
    _alarm_or_404(alarm_id)
    try:
        actions.close(alarm_id, access.current_user(), request.form.get("note", ""))
        flash(t.CLOSE_DONE, "ok")
    except actions.ActionRefused as refused:
        flash(ACTION_MESSAGES[refused.code], "error")
    return redirect(url_for("console.alarm", alarm_id=alarm_id))


# --- search by the caller's number -------------------------------------------------------

@bp.route("/recherche")
@access.require_roles(*CASE_READERS)
def search():
    number = request.args.get("numero", "").strip()[:40]
    user = access.current_user()
    if not number:
        flash(t.SEARCH_EMPTY, "error")
        return redirect(url_for("console.alarms"))
    session = db.get_session()
    try:
        device = queries.device_by_number(session, number)
    except phone.BadNumber:
        audit(user, "search_number", "number", number, detail="bad_number")
        flash(t.SEARCH_BAD.format(number=number), "error")
        return redirect(url_for("console.alarms"))
    if device is None:
        audit(user, "search_number", "number", number, detail="not_found")
        flash(t.SEARCH_NOT_FOUND.format(number=number), "error")
        return redirect(url_for("console.alarms"))
    open_alarm = queries.open_alarm_of(session, device.id)
    audit(user, "search_number", "device", device.id,
          detail=f"typed={number} alarm={open_alarm.id if open_alarm else '-'}")
    if open_alarm is not None:
        return redirect(url_for("console.alarm", alarm_id=open_alarm.id))
    flash(t.SEARCH_NO_OPEN_ALARM, "info")
    return redirect(url_for("console.device", device_id=device.id))


# --- devices --------------------------------------------------------------------------

@bp.route("/appareils")
@access.require_roles(*DEVICE_READERS)
def devices():
    rows = queries.devices(db.get_session(), time.time())
    audit(access.current_user(), "view_devices", "device", "list", detail=f"count={len(rows)}")
    summary = {
        "total": len(rows),
        "silent": sum(1 for d in rows if {"silent", "never_seen"} & set(d.flags)),
        "low": sum(1 for d in rows if "low_battery" in d.flags),
        "stale": sum(1 for d in rows if "stale_fix" in d.flags),
    }
    versions: dict[str, int] = {}
    for d in rows:
        versions[d.fw_version or "?"] = versions.get(d.fw_version or "?", 0) + 1
    session = db.get_session()
    fleet = {f["device_id"]: f for f in ota.fleet(session)}
    rollout = ota.current_rollout(session)
    return render_template("console/devices.html", nav="devices", devices=rows,
                           summary=summary, versions=sorted(versions.items()), fleet=fleet,
                           rollout=rollout, rollout_stages=json.loads(rollout.stages) if rollout else [])


@bp.route("/appareils/<device_id>")
@access.require_roles(*(set(DEVICE_READERS) | set(CASE_READERS)))
def device(device_id: str):
    session = db.get_session()
    row = session.get(Device, device_id)
    if row is None:
        abort(404)
    user = access.current_user()
    with_case = access.can_see_cases(user)
    view = queries.device_view(row, time.time(), with_case=with_case)
    alarms_ = queries.device_alarms(session, row.id, with_case=False)
    audit(user, "view_device", "device", row.id)
    if view.last_fix is not None:
        audit(user, "view_positions", "device", row.id, detail="last_fix")
    if with_case and row.case_id is not None:
        audit(user, "view_case", "case", row.case_id, detail=f"device={row.id}")
    return render_template("console/device.html", nav="devices", device=view,
                           device_alarms=alarms_, can_open_alarms=with_case)


# --- supervision: audit log and SMS kept for review -------------------------------------

def _int_arg(name: str) -> int | None:
    """A row id from the query string; None when absent, abort(400) when not an id."""
    raw = request.args.get(name, "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_ROW_ID:
        abort(400)
    return int(raw)


@bp.route("/audit")
@access.require_roles(*access.AUDIT_READERS)
def audit_log():
    username = request.args.get("utilisateur", "").strip()[:64] or None
    session = db.get_session()
    rows = queries.audit_rows(session, username, _int_arg("avant"))
    attacks = login_limit.attacks(session, utcnow())  # failed logins (security log)
    audit(access.current_user(), "view_audit", "audit_log", username or "all")
    return render_template("console/audit.html", nav="audit", rows=rows,
                           filter_user=username or "", login_attacks=attacks)


@bp.route("/sms")
@access.require_roles(*access.AUDIT_READERS)
def inbound_sms():
    session = db.get_session()
    rows = queries.inbound_sms_rows(session, _int_arg("avant"))
    reviewers = queries.usernames(session, {r.reviewed_by for r in rows})
    audit(access.current_user(), "view_sms", "inbound_sms", "list", detail=f"count={len(rows)}")
    return render_template("console/sms.html", nav="sms", rows=rows, reviewers=reviewers)


@bp.route("/sms/<int:sms_id>/verifie", methods=["POST"])
@access.require_roles(*access.AUDIT_READERS)
def review_sms(sms_id: int):
    user = access.current_user()
    with db.write_session() as session:
        row = session.get(InboundSms, sms_id)
        if row is None:
            abort(404)
        if row.reviewed_at is None:
            row.reviewed_at = utcnow()
            row.reviewed_by = user.id
    audit(user, "review_sms", "inbound_sms", sms_id)
    flash(t.SMS_REVIEWED, "ok")
    return redirect(url_for("console.inbound_sms"))
