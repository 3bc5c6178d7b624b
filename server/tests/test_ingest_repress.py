"""ch.press (docs/protocol.md, issue 12): the button held again while an alarm is open.
The handset counts the holds of the alarm (the trigger is 1) and sends the count; the
server puts one `button`/`repress` step on the alarm's timeline per hold it had not
seen, and the console reads it in French."""

import json

import pytest
from dbcheck import count, one
from sqlalchemy import select

from tgd_server import db
from tgd_server.console import queries
from tgd_server.message import MessageRefused, parse_envelope, validate
from tgd_server.models import Alarm, AlarmEvent

NOW = 1795678200


def _check(ch: dict):
    body = {"v": 1, "dev": "NC0001", "seq": 1201, "type": "position", "t": NOW,
            "aid": "3fa9c01b", "fix": {"m": "C"},
            "cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20513},
            "bat": 3987, "csq": 21, "fw": "1.0.0", "ch": ch}
    return validate(parse_envelope(json.dumps(body).encode()), now=NOW)


def test_press_is_read_from_ch():
    assert _check({"call": "active", "sms": "sent", "press": 3}).press == 3
    assert _check({"call": "active", "sms": "sent"}).press is None


@pytest.mark.parametrize("press", [0, -1, 1001, "2", 2.0, True, None])
def test_bad_press_is_refused(press):
    if press is None:
        assert _check({"call": "idle", "sms": "pending", "press": None}).press is None
        return
    with pytest.raises(MessageRefused) as refused:
        _check({"call": "idle", "sms": "pending", "press": press})
    assert refused.value.code == "bad_value" and "ch.press" in refused.value.detail


def _represses(app) -> list[str]:
    with app.app_context():
        return list(db.get_session().scalars(
            select(AlarmEvent.detail).where(AlarmEvent.kind == "repress")
            .order_by(AlarmEvent.id)))


def test_each_new_press_is_one_step_on_the_timeline(app, client, handset):
    assert handset.post(client, handset.message("alarm")).status_code == 200
    assert _represses(app) == []
    ch = {"call": "ended", "sms": "delivered", "press": 2}
    for _ in range(2):  # every later message repeats the count: one step only
        assert handset.post(client, handset.message("position", ch=ch)).status_code == 200
    assert _represses(app) == ["press=2"]
    ch = {"call": "dialing", "sms": "delivered", "press": 4}  # a message skipped press 3
    assert handset.post(client, handset.message("position", ch=ch)).status_code == 200
    assert _represses(app) == ["press=2", "press=3", "press=4"]
    assert count(app, Alarm) == 1  # the same alarm, re-asserted
    row = one(app, select(AlarmEvent.channel).where(AlarmEvent.kind == "repress").limit(1))
    assert row[0] == "button"


def test_console_reads_a_repress_in_french():
    text = queries.timeline_text(AlarmEvent(channel="button", kind="repress", detail="press=2"))
    assert text == ("Bouton d'alarme maintenu à nouveau (appui n° 2) : "
                    "l'alarme ouverte est relancée")
