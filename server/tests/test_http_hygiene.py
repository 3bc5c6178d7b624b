"""Input that used to give a 500, API hygiene, spec and code agreeing, file modes
(issue 14 findings 5, 6, 7)."""

import hashlib
import hmac
import json
import logging
import os
import stat
import time
import urllib.request

import pytest
from live_server import admin, live_server, raw_request, server_env
from sqlalchemy import create_engine, select, text

from tgd_server import create_app, db
from tgd_server.models import Alarm

HUGE_IDS = ["2147483648", "9223372036854775808", "99999999999999999999999999"]


def raise_alarm(app, client, handset) -> int:
    assert handset.post(client, handset.message("alarm")).status_code == 200
    with app.app_context():
        return db.get_session().scalar(select(Alarm.id))


@pytest.mark.parametrize("huge", HUGE_IDS)
def test_huge_ids_are_404_not_500(app, client, api_headers, login, huge):
    operator = api_headers("operator")
    for method, path in (("get", f"/api/v1/alarms/{huge}"), ("post", f"/api/v1/alarms/{huge}/ack"),
                         ("post", f"/api/v1/alarms/{huge}/close")):
        answer = getattr(client, method)(path, headers=operator)
        assert answer.status_code == 404, path
        assert answer.get_json()["error"] == "not_found"
    login("supervisor")
    assert client.get(f"/alarmes/{huge}").status_code == 404
    assert client.get(f"/audit?avant={huge}").status_code == 400
    assert client.get(f"/sms?avant={huge}").status_code == 400
    assert client.get("/audit?avant=²").status_code == 400  # a digit, not an ASCII one


def test_api_errors_are_json(client, api_headers):
    operator = api_headers("operator")
    for path in ("/api/v1/alarms/true", "/api/v1/nothing-here"):
        answer = client.get(path, headers=operator)
        assert answer.status_code == 404 and answer.is_json, path
        assert answer.get_json()["ok"] is False
    wrong_method = client.put("/api/v1/alarms", headers=operator)
    assert wrong_method.status_code == 405 and wrong_method.get_json()["error"] == \
        "method_not_allowed"


def test_api_answers_with_positions_are_not_cached(app, client, handset, api_headers):
    alarm_id = raise_alarm(app, client, handset)
    operator = api_headers("operator")
    for path in ("/api/v1/alarms", f"/api/v1/alarms/{alarm_id}", "/api/v1/alarms/0"):
        assert client.get(path, headers=operator).headers["Cache-Control"] == "no-store", path


def test_nul_in_the_path_or_the_query_string_is_a_400(client, api_headers, login):
    answer = client.get("/api/v1/alarms?device=NC%00X", headers=api_headers("operator"))
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_value"
    answer = client.get("/api/v1/devices/NC%00X", headers=api_headers("supervisor"))
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_value"
    login("supervisor")
    assert client.get("/appareils/NC%00X").status_code == 400


def test_close_needs_an_object_body(app, client, handset, api_headers):
    alarm_id = raise_alarm(app, client, handset)
    operator = api_headers("operator")
    for body in ([], "closed", 3, {"note": "x", "colour": "red"}):
        answer = client.post(f"/api/v1/alarms/{alarm_id}/close", json=body, headers=operator)
        assert answer.status_code == 400, body
    with app.app_context():
        assert db.get_session().get(Alarm, alarm_id).state == "received"
    assert client.post(f"/api/v1/alarms/{alarm_id}/close", headers=operator).status_code == 200


def test_spec_and_code_agree_on_commands_and_devices(client, handset, api_headers):
    tech = api_headers("technician")
    path = f"/api/v1/devices/{handset.device_id}/commands"
    assert client.post(path, json={"type": "locate", "set": {"x": 1}},
                       headers=tech).status_code == 400
    assert client.post(path, json={"type": "locate", "colour": 1}, headers=tech).status_code == 400
    assert client.post(path, json={"type": "config", "set": {"heartbeat_interval_s": 900.0}},
                       headers=tech).status_code == 201
    device = {"device_id": "NC0900", "special_number": "+687759000", "key": "ab" * 32}
    assert client.post("/api/v1/devices", json={**device, "fw_version": None},
                       headers=tech).status_code == 400
    assert client.post("/api/v1/devices", json={**device, "fw_version": "1.0\x00"},
                       headers=tech).status_code == 400
    created = client.post("/api/v1/devices", json={**device, "heartbeat_interval_s": 1043.0},
                          headers=tech)
    assert created.status_code == 201 and created.get_json()["heartbeat_interval_s"] == 1043


