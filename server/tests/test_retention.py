"""Position retention: old positions and raw messages go, alarms and audit stay."""

from datetime import timedelta

import pytest
from dbcheck import count
from sqlalchemy import func, select, update

from tgd_server import db
from tgd_server.models import Alarm, Device, DeviceMessage, Position, SecurityLog, utcnow
from tgd_server.retention import purge_positions


def age_everything(app, days):
    with app.app_context(), db.write_session() as session:
        old = utcnow() - timedelta(days=days)
        session.execute(update(Position).values(received_at=old))
        session.execute(update(DeviceMessage).values(received_at=old))


def test_purge_keeps_recent_and_removes_old(app, client, handset):
    fix = {"m": "G", "lat": -22.27, "lon": 166.45, "acc": 5}
    handset.post(client, handset.message("alarm", fix=fix))
    age_everything(app, 40)
    handset.post(client, handset.message("position", fix={**fix, "lat": -22.28}))
    with app.app_context(), db.write_session() as session:
        counts = purge_positions(session, 30)
    assert counts["positions"] == 1 and counts["messages"] == 1
    assert count(app, Position) == 1 and count(app, DeviceMessage) == 1
    assert count(app, Alarm) == 1


def test_retention_is_at_least_a_day(app):
    with app.app_context(), db.write_session() as session, pytest.raises(ValueError):
        purge_positions(session, 0)


def test_purge_command_uses_the_setting(app, client, handset):
    handset.post(client, handset.message("alarm", fix={"m": "G", "lat": 1.0, "lon": 2.0}))
    age_everything(app, 10)
    app.config["TGD_POSITION_RETENTION_DAYS"] = 30
    result = app.test_cli_runner().invoke(args=["purge-positions"])
    assert result.exit_code == 0 and '"positions": 0' in result.output
    app.config["TGD_POSITION_RETENTION_DAYS"] = 7
    result = app.test_cli_runner().invoke(args=["purge-positions"])
    assert '"positions": 1' in result.output
    assert count(app, Position) == 0


def test_purge_leaves_no_position_anywhere(app, client, handset):
    """Issue 14 #4: refused messages keep their body excerpt in the security log, and
    the device row keeps its last fix: both go with the positions (before: 'lat' stayed
    in security_log.body_excerpt and devices.last_lat after the purge)."""
    fix = {"m": "G", "lat": -22.27, "lon": 166.45, "acc": 5}
    handset.post(client, handset.message("alarm", fix=fix))
    replay = handset.message("alarm", fix=fix)
    handset.post(client, replay)
    handset.post(client, replay)  # refused (replay): its excerpt holds "lat"
    with app.app_context(), db.write_session() as session:
        old = utcnow() - timedelta(days=400)
        for model in (Position, DeviceMessage):
            session.execute(update(model).values(received_at=old))
        times = [name for name in ("at", "last_at") if hasattr(SecurityLog, name)]
        session.execute(update(SecurityLog).values({name: old for name in times}))
        session.execute(update(Device).values(last_fix_at=old))
    with app.app_context(), db.write_session() as session:
        counts = purge_positions(session, 365)
    with app.app_context():
        session = db.get_session()
        excerpts = session.scalars(select(SecurityLog.body_excerpt)).all()
        device = session.get(Device, handset.device_id)
        assert not [e for e in excerpts if '"lat"' in e]
        assert (device.last_lat, device.last_lon, device.last_fix_at) == (None, None, None)
    assert counts["security_log"] == 1 and counts["device_last_fixes"] == 1
    assert count(app, Alarm) == 1


def test_a_flood_of_refusals_is_aggregated_and_capped(app, client):
    """Issue 14 #4: 200 refused requests from one source for one reason are one row
    counting 200, and the excerpt is capped (before: 200 rows of up to 2 KiB)."""
    body = b'{"v":1,' + b'"x":"' + b"A" * 1900 + b'"}'
    for _ in range(200):
        assert client.post("/api/v1/device/messages", data=body,
                           headers={"X-TGD-Signature": "00" * 32},
                           content_type="application/json").status_code == 400
    assert count(app, SecurityLog) == 1  # before: 200 rows
    with app.app_context():
        rows = db.get_session().execute(
            select(SecurityLog.repeats, func.length(SecurityLog.body_excerpt))).all()
    assert rows[0][0] == 200 and rows[0][1] <= 512
