"""Hostile bodies (issue 14 finding 2): sanitised before they are stored, always one
security-log row, and never a failed ingest batch that costs valid alarms their batch."""

import logging
import threading

import pytest
from dbcheck import count, message_rows, security_events
from sqlalchemy import select

from tgd_server import db
from tgd_server.models import Alarm, SecurityLog

HOSTILE = [
    (b'{"\\ud800":1}', "unknown_field"),  # a lone surrogate in a key
    (b'{"v":1,"dev":"\\ud800","seq":1,"type":"heartbeat","t":null,"fix":{"m":"N"},'
     b'"cell":null,"bat":null,"csq":null,"fw":"1"}', "bad_value"),  # ... in dev
    (b'{"v":1,"dev":"NC\x00X"}', "malformed_json"),  # a raw NUL byte
    (b'{"\\u0000":1}', "unknown_field"),  # an escaped NUL in a key
    (b'{"v":1,"dev":"NC\\u0000X","seq":1,"type":"heartbeat","t":null,"fix":{"m":"N"},'
     b'"cell":null,"bat":null,"csq":null,"fw":"1"}', "bad_value"),
]


@pytest.mark.parametrize("body, code", HOSTILE)
def test_hostile_body_is_refused_and_logged(app, client, body, code):
    """Before: a 500 and no security-log row (the row itself could not be stored)."""
    response = client.post("/api/v1/device/messages", data=body,
                           headers={"X-TGD-Signature": "00" * 32},
                           content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == code
    assert security_events(app) == [code]
    with app.app_context():
        row = db.get_session().scalars(select(SecurityLog)).one()
    for text in (row.detail, row.body_excerpt, row.device_id or "", row.source):
        assert "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_a_hostile_flood_never_fails_a_batch(app, make_handset, caplog):
    """Valid alarms sent among hostile bodies: every valid one is stored, every hostile
    one is refused and logged, and no batch falls back to one-by-one writes (before:
    'ingest batch ... failed' for each batch that held a hostile row)."""
    handsets = [make_handset() for _ in range(4)]
    before = message_rows(app)
    statuses: dict[str, list[int]] = {"valid": [], "hostile": []}
    start = threading.Barrier(8)

    def valid(handset) -> None:
        own = app.test_client()
        start.wait()
        for _ in range(10):
            handset.aid = handset.aid  # one alarm per handset, joined by each message
            statuses["valid"].append(handset.post(own, handset.message("alarm")).status_code)

    def hostile(i: int) -> None:
        own = app.test_client()
        start.wait()
        for n in range(10):
            body, _code = HOSTILE[(i + n) % len(HOSTILE)]
            statuses["hostile"].append(own.post(
                "/api/v1/device/messages", data=body, headers={"X-TGD-Signature": "ab" * 32},
                content_type="application/json",
                environ_base={"REMOTE_ADDR": f"10.66.0.{i}"}).status_code)

    caplog.set_level(logging.INFO, logger="tgd")
    threads = ([threading.Thread(target=valid, args=(h,)) for h in handsets]
               + [threading.Thread(target=hostile, args=(i,)) for i in range(4)])
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses["valid"] == [200] * 40
    assert statuses["hostile"] == [400] * 40
    assert not [r for r in caplog.records if "batch" in r.getMessage() and "failed" in r.getMessage()]
    after = message_rows(app)
    assert after["device_messages"] - before["device_messages"] == 40
    assert count(app, Alarm) == 4
    with app.app_context():
        logged = db.get_session().scalar(select(SecurityLog.repeats.op("+")(0)).limit(1))
        total = sum(db.get_session().scalars(select(SecurityLog.repeats)))
    assert logged is not None and total == 40  # every refusal counted (aggregated)
