"""The ingest pipeline through HTTP, on SQLite and PostgreSQL (docs/protocol.md)."""

import json
import threading
import time

import pytest
from dbcheck import count, message_rows, one, security_events
from sqlalchemy import select

from tgd_server import db, events
from tgd_server.devices import queue_command
from tgd_server.ingest import STEPS, ingest_device_message
from tgd_server.models import Alarm, AlarmEvent, Cell, Device, DeviceMessage, Position


def test_steps_are_in_protocol_order():
    names = [s.__name__ for s in STEPS]
    assert names.index("verify_signature") < names.index("check_sequence") \
        < names.index("join_alarm") < names.index("publish_events")


# --- signatures -------------------------------------------------------------------------

def test_signed_heartbeat_updates_the_device(app, client, handset):
    response = handset.post(client, handset.message("heartbeat", bat=3800, csq=17))
    assert response.status_code == 200
    device = one(app, select(Device).where(Device.id == handset.device_id))[0]
    assert device.battery_mv == 3800 and device.signal_csq == 17
    assert device.last_heartbeat_at is not None and device.seq_high == 1
    assert count(app, DeviceMessage) == 1


@pytest.mark.parametrize("signature, code", [
    (None, "unsigned"),
    ("", "unsigned"),
    ("0" * 64, "bad_signature"),
    ("zz", "bad_signature"),
    ("é" * 64, "bad_signature"),
])
def test_missing_or_wrong_signature_is_refused(app, client, handset, signature, code):
    response = handset.post(client, handset.message("alarm"), signature=signature)
    assert response.status_code == 401
    assert response.get_json()["error"] == code
    assert set(message_rows(app).values()) == {0}
    assert security_events(app) == [code]


def test_signature_of_another_device_is_refused(app, client, make_handset):
    first, second = make_handset(), make_handset()
    body = first.encode(first.message("alarm"))
    response = first.post(client, body, signature=second.sign(body))
    assert response.get_json()["error"] == "bad_signature"


def test_unknown_device_is_answered_bad_signature(app, client, handset):
    message = handset.message("alarm", dev="NC9999")
    response = handset.post(client, message)
    assert response.status_code == 401 and response.get_json()["error"] == "bad_signature"
    assert set(message_rows(app).values()) == {0}
    assert security_events(app) == ["bad_signature"]


def test_signature_covers_the_exact_bytes(app, client, handset):
    body = handset.encode(handset.message("heartbeat"))
    signature = handset.sign(body)
    reformatted = json.dumps(json.loads(body), indent=1).encode()
    assert handset.post(client, reformatted, signature=signature).status_code == 401
    assert handset.post(client, body, signature=signature.upper()).status_code == 200


# --- bad input: 4xx, nothing stored, one security log row ----------------------------------

@pytest.mark.parametrize("mutate, status, code", [
    (lambda m: b"{not json", 400, "malformed_json"),
    (lambda m: {**m, "extra": 1}, 400, "unknown_field"),
    (lambda m: {k: v for k, v in m.items() if k != "fix"}, 400, "missing_field"),
    (lambda m: {**m, "fix": {"m": "G", "lat": 200, "lon": 166.4}}, 400, "bad_value"),
    (lambda m: {**m, "t": 0}, 400, "bad_value"),
    (lambda m: {**m, "fw": "x" * 3000}, 413, "too_large"),
])
def test_bad_input_changes_nothing(app, client, handset, mutate, status, code):
    message = mutate(handset.message("alarm"))
    response = handset.post(client, message)
    assert response.status_code == status
    answer = response.get_json()
    assert answer["ok"] is False and answer["error"] == code and answer["detail"]
    assert set(message_rows(app).values()) == {0}
    assert security_events(app) == [code]
    device = one(app, select(Device.seq_high).where(Device.id == handset.device_id))
    assert device.seq_high == 0


def test_wrong_content_type_is_415(app, client, handset):
    response = handset.post(client, handset.message("alarm"), content_type="text/plain")
    assert response.status_code == 415
    assert response.get_json()["error"] == "bad_content_type"
    assert security_events(app) == ["bad_content_type"]


def test_oversized_body_is_not_read(app, client, handset):
    response = client.post("/api/v1/device/messages", data=b"x" * 1_000_000,
                           content_type="application/json",
                           headers={"X-TGD-Signature": "0" * 64})
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_large"