def test_sqlite_files_are_owner_only(tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        var = tmp_path / "var"
        app = create_app({"TESTING": True, "TGD_VAR_DIR": str(var), "SECRET_KEY": "x",
                          "TGD_DATABASE_URL": f"sqlite:///{var / 'tgd.sqlite3'}"})
        db.create_all(app.extensions["tgd_engine"])
        with app.app_context():
            db.get_session().execute(select(Alarm.id)).all()  # opens WAL and SHM
            files = [var, var / "tgd.sqlite3", var / "tgd.sqlite3-wal", var / "tgd.sqlite3-shm"]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
        app.extensions["tgd_engine"].dispose()
    finally:
        os.umask(old)
    assert modes == {"var": 0o700, "tgd.sqlite3": 0o600, "tgd.sqlite3-wal": 0o600,
                     "tgd.sqlite3-shm": 0o600}
    (var / "tgd.sqlite3").chmod(0o644)
    warnings: list[str] = []
    monkeypatch.setattr(logging.getLogger("tgd.files"), "warning", warnings.append)
    create_app({"TESTING": True, "TGD_VAR_DIR": str(var), "SECRET_KEY": "x",
                "TGD_DATABASE_URL": f"sqlite:///{var / 'tgd.sqlite3'}"})
    assert any("tgd.sqlite3 has mode 644" in w for w in warnings)


def env_url(var_dir) -> str:
    return f"sqlite:///{var_dir / 'tgd.sqlite3'}"


MALFORMED_CHUNKED = [
    b"zz\r\nhello\r\n0\r\n\r\n",  # a chunk size that is not hex
    b"5\r\nhello",  # no terminator, then the client stops sending
]


@pytest.mark.parametrize("kind", ["werkzeug", "gunicorn"])
def test_malformed_chunked_and_truncated_bodies_are_400(tmp_path, kind):
    env = server_env(tmp_path)
    with live_server(env, kind=kind) as url:
        key = "ab" * 32
        admin(env, "add-device", "NC0042", "--special-number", "+687751042", "--key", key)
        body = json.dumps({"v": 1, "dev": "NC0042", "seq": 1, "type": "heartbeat",
                           "t": int(time.time()), "fix": {"m": "N"}, "cell": None, "bat": 4000,
                           "csq": 20, "fw": "1.0.0"}, separators=(",", ":")).encode()
        signature = hmac.new(bytes.fromhex(key), body, hashlib.sha256).hexdigest()
        # A whole signed message, but 50 bytes short of its Content-Length (before: gunicorn
        # handed the short read on and the message was stored).
        status = raw_request(url, (
            "POST /api/v1/device/messages HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nX-TGD-Signature: {signature}\r\n"
            f"Content-Length: {len(body) + 50}\r\nConnection: close\r\n\r\n").encode() + body)
        assert status == 400
        for path in ("/api/v1/device/messages", "/connexion"):
            for body in MALFORMED_CHUNKED:
                content_type = ("application/json" if "device" in path
                                else "application/x-www-form-urlencoded")
                status = raw_request(url, (
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                    "X-TGD-Signature: " + "0" * 64 + "\r\n"
                    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + body)
                assert status == 400, (path, body)
        with urllib.request.urlopen(urllib.request.Request(url + "/connexion")) as page:
            assert page.status == 200  # still serving
    engine = create_engine(env_url(tmp_path))
    with engine.connect() as connection:
        events = connection.execute(text("SELECT event, repeats FROM security_log")).all()
    engine.dispose()
    assert sum(n for event, n in events if event == "http_error") >= len(MALFORMED_CHUNKED)
