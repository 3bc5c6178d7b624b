"""Two server processes on one PostgreSQL: an alarm ingested by one appears on the live
console stream of the other (events fan-out through LISTEN/NOTIFY, end to end)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
from server_testkit import PASSWORD, csrf_token

from tgd_server import auth, create_app, db, events
from tgd_server.devices import register_device

pytestmark = pytest.mark.postgres

INGEST_SERVER = textwrap.dedent(
    """
    from werkzeug.serving import make_server
    from tgd_server import create_app
    app = create_app({"SECRET_KEY": "other-process", "TGD_EVENTS_PG": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()
    """
)


def signed_alarm(key_hex: str, device_id: str) -> tuple[bytes, str]:
    now = int(time.time())
    body = json.dumps({
        "v": 1, "dev": device_id, "seq": 1, "type": "alarm", "t": now, "aid": "0badcafe",
        "at": now - 1, "fix": {"m": "G", "lat": -22.28, "lon": 166.44, "acc": 20, "t": now - 2},
        "cell": None, "bat": 3900, "csq": 20, "fw": "1.0.0",
        "ch": {"call": "dialing", "sms": "pending"},
    }, separators=(",", ":")).encode()
    return body, hmac.new(bytes.fromhex(key_hex), body, hashlib.sha256).hexdigest()


def test_alarm_ingested_by_another_process_reaches_this_consoles_stream(pg_schema_url, tmp_path):
    console_app = create_app({
        "TESTING": True, "TGD_DATABASE_URL": pg_schema_url, "TGD_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "console-process", "SESSION_COOKIE_SECURE": False, "TGD_EVENTS_PG": True,
        "TGD_SSE_KEEPALIVE_S": 0.5,
    })
    db.create_all(console_app.extensions["tgd_engine"])
    key = secrets.token_hex(32)
    with console_app.app_context(), db.write_session() as session:
        auth.create_user(session, "agent.multi", "operator", PASSWORD)
        register_device(session, {"device_id": "NC0777", "special_number": "+687750777",
                                  "key": key, "fw_version": "1.0.0"})
    env = {**os.environ, "TGD_DATABASE_URL": pg_schema_url, "TGD_VAR_DIR": str(tmp_path)}
    ingest_process = subprocess.Popen([sys.executable, "-c", INGEST_SERVER], env=env,
                                      stdout=subprocess.PIPE, text=True)
    try:
        port = int(ingest_process.stdout.readline())
        client = console_app.test_client()
        token = csrf_token(client.get("/connexion").get_data(as_text=True))
        client.post("/connexion", data={"username": "agent.multi", "password": PASSWORD,
                                        "csrf_token": token})
        stream = client.get("/flux", buffered=False)
        frames = iter(stream.response)
        next(frames)  # connected
        assert events._pg_bridge is not None and events._pg_bridge.listening.wait(10)

        body, signature = signed_alarm(key, "NC0777")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/device/messages", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-TGD-Signature": signature})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["alarm"]["state"] == "received"

        received = ""
        for _ in range(40):  # keep-alives every 0.5 s: at most ~20 s
            received += next(frames).decode()
            if "event: alarm.created" in received:
                break
        assert "event: alarm.created" in received and '"device_id":"NC0777"' in received
        stream.close()
    finally:
        ingest_process.terminate()
        ingest_process.wait(timeout=10)
        events.disable_pg_fanout()
        console_app.extensions["tgd_engine"].dispose()