def test_answers_are_json_never_cached(app, client, handset):
    """The lean WSGI path (ingest_http.DeviceMessageEndpoint) answers as Flask's view did."""
    response = handset.post(client, handset.message("heartbeat"))
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {"ok": True, "seq": 1, "cmds": []}
    refused = client.post("/api/v1/device/messages", data=b"{}", content_type="text/plain")
    assert refused.status_code == 415 and refused.headers["Cache-Control"] == "no-store"


def test_a_body_shorter_than_its_length_is_a_4xx(app, client, handset):
    body = handset.encode(handset.message("heartbeat"))
    response = client.post("/api/v1/device/messages", data=body[:20],
                           headers={"Content-Type": "application/json",
                                    "Content-Length": str(len(body)),
                                    "X-TGD-Signature": handset.sign(body)})
    assert 400 <= response.status_code < 500
    assert count(app, DeviceMessage) == 0


def test_other_methods_on_the_ingest_path_are_405(client):
    assert client.get("/api/v1/device/messages").status_code == 405


def test_refused_body_is_kept_in_the_security_log(app, client, handset):
    message = handset.message("alarm", fix={"m": "G", "lat": 200, "lon": 1})
    handset.post(client, message)
    from tgd_server.models import SecurityLog
    row = one(app, select(SecurityLog.body_excerpt, SecurityLog.device_id))
    assert row.device_id == handset.device_id and '"lat":200' in row.body_excerpt


# --- sequence window ------------------------------------------------------------------------

def test_replay_is_refused_with_seq_floor(app, client, handset):
    body = handset.encode(handset.message("alarm"))
    assert handset.post(client, body).status_code == 200
    before = message_rows(app)
    response = handset.post(client, body)
    assert response.status_code == 409
    assert response.get_json()["error"] == "replay" and response.get_json()["seq_floor"] == 1
    assert message_rows(app) == before
    assert security_events(app) == ["replay"]


def test_out_of_window_is_refused_and_a_jump_past_the_floor_is_accepted(app, client, handset):
    handset.seq = 500
    assert handset.post(client, handset.message("heartbeat")).status_code == 200
    handset.seq = 400
    response = handset.post(client, handset.message("heartbeat"))
    assert response.status_code == 409 and response.get_json() == {
        "ok": False, "error": "out_of_window", "detail": response.get_json()["detail"],
        "seq_floor": 501, "seq": 401}
    handset.seq = response.get_json()["seq_floor"]
    assert handset.post(client, handset.message("heartbeat")).status_code == 200


def test_late_message_inside_the_window_is_accepted(app, client, handset):
    late = handset.message("heartbeat")
    assert handset.post(client, handset.message("heartbeat")).status_code == 200
    assert handset.post(client, late).status_code == 200
    assert handset.post(client, late).status_code == 409


# --- exactly one alarm ----------------------------------------------------------------------

def test_retries_make_one_alarm_with_its_timeline(app, client, handset):
    for call in ("dialing", "alerting", "active"):
        message = handset.message("alarm", ch={"call": call, "sms": "pending"})
        assert handset.post(client, message).status_code == 200
    handset.post(client, handset.message("position", fix={"m": "G", "lat": -22.27, "lon": 166.45,
                                                           "acc": 8, "t": int(time.time())},
                                         ch={"call": "active", "sms": "sent"}))
    assert count(app, Alarm) == 1
    alarm = one(app, select(Alarm))[0]
    assert alarm.call_state == "active" and alarm.first_channel == "http"
    with app.app_context():
        kinds = list(db.get_session().scalars(select(AlarmEvent.kind).order_by(AlarmEvent.id)))
    assert kinds.count("message") == 4
    assert [k for k in kinds if k != "message"] == ["dialing", "pending", "alerting", "active", "sent"]
    assert count(app, Position, Position.method == "G") == 1


def test_a_late_message_does_not_rewind_the_call_state(app, client, handset):
    late = handset.message("alarm", ch={"call": "dialing", "sms": "pending"})
    handset.post(client, handset.message("alarm", ch={"call": "active", "sms": "sent"}))
    assert handset.post(client, late).status_code == 200
    assert tuple(one(app, select(Alarm.call_state, Alarm.sms_state))) == ("active", "sent")


def test_a_new_aid_is_a_new_alarm(app, client, handset):
    handset.post(client, handset.message("alarm"))
    handset.aid = "0badcafe"
    handset.post(client, handset.message("alarm"))
    assert count(app, Alarm) == 2


