"""Position retention: old positions and raw messages go, alarms and audit stay."""

from datetime import timedelta

import pytest
from dbcheck import count
from sqlalchemy import update

from tgd_server import db
from tgd_server.models import Alarm, DeviceMessage, Position, utcnow
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
