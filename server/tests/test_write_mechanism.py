"""One write mechanism (issue 14 finding 1): every write goes through `db.write_session`.

On SQLite a route that reads and then writes in a deferred transaction fails with
"database is locked" as soon as the ingest writer commits in between. The request's
own session is read-only, so a route cannot forget the mechanism: writing through it
raises at once, on every backend.
"""

import secrets
import threading

import pytest
from sqlalchemy import select, update

from tgd_server import db
from tgd_server.models import Alarm, Device, User


def test_api_writes_succeed_while_handsets_send(app, client, make_handset, api_headers):
    """Hammer the ingest from four threads while the API acknowledges, closes, queues
    commands and registers/retires devices: every API write answers 2xx (before: most
    returned 500 "database is locked" on SQLite)."""
    senders = [make_handset() for _ in range(4)]
    target = make_handset()
    operator, tech = api_headers("operator"), api_headers("technician")
    stop = threading.Event()
    sent = [0]
    failures: list[int] = []

    def hammer(handset) -> None:
        own = app.test_client()
        while not stop.is_set():
            response = handset.post(own, handset.message("heartbeat"))
            sent[0] += 1
            if response.status_code != 200:
                failures.append(response.status_code)

    threads = [threading.Thread(target=hammer, args=(h,)) for h in senders]
    for thread in threads:
        thread.start()
    statuses = []
    try:
        for i in range(12):
            target.aid = secrets.token_hex(4)
            assert target.post(client, target.message("alarm")).status_code == 200
            with app.app_context():
                alarm_id = db.get_session().scalar(
                    select(Alarm.id).where(Alarm.aid == target.aid))
            statuses.append(client.post(f"/api/v1/alarms/{alarm_id}/ack",
                                        headers=operator).status_code)
            statuses.append(client.post(f"/api/v1/alarms/{alarm_id}/close",
                                        json={"note": "ok"}, headers=operator).status_code)
            statuses.append(client.post(f"/api/v1/devices/{target.device_id}/commands",
                                        json={"type": "locate"}, headers=operator).status_code)
            device_id = f"HX{i:04d}"
            statuses.append(client.post("/api/v1/devices", headers=tech, json={
                "device_id": device_id, "special_number": f"+68779{i:04d}",
                "key": secrets.token_hex(32)}).status_code)
            statuses.append(client.delete(f"/api/v1/devices/{device_id}",
                                          headers=tech).status_code)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert sent[0] > 50, "the handsets did not send enough to contend"
    assert failures == []
    assert [s for s in statuses if s >= 300] == []


def test_the_request_session_refuses_to_write(app):
    """A route that writes through db.get_session() fails at once, on every backend,
    instead of failing only under load on SQLite."""
    with app.test_request_context("/api/v1/devices", method="POST"):
        session = db.get_session()
        session.add(User(username="nobody", role="operator", password_hash="x"))
        with pytest.raises(db.WriteOutsideWriteSession):
            session.flush()
        session.rollback()
        with pytest.raises(db.WriteOutsideWriteSession):
            session.execute(update(Device).values(fw_version="x"))


def test_write_session_stays_immediate_after_a_commit(app):
    """A write_session that commits half-way (import-cells does) keeps BEGIN IMMEDIATE
    for its next transaction."""
    with app.app_context(), db.write_session() as session:
        session.commit()
        connection = session.connection()
        if not db.is_sqlite(connection.engine):
            pytest.skip("BEGIN IMMEDIATE is SQLite's")
        assert connection.get_execution_options().get("tgd_sqlite_begin") == "IMMEDIATE"