def test_concurrent_first_messages_of_one_alarm_make_one_alarm(app, handset):
    """Ten requests for the same new aid at once (different seq): one alarm, ten answers."""
    bodies = [handset.encode(handset.message("alarm")) for _ in range(10)]
    barrier = threading.Barrier(len(bodies))
    results = []

    def send(body):
        client = app.test_client()
        barrier.wait()
        results.append(client.post("/api/v1/device/messages", data=body,
                                   content_type="application/json",
                                   headers={"X-TGD-Signature": handset.sign(body)}))

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 10
    assert {r.get_json()["alarm"]["aid"] for r in results} == {handset.aid}
    assert count(app, Alarm) == 1
    assert count(app, DeviceMessage) == 10
    assert one(app, select(Device.seq_high)).seq_high == 10


def test_concurrent_replays_accept_exactly_one(app, handset):
    body = handset.encode(handset.message("alarm"))
    barrier = threading.Barrier(6)
    statuses = []

    def send():
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post("/api/v1/device/messages", data=body,
                                    content_type="application/json",
                                    headers={"X-TGD-Signature": handset.sign(body)}).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * 5
    assert count(app, DeviceMessage) == 1


def test_sms_opened_alarm_is_joined_by_the_first_data_message(app, client, handset):
    from tgd_server.ingest import open_or_join_alarm
    with app.app_context(), db.write_session() as session:
        device = session.get(Device, handset.device_id)
        alarm, created = open_or_join_alarm(session, device, None, "sms", None)
        assert created and alarm.aid is None
    response = handset.post(client, handset.message("alarm"))
    assert response.get_json()["alarm"]["aid"] == handset.aid
    assert count(app, Alarm) == 1
    assert one(app, select(Alarm.aid, Alarm.first_channel)) == (handset.aid, "sms")
    with app.app_context(), db.write_session() as session:
        device = session.get(Device, handset.device_id)
        again, created = open_or_join_alarm(session, device, None, "sms", None)
        assert not created and again.aid == handset.aid


# --- the answer -----------------------------------------------------------------------------

def test_answer_carries_acknowledgement_and_closing(app, client, handset, api_headers):
    handset.post(client, handset.message("alarm"))
    alarm_id = one(app, select(Alarm.id)).id
    headers = api_headers("operator")
    assert client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=headers).status_code == 200
    answer = handset.post(client, handset.message("position")).get_json()
    assert answer["alarm"] == {"aid": handset.aid, "state": "acknowledged"}
    client.post(f"/api/v1/alarms/{alarm_id}/close", json={"note": "fin"}, headers=headers)
    answer = handset.post(client, handset.message("position")).get_json()
    assert answer["alarm"]["state"] == "closed"


def test_commands_are_handed_out_until_reported_done(app, client, handset):
    with app.app_context(), db.write_session() as session:
        locate = queue_command(session, handset.device_id, "locate", None, None).id
        config = queue_command(session, handset.device_id, "config",
                               {"heartbeat_interval_s": 900}, None).id
    answer = handset.post(client, handset.message("heartbeat")).get_json()
    assert answer["cmds"] == [{"id": locate, "type": "locate"},
                              {"id": config, "type": "config",
                               "set": {"heartbeat_interval_s": 900}}]
    answer = handset.post(client, handset.message("heartbeat", cmd=locate)).get_json()
    assert answer["cmds"] == [{"id": config, "type": "config",
                               "set": {"heartbeat_interval_s": 900}}]
    answer = handset.post(client, handset.message("heartbeat", cmd=config)).get_json()
    assert answer["cmds"] == []


# --- positions and device state ---------------------------------------------------------

def test_cell_only_fix_is_located_from_the_cell_table(app, client, handset):
    with app.app_context(), db.write_session() as session:
        session.add(Cell(radio="LTE", mcc=546, mnc=1, area=4352, cell=20481, lat=-22.2741,
                         lon=166.4488, range_m=900, samples=40))
    handset.post(client, handset.message("alarm", fix={"m": "C"}))
    position = one(app, select(Position))[0]
    assert position.method == "C" and position.acc_m >= 900
    assert abs(position.lat - -22.2741) < 1e-6 and position.alarm_id is not None


def test_unknown_cell_is_remembered_without_a_position(app, client, handset):
    cell = {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 9, "ci": 77}
    assert handset.post(client, handset.message("alarm", cell=cell, fix={"m": "C"})).status_code == 200
    assert count(app, Position) == 0
    row = one(app, select(Cell.area, Cell.cell, Cell.lat))
    assert (row.area, row.cell, row.lat) == (9, 77, None)


