"""Police console through the Flask test client: login, CSRF, rate limit, roles, audit,
actions, search by number, live stream. Runs on SQLite and PostgreSQL (conftest `backend`)."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta
from html import unescape

import pytest
from server_testkit import PASSWORD
from server_testkit import csrf_token as _csrf_token
from sqlalchemy import func, select

from tgd_server import create_app, db, events
from tgd_server.models import (
    Alarm,
    AuditLog,
    Case,
    Device,
    InboundSms,
    SecurityLog,
    User,
    utcnow,
)

CASE_NAME = "Marie Exemple"
CASE_ADDRESS = "12 rue de la Paix, Nouméa"


# --- helpers ---------------------------------------------------------------------------

def csrf_of(client, path="/connexion") -> str:
    return _csrf_token(client.get(path).get_data(as_text=True))


def post_login(client, username, password=PASSWORD, environ=None):
    token = csrf_of(client)
    return client.post("/connexion", data={"username": username, "password": password,
                                           "csrf_token": token},
                       environ_base=environ or {})


def give_case(app, device_id: str) -> int:
    with app.app_context(), db.write_session() as session:
        case = Case(judicial_ref=f"TJ-NOU-{device_id}", name=CASE_NAME, address=CASE_ADDRESS,
                    police_notes="Auteur armé possible. Entrer par l'arrière.")
        session.add(case)
        session.flush()
        session.get(Device, device_id).case_id = case.id
        return case.id


def raise_alarm(client, handset, lat=-22.27631, lon=166.45772, acc=12) -> int:
    fix = {"m": "G", "lat": lat, "lon": lon, "acc": acc, "t": int(time.time()) - 3}
    answer = handset.post(client, handset.message("alarm", fix=fix))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return alarm_id_of(client.application, handset)


def alarm_id_of(app, handset) -> int:
    with app.app_context():
        return db.get_session().scalar(
            select(Alarm.id).where(Alarm.device_id == handset.device_id, Alarm.aid == handset.aid))


def alarm_state(app, alarm_id: int) -> str:
    with app.app_context():
        return db.get_session().get(Alarm, alarm_id).state


def audit_actions(app, username: str) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.get_session().scalars(
            select(AuditLog).where(AuditLog.username == username).order_by(AuditLog.id))
        return [(r.action, r.object_type, r.object_id) for r in rows]


def page_csrf(client, path: str) -> str:
    return _csrf_token(client.get(path).get_data(as_text=True))


# --- login, cookies, CSRF, rate limiting --------------------------------------------------

def test_login_sets_a_strict_httponly_cookie_and_lands_on_the_alarms(client, make_user):
    user = make_user("operator")
    response = post_login(client, user.username)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/").headers["Location"].endswith("/alarmes")
    assert client.get("/alarmes").status_code == 200
    assert ("login", "user", str(user.id)) in audit_actions(client.application, user.username)


def test_secure_cookie_unless_turned_off_for_the_plain_http_demo(tmp_path, monkeypatch):
    monkeypatch.delenv("TGD_SECURE_COOKIES", raising=False)
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "TGD_VAR_DIR": str(tmp_path),
                      "TGD_DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite3'}"})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    cookie = app.test_client().get("/connexion").headers["Set-Cookie"]  # the CSRF token's session
    assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    monkeypatch.setenv("TGD_SECURE_COOKIES", "0")
    app2 = create_app({"TESTING": True, "SECRET_KEY": "x", "TGD_VAR_DIR": str(tmp_path),
                       "TGD_DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite3'}"})
    assert app2.config["SESSION_COOKIE_SECURE"] is False
    assert "; Secure" not in app2.test_client().get("/connexion").headers["Set-Cookie"]
    app.extensions["tgd_engine"].dispose()
    app2.extensions["tgd_engine"].dispose()


def test_wrong_password_is_refused_and_logged(client, make_user):
    user = make_user("operator")
    response = post_login(client, user.username, "wrong password!")
    assert response.status_code == 401
    assert "Identifiant ou mot de passe incorrect." in response.get_data(as_text=True)
    assert client.get("/alarmes").status_code == 302  # still not logged in
    with client.application.app_context():
        events_ = db.get_session().scalars(select(SecurityLog.event)).all()
    assert events_ == ["login_failed"]


def test_post_without_csrf_token_is_refused_and_changes_nothing(client, make_user, login,
                                                                handset):
    user = make_user("operator")
    refused = client.post("/connexion", data={"username": user.username, "password": PASSWORD})
    assert refused.status_code == 400
    assert client.get("/alarmes").status_code == 302
    login("operator")
    alarm_id = raise_alarm(client, handset)
    for token in (None, "forged-token"):
        data = {"csrf_token": token} if token else {}
        answer = client.post(f"/alarmes/{alarm_id}/prise-en-charge", data=data)
        assert answer.status_code == 400
        assert "Formulaire expiré" in answer.get_data(as_text=True)
    assert alarm_state(client.application, alarm_id) == "received"


def test_five_failures_lock_the_username_then_the_right_password_waits(client, make_user):
    user = make_user("operator")
    for i in range(5):  # from five different addresses: the username limit trips
        assert post_login(client, user.username, "bad password",
                          environ={"REMOTE_ADDR": f"10.0.0.{i}"}).status_code == 401
    locked = post_login(client, user.username, environ={"REMOTE_ADDR": "10.0.0.99"})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "Trop de tentatives" in locked.get_data(as_text=True)
    assert client.get("/alarmes").status_code == 302


def test_five_failures_from_one_address_lock_that_address(client, make_user):
    victim = make_user("operator")
    for i in range(5):  # one address trying many usernames
        post_login(client, f"guess{i}", "bad password", environ={"REMOTE_ADDR": "10.9.9.9"})
    assert post_login(client, victim.username,
                      environ={"REMOTE_ADDR": "10.9.9.9"}).status_code == 429
    assert post_login(client, victim.username,
                      environ={"REMOTE_ADDR": "10.1.1.1"}).status_code == 302


def test_attempts_sent_all_at_once_get_no_more_tries_than_the_limit(app, make_user):
    """Twenty wrong passwords at the same instant, each from its own connection: the
    check, the verification and the logged failure are one step per username, so
    five are tried and the others refused (before: all read '4 failures' together)."""
    from tgd_server.console import login_limit

    user = make_user("operator")
    attempts = 4 * login_limit.MAX_FAILURES
    start = threading.Barrier(attempts)
    codes: list[int] = []

    def attempt(i: int) -> None:
        client = app.test_client()
        token = csrf_of(client)
        start.wait()
        answer = client.post("/connexion", data={"username": user.username,
                                                 "password": "bad password",
                                                 "csrf_token": token},
                             environ_base={"REMOTE_ADDR": f"10.7.0.{i}"})
        codes.append(answer.status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [401] * login_limit.MAX_FAILURES + [429] * (
        attempts - login_limit.MAX_FAILURES)


def test_the_login_locks_hold_across_processes_on_postgresql(app):
    """Another server process (here another connection) waits for the same locks."""
    from sqlalchemy import text

    from tgd_server.console import login_limit

    with app.app_context():
        first = db.session_factory()()
        if first.get_bind().dialect.name != "postgresql":
            first.close()
            pytest.skip("advisory locks are PostgreSQL's (SQLite runs one server process)")
        second = db.session_factory()()
        try:
            keys = login_limit.lock_keys("10.0.0.1", "Marie")
            login_limit.lock_across_processes(first, keys)
            second.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(Exception, match="lock timeout"):
                login_limit.lock_across_processes(second, login_limit.lock_keys("10.0.0.2",
                                                                                 "marie "))
            second.rollback()
            first.rollback()  # the first process's transaction ends: the lock goes
            second.execute(text("SET lock_timeout = '200ms'"))
            login_limit.lock_across_processes(second, keys)
        finally:
            first.close()
            second.close()


def test_the_lock_ends_after_the_window(client, make_user, app):
    user = make_user("operator")
    for _ in range(5):
        post_login(client, user.username, "bad password")
    assert post_login(client, user.username).status_code == 429
    with app.app_context(), db.write_session() as session:  # six minutes pass
        for row in session.scalars(select(SecurityLog)):
            row.at = utcnow() - timedelta(minutes=6)
    assert post_login(client, user.username).status_code == 302


def test_logout_needs_csrf_and_ends_the_session(client, login):
    login("operator")
    assert client.post("/deconnexion").status_code == 400
    token = page_csrf(client, "/alarmes")
    assert client.post("/deconnexion", data={"csrf_token": token}).status_code == 302
    assert client.get("/alarmes").status_code == 302


def test_a_cookie_copied_before_logout_is_dead_after_it(client, app, login):
    login("operator")
    stolen = client.get_cookie("session").value
    token = page_csrf(client, "/alarmes")
    client.post("/deconnexion", data={"csrf_token": token})
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get("/alarmes").status_code == 302


def test_a_deactivated_user_is_out_at_the_next_request(client, app, login):
    user = login("operator")
    assert client.get("/alarmes").status_code == 200
    with app.app_context(), db.write_session() as session:
        session.get(User, user.id).active = False
    assert client.get("/alarmes").status_code == 302


def test_next_after_login_is_only_a_local_path(client, make_user):
    user = make_user("operator")
    token = csrf_of(client)
    evil = client.post("/connexion", data={"username": user.username, "password": PASSWORD,
                                           "csrf_token": token, "next": "https://evil.example/"})
    assert evil.headers["Location"] == "/"


# --- security headers -------------------------------------------------------------------

def test_every_page_has_a_csp_without_unsafe_inline_and_no_inline_script(client, login, handset):
    login("supervisor")
    alarm_id = raise_alarm(client, handset)
    for path in ("/alarmes", f"/alarmes/{alarm_id}", "/appareils", "/audit", "/sms"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in csp
        html = response.get_data(as_text=True)
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert " style=" not in html and "onclick" not in html


def test_tile_server_origin_is_allowed_in_the_csp(app, client, login):
    app.config["TGD_TILE_URL"] = "https://{s}.tile.example.nc/{z}/{x}/{y}.png"
    login("operator")
    csp = client.get("/alarmes").headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://*.tile.example.nc" in csp


def test_leaflet_and_the_alert_sound_are_served_locally(client):
    leaflet = client.get("/leaflet/leaflet.js")
    assert leaflet.status_code == 200 and b"Leaflet" in leaflet.data[:2000]
    sound = client.get("/son/alerte.wav")
    assert sound.mimetype == "audio/wav" and sound.data[:4] == b"RIFF" and len(sound.data) > 10_000


# --- roles ----------------------------------------------------------------------------

def test_anonymous_is_sent_to_login_and_fetches_get_401(client, handset):
    alarm_id = raise_alarm(client, handset)
    response = client.get(f"/alarmes/{alarm_id}")
    assert response.status_code == 302 and "/connexion" in response.headers["Location"]
    assert client.get("/alarmes/fragment").status_code == 401
    assert client.get("/flux").status_code == 401


@pytest.mark.parametrize("role", ["technician", "admin"])
def test_technicians_and_admins_never_see_cases(client, app, login, handset, role):
    give_case(app, handset.device_id)
    alarm_id = raise_alarm(client, handset)
    login(role)
    for path in ("/alarmes", "/alarmes/fragment", f"/alarmes/{alarm_id}",
                 f"/alarmes/{alarm_id}/fragment", f"/recherche?numero={handset.special_number}"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert CASE_NAME not in response.get_data(as_text=True)
    device_page = client.get(f"/appareils/{handset.device_id}")
    assert device_page.status_code == 200
    html = device_page.get_data(as_text=True)
    assert CASE_NAME not in html and CASE_ADDRESS not in html and "TJ-NOU" not in html
    assert "-22.276" not in html  # a technician sees a fix's age, never where she is
    devices = client.get("/appareils")
    assert devices.status_code == 200 and CASE_NAME not in devices.get_data(as_text=True)
    assert "-22.276" not in devices.get_data(as_text=True)
    token = page_csrf(client, "/appareils")
    assert client.post(f"/alarmes/{alarm_id}/prise-en-charge",
                       data={"csrf_token": token}).status_code == 403
    assert alarm_state(app, alarm_id) == "received"


def test_operators_do_not_get_the_supervisor_pages(client, login):
    login("operator")
    for path in ("/audit", "/sms", "/appareils"):
        assert client.get(path).status_code == 403, path


def test_technician_lands_on_devices(client, login):
    login("technician")
    assert client.get("/").headers["Location"].endswith("/appareils")


# --- the alarm: page, audit, actions ---------------------------------------------------

def test_alarm_page_shows_who_and_where_and_each_view_is_audited(client, app, login, handset):
    case_id = give_case(app, handset.device_id)
    alarm_id = raise_alarm(client, handset)
    user = login("operator")
    html = client.get(f"/alarmes/{alarm_id}").get_data(as_text=True)
    for expected in (CASE_NAME, CASE_ADDRESS, handset.special_number, "TJ-NOU-",
                     "Auteur armé possible", "GNSS", "précision ±12 m", "-22.27631"):
        assert expected in html, expected
    actions = audit_actions(app, user.username)
    assert ("view_alarm", "alarm", str(alarm_id)) in actions
    assert ("view_case", "case", str(case_id)) in actions
    assert ("view_positions", "alarm", str(alarm_id)) in actions
    client.get(f"/alarmes/{alarm_id}/fragment")  # the live refresh right after: same view
    assert audit_actions(app, user.username).count(("view_positions", "alarm", str(alarm_id))) == 1
    client.get(f"/alarmes/{alarm_id}")  # opening the page again is always recorded
    assert audit_actions(app, user.username).count(("view_alarm", "alarm", str(alarm_id))) == 2


def test_list_view_audits_each_alarm_case_and_position_shown(client, app, login, handset):
    case_id = give_case(app, handset.device_id)
    alarm_id = raise_alarm(client, handset)
    user = login("operator")
    html = client.get("/alarmes").get_data(as_text=True)
    assert handset.special_number in html and f'data-alarm-id="{alarm_id}"' in html
    expected = [("view_alarm", "alarm", str(alarm_id)), ("view_case", "case", str(case_id)),
                ("view_positions", "alarm", str(alarm_id))]
    assert [a for a in audit_actions(app, user.username) if a[0] != "login"] == expected
    client.get("/alarmes/fragment")  # live refreshes within the window add nothing
    assert [a for a in audit_actions(app, user.username) if a[0] != "login"] == expected
    app.config["TGD_AUDIT_REFRESH_WINDOW_S"] = 0
    app.extensions.pop("tgd_console_recent_views")
    client.get("/alarmes/fragment")  # past the window a refresh is recorded again
    assert len([a for a in audit_actions(app, user.username) if a[0] != "login"]) == 6


def test_acknowledge_then_the_handset_learns_it_then_close(client, app, login, handset):
    alarm_id = raise_alarm(client, handset)
    user = login("operator")
    token = page_csrf(client, f"/alarmes/{alarm_id}")
    response = client.post(f"/alarmes/{alarm_id}/prise-en-charge", data={"csrf_token": token},
                           follow_redirects=True)
    assert "Alarme prise en charge" in response.get_data(as_text=True)
    assert alarm_state(app, alarm_id) == "acknowledged"
    answer = handset.post(client, handset.message("position"))
    assert answer.get_json()["alarm"]["state"] == "acknowledged"
    again = client.post(f"/alarmes/{alarm_id}/prise-en-charge", data={"csrf_token": token},
                        follow_redirects=True)
    assert "déjà prise en charge" in again.get_data(as_text=True)

    no_note = client.post(f"/alarmes/{alarm_id}/cloture", data={"csrf_token": token, "note": " "},
                          follow_redirects=True)
    assert "Une note est obligatoire" in no_note.get_data(as_text=True)
    assert alarm_state(app, alarm_id) == "acknowledged"
    client.post(f"/alarmes/{alarm_id}/cloture",
                data={"csrf_token": token, "note": "Équipage sur place, personne en sécurité."})
    assert alarm_state(app, alarm_id) == "closed"
    assert handset.post(client, handset.message("position")).get_json()["alarm"]["state"] == "closed"
    actions = [a for a, _, _ in audit_actions(app, user.username)]
    assert "ack_alarm" in actions and "close_alarm" in actions
    html = client.get(f"/alarmes/{alarm_id}").get_data(as_text=True)
    assert "Équipage sur place" in html and "Prise en charge par " + user.username in html


def test_acknowledge_publishes_an_event_for_the_other_consoles(client, login, handset):
    alarm_id = raise_alarm(client, handset)
    login("operator")
    token = page_csrf(client, f"/alarmes/{alarm_id}")
    with events.subscribe() as sub:
        client.post(f"/alarmes/{alarm_id}/prise-en-charge", data={"csrf_token": token})
        event = sub.get(2)
    assert event["type"] == "alarm.updated" and event["alarm_id"] == alarm_id
    assert event["state"] == "acknowledged"


def test_unknown_alarm_is_a_french_404(client, login):
    login("operator")
    response = client.get("/alarmes/999999")
    assert response.status_code == 404 and "Introuvable" in response.get_data(as_text=True)


# --- search by the caller's number ----------------------------------------------------

def test_search_by_number_lands_on_the_open_alarm_however_it_is_typed(client, app, login,
                                                                       handset):
    alarm_id = raise_alarm(client, handset)
    user = login("operator")
    national = handset.special_number.removeprefix("+687")
    spaced = " ".join(national[i:i + 2] for i in range(0, 6, 2))
    for number in (handset.special_number, national, spaced, f"00687{national}",
                   f"+687 {spaced}", f"+687.{national[:2]}.{national[2:4]}.{national[4:]}"):
        response = client.get("/recherche", query_string={"numero": number})
        assert response.status_code == 302, number
        assert response.headers["Location"].endswith(f"/alarmes/{alarm_id}"), number
    assert ("search_number", "device", handset.device_id) in audit_actions(app, user.username)


def test_search_without_open_alarm_goes_to_the_device_page(client, login, handset):
    login("operator")
    response = client.get("/recherche", query_string={"numero": handset.special_number})
    assert response.headers["Location"].endswith(f"/appareils/{handset.device_id}")
    assert "Pas d'alarme en cours" in unescape(client.get(response.headers["Location"]).get_data(
        as_text=True))


@pytest.mark.parametrize("typed,message", [("99 99 99", "Aucun appareil TGD"),
                                           ("abc'; drop", "n'est pas un numéro")])
def test_search_unknown_or_bad_number_says_so(client, login, handset, typed, message):
    login("operator")
    response = client.get("/recherche", query_string={"numero": typed}, follow_redirects=True)
    assert message in unescape(response.get_data(as_text=True))


# --- devices, audit page, SMS review -----------------------------------------------------

def test_devices_page_flags_silent_low_battery_and_stale(client, app, login, make_handset):
    quiet, weak, fine = make_handset(), make_handset(), make_handset()
    for h in (quiet, weak, fine):
        assert h.post(client, h.message("heartbeat")).status_code == 200
    with app.app_context(), db.write_session() as session:
        d = session.get(Device, quiet.device_id)
        d.last_seen_at = d.last_heartbeat_at = utcnow() - timedelta(seconds=2.6 * 1800)
        session.get(Device, weak.device_id).battery_mv = 3400
        for h in (quiet, weak, fine):
            dev = session.get(Device, h.device_id)
            dev.last_lat, dev.last_lon, dev.last_acc_m, dev.last_method = -22.27, 166.45, 10, "G"
            dev.last_fix_at = utcnow() - timedelta(minutes=5)
        session.get(Device, fine.device_id).last_fix_at = utcnow() - timedelta(days=3)
    login("supervisor")
    html = client.get("/appareils").get_data(as_text=True)
    flags = dict(re.findall(r'data-device-id="([^"]+)" data-flags="([^"]*)"', html))
    assert flags[quiet.device_id] == "silent"
    assert flags[weak.device_id] == "low_battery"
    assert flags[fine.device_id] == "stale_fix"
    assert "SILENCIEUX" in html and "BATTERIE FAIBLE" in html and "1.0.0 × 3" in html
    # A handset at rest has an old fix by nature: the alarm-page staleness mark is not used here.
    assert 'data-stale-check' not in html


def test_supervisor_reads_the_audit_log_and_the_kept_sms(client, app, login, handset):
    with app.app_context(), db.write_session() as session:
        session.add(InboundSms(sender="+687751999", text="hello not an AML", status="rejected",
                               reason="not_aml"))
    operator = login("operator")
    raise_alarm(client, handset)
    client.get("/alarmes")
    client.post("/deconnexion", data={"csrf_token": page_csrf(client, "/alarmes")})
    supervisor = login("supervisor")
    audit_html = client.get("/audit").get_data(as_text=True)
    assert operator.username in audit_html and "a consulté l&#39;alarme" in audit_html
    filtered = client.get("/audit", query_string={"utilisateur": supervisor.username})
    assert operator.username not in filtered.get_data(as_text=True).split("<tbody>")[1]
    sms_html = client.get("/sms").get_data(as_text=True)
    assert "hello not an AML" in sms_html and "refusé" in sms_html
    assert ("view_sms", "inbound_sms", "list") in audit_actions(app, supervisor.username)
    with app.app_context():
        sms_id = db.get_session().scalar(select(InboundSms.id))
    assert client.post(f"/sms/{sms_id}/verifie").status_code == 400  # no CSRF token
    token = page_csrf(client, "/sms")
    reviewed = client.post(f"/sms/{sms_id}/verifie", data={"csrf_token": token},
                           follow_redirects=True).get_data(as_text=True)
    assert f"vérifié par {supervisor.username}" in reviewed
    with app.app_context():
        assert db.get_session().get(InboundSms, sms_id).reviewed_by == supervisor.id


def test_alarms_nobody_has_taken_come_first(client, login, make_handset):
    first, second = make_handset(), make_handset()
    taken = raise_alarm(client, first)
    waiting = raise_alarm(client, second)
    login("operator")
    token = page_csrf(client, "/alarmes")
    client.post(f"/alarmes/{taken}/prise-en-charge", data={"csrf_token": token})
    newest_alarm_first = raise_alarm(client, make_handset())
    html = client.get("/alarmes").get_data(as_text=True)
    order = [int(i) for i in re.findall(r'class="alarm-row[^"]*" data-alarm-id="(\d+)"', html)]
    assert order == [newest_alarm_first, waiting, taken]


# --- the live stream ------------------------------------------------------------------

def test_stream_delivers_a_published_event_and_keeps_alive(app, client, login):
    app.config["TGD_SSE_KEEPALIVE_S"] = 0.2
    login("operator")
    response = client.get("/flux", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    chunks = iter(response.response)
    assert next(chunks).decode().startswith("retry:")
    assert next(chunks) == b": keep-alive\n\n"
    threading.Timer(0.05, events.publish, args=({
        "type": "alarm.created", "alarm_id": 7, "device_id": "NC0007", "state": "received",
        "lat": -22.2, "lon": 166.4, "special_number": "+687750007"},)).start()
    received = b""
    while b"alarm.created" not in received:
        received += next(chunks)
    text = received.decode()
    assert "event: alarm.created\n" in text
    assert '"alarm_id":7' in text and '"device_id":"NC0007"' in text
    assert "166.4" not in text and "+687750007" not in text  # no positions, no numbers in the feed
    response.close()


def test_stream_subscription_is_released_when_the_client_goes(app, client, login):
    login("operator")
    with events._lock:
        before = len(events._subscribers)
    response = client.get("/flux", buffered=False)
    next(iter(response.response))
    with events._lock:
        assert len(events._subscribers) == before + 1
    # An open stream holds no database connection (a pool of N would cap N consoles).
    assert app.extensions["tgd_engine"].pool.checkedout() == 0
    response.close()
    with events._lock:
        assert len(events._subscribers) == before


def test_a_stream_closed_before_its_first_frame_still_releases_its_subscription(client, login):
    login("operator")
    with events._lock:
        before = len(events._subscribers)
    client.get("/flux", buffered=False).close()  # never iterated
    assert client.head("/flux").status_code == 200  # the script's session probe
    with events._lock:
        assert len(events._subscribers) == before


def test_security_log_counts_one_row_per_failure(client, app, make_user):
    user = make_user("operator")
    post_login(client, user.username, "nope nope nope")
    post_login(client, "nobody-at-all", "nope nope nope")
    with app.app_context():
        count = db.get_session().scalar(select(func.count()).select_from(SecurityLog))
    assert count == 2