def test_heartbeat_repeating_the_same_fix_stores_it_once(app, client, handset):
    fix = {"m": "G", "lat": -22.3, "lon": 166.4, "acc": 10, "t": int(time.time()) - 60}
    for _ in range(3):
        handset.post(client, handset.message("heartbeat", fix=fix))
    assert count(app, Position) == 1
    device = one(app, select(Device.last_lat, Device.last_method))
    assert tuple(device) == (-22.3, "G")


def test_low_battery_and_last_gasp_are_flagged_once(app, client, handset):
    with events.subscribe() as sub:
        handset.post(client, handset.message("heartbeat", bat=3500))
        handset.post(client, handset.message("heartbeat", bat=3490))
        handset.post(client, handset.message("last_gasp", bat=3340))
        flags = []
        while (event := sub.get(timeout=0.5)) is not None:
            if event["type"] == "device.updated":
                flags.append(event["flags"])
    assert flags == [["low_battery"], [], ["last_gasp"]]
    device = one(app, select(Device.low_battery, Device.last_gasp_at))
    assert device.low_battery and device.last_gasp_at is not None


def test_events_are_published_after_commit_with_ingest_time(app, client, handset):
    with events.subscribe() as sub:
        before = time.time()
        handset.post(client, handset.message("alarm", fix={"m": "G", "lat": -22.27,
                                                           "lon": 166.45, "acc": 5}))
        got = {}
        while (event := sub.get(timeout=0.5)) is not None:
            got[event["type"]] = event
    assert set(got) == {"alarm.created", "position.added", "device.updated"}
    created = got["alarm.created"]
    assert created["aid"] == handset.aid and created["lat"] == -22.27
    assert created["ingested_at"] >= before and created["special_number"] == handset.special_number


def test_ingest_core_runs_outside_http(app, handset):
    body = handset.encode(handset.message("heartbeat"))
    with app.app_context():
        result = ingest_device_message(body, handset.sign(body), "mqtt", "broker")
    assert result.status == 200 and result.answer["ok"] is True
    assert one(app, select(DeviceMessage.channel)).channel == "mqtt"


def test_retired_device_is_refused(app, client, handset, api_headers):
    assert client.delete(f"/api/v1/devices/{handset.device_id}",
                         headers=api_headers("technician")).status_code == 204
    response = handset.post(client, handset.message("alarm"))
    assert response.status_code == 401 and response.get_json()["error"] == "bad_signature"


def write_one_batch(app, signed) -> list:
    """Run the byte steps on each (handset, body) and write them all in one group commit,
    as the writer thread does: the batch's items, with their outcome."""
    from tgd_server import ingest
    from tgd_server.models import utcnow

    with app.app_context():
        factory = db.session_factory()
        batch = []
        for handset, body in signed:
            ctx = ingest.Context(body=body, signature=handset.sign(body), channel="http",
                                 source="test", ingested_at=time.time(), received_at=utcnow(),
                                 now=time.time(), factory=factory)
            for step in ingest.BYTE_STEPS:
                step(ctx)
            batch.append(ingest._Pending(ctx))
        committer = ingest._GroupCommitter.__new__(ingest._GroupCommitter)
        committer._factory = factory
        committer._write(batch)
    return batch


def test_group_commit_isolates_a_refusal_and_a_failure(app, client, make_handset, monkeypatch):
    """One batch: a good message, a replay and one whose storing fails. The good one is
    stored, the replay refused, the failing one fails alone (a 500 the handset retries)."""
    from tgd_server import ingest
    from tgd_server.message import MessageRefused

    good, replayer, broken = make_handset(), make_handset(), make_handset()
    replayed = replayer.encode(replayer.message("heartbeat"))
    assert replayer.post(client, replayed).status_code == 200

    original = ingest.store_message

    def failing_store(ctx):
        if ctx.message.dev == broken.device_id:
            raise RuntimeError("disk on fire")
        original(ctx)

    monkeypatch.setattr(ingest, "STORE_STEPS", tuple(
        failing_store if step is original else step for step in ingest.STORE_STEPS))
    batch = write_one_batch(app, [(good, good.encode(good.message("alarm"))),
                                  (replayer, replayed),
                                  (broken, broken.encode(broken.message("alarm")))])
    assert batch[0].outcome is None and batch[0].stored
    assert batch[0].ctx.answer["alarm"]["aid"] == good.aid
    assert isinstance(batch[1].outcome, MessageRefused) and batch[1].outcome.code == "replay"
    assert isinstance(batch[2].outcome, RuntimeError) and not batch[2].stored
    with app.app_context():
        stored = list(db.get_session().scalars(select(DeviceMessage.device_id)))
    assert sorted(stored) == sorted([good.device_id, replayer.device_id])
    assert count(app, Alarm) == 1
    # The batch was rolled back and redone one by one: the refusal goes back to the
    # request thread, which logs it (ingest_device_message -> _refuse).
    assert not getattr(batch[1].outcome, "logged", False)


def test_a_refusal_in_a_batch_is_logged_in_the_batch_commit(app, client, make_handset):
    good, replayer = make_handset(), make_handset()
    replayed = replayer.encode(replayer.message("heartbeat"))
    assert replayer.post(client, replayed).status_code == 200
    batch = write_one_batch(app, [(good, good.encode(good.message("heartbeat"))),
                                  (replayer, replayed)])
    assert batch[0].stored and batch[1].outcome.logged and not batch[1].stored
    assert security_events(app) == ["replay"]


def test_a_database_failure_is_a_500_that_the_handset_retries(app, client, handset, monkeypatch):
    from tgd_server import ingest

    def broken(ctx):
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(ingest, "STORE_STEPS", (broken,))
    response = handset.post(client, handset.message("alarm"))
    assert response.status_code == 500
    assert response.get_json() == {"ok": False, "error": "server_error", "detail": "retry later"}
    assert count(app, DeviceMessage) == 0


class _WriterKilled(BaseException):
    pass


def test_a_dead_writer_answers_500_and_is_replaced(app, client, handset, monkeypatch):
    """A message that was not stored is never answered as delivered."""
    from tgd_server import ingest

    original = ingest._GroupCommitter._write
    calls = []

    def dying_write(self, batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise _WriterKilled()
        return original(self, batch)

    monkeypatch.setattr(ingest._GroupCommitter, "_write", dying_write)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the thread's death is expected
    assert handset.post(client, handset.message("alarm")).status_code == 500
    assert count(app, DeviceMessage) == 0
    assert handset.post(client, handset.message("alarm")).status_code == 200
    assert count(app, DeviceMessage) == 1


def test_one_batch_with_several_messages_of_one_alarm(app, client, handset):
    """The first message creates the alarm, the next ones of the same batch join it and
    their unflushed changes survive to the batch's single flush."""
    messages = [handset.message("alarm", ch={"call": "dialing", "sms": "pending"}),
                handset.message("position", ch={"call": "alerting", "sms": "pending"},
                                fix={"m": "G", "lat": -22.27, "lon": 166.45, "acc": 9}),
                handset.message("position", ch={"call": "active", "sms": "sent"},
                                fix={"m": "G", "lat": -22.28, "lon": 166.45, "acc": 9})]
    batch = write_one_batch(app, [(handset, handset.encode(m)) for m in messages])
    assert all(item.stored for item in batch)
    assert [item.ctx.alarm_created for item in batch] == [True, False, False]
    assert count(app, Alarm) == 1 and count(app, Position) == 2
    assert tuple(one(app, select(Alarm.call_state, Alarm.sms_state))) == ("active", "sent")
    assert one(app, select(Device.seq_high)).seq_high == 3
    with app.app_context():
        kinds = list(db.get_session().scalars(select(AlarmEvent.kind).order_by(AlarmEvent.id)))
    assert kinds.count("message") == 3


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_server_processes_on_one_postgresql_do_not_deadlock(app, database_url, tmp_path,
                                                                 make_handset):
    """Two apps (two engines, two writers: as two gunicorn workers) store overlapping
    batches of the same devices at once: every message is stored, none is refused."""
    from tgd_server import create_app

    other = create_app({"TESTING": True, "TGD_DATABASE_URL": database_url,
                        "TGD_VAR_DIR": str(tmp_path), "SECRET_KEY": "x"})
    handsets = [make_handset() for _ in range(12)]
    work = {id(app): [], id(other): []}
    for round_ in range(4):
        for index, handset in enumerate(handsets):
            body = handset.encode(handset.message("heartbeat"))
            target = app if (index + round_) % 2 else other
            work[id(target)].append((handset, body))
    results = []

    def send(server, items):
        client = server.test_client()
        for handset, body in items:
            results.append(handset.post(client, body).status_code)

    threads = [threading.Thread(target=send, args=(server, work[id(server)][i::4]))
               for server in (app, other) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.extensions["tgd_engine"].dispose()
    # Messages of one device may arrive out of order across the two servers: a late one
    # inside the window is accepted, so every message is stored exactly once.
    assert results.count(200) == len(results) == 48
    assert count(app, DeviceMessage) == 48
