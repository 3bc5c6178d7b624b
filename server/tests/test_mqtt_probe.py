"""The MQTT probe: the channel under attack and under faults, against a real private
Mosquitto running the project's configuration, ACL and password file, with the bridge
on SQLite and PostgreSQL (docs/mqtt.md, "The probe").

Each probe prints one line: what was sent, acknowledged by the broker (PUBACK), stored,
lost (acknowledged and not stored) and duplicated. None may be lost or doubled.

    .venv/bin/pytest server/tests/test_mqtt_probe.py -s -q           # CI (outages 4 s, 10 s)
    TGD_MQTT_PROBE_OUTAGE_S=30 .venv/bin/pytest server/tests/test_mqtt_probe.py -s -q -k outage
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mqtt_broker import PrivateBroker, mosquitto_binary
from mqtt_probe_kit import Handset, TcpProxy, count, report
from server_testkit import wait_until
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tgd_server import db
from tgd_server.models import Alarm, Device, SecurityLog
from tgd_server.models import DeviceMessage as StoredMessage
from tgd_server.mqtt import topics
from tgd_server.mqtt.bridge import BRIDGE_USER, Bridge, BrokerSettings
from tgd_server.mqtt.private_broker import guard_plugin

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(mosquitto_binary() is None,
                       reason="the mosquitto binary is not installed (apt-get install mosquitto)"),
]

BRIDGE_PASSWORD = "bridge-" + secrets.token_hex(8)
PROBE_USER, PROBE_PASSWORD = "tgd-probe", "probe-" + secrets.token_hex(8)
LONG_OUTAGE_S = float(os.environ.get("TGD_MQTT_PROBE_OUTAGE_S", "10"))
POISON = b"0" * 64 + b"\n" + b"[" * 1200  # json.loads raises RecursionError


# -- fixtures -------------------------------------------------------------------------

@pytest.fixture
def backend():  # probes that depend on the database say so with @parametrize below
    return "sqlite"


@pytest.fixture
def proxy(backend):
    if backend != "postgresql":
        yield None
        return
    url = make_url(db.normalise_url(os.environ.get(
        "TGD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")))
    relay = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    yield relay
    relay.close()


@pytest.fixture
def database_url(backend, tmp_path, request, proxy):
    """SQLite, or PostgreSQL reached through a TCP relay that a probe can cut."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'tgd.sqlite3'}"
    url = make_url(db.normalise_url(request.getfixturevalue("pg_schema_url")))
    return url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


both = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])


@pytest.fixture
def broker(tmp_path):
    broker = PrivateBroker(tmp_path, [(BRIDGE_USER, BRIDGE_PASSWORD),
                                      (PROBE_USER, PROBE_PASSWORD)],
                           extra_acl=f"user {PROBE_USER}\ntopic write tgd/+/status\n").start()
    yield broker
    broker.stop()


def start_bridge(app, broker) -> Bridge:
    bridge = Bridge(app, BrokerSettings(port=broker.port, password=BRIDGE_PASSWORD))
    bridge.start()
    assert bridge.wait_connected(10), broker.log_text()
    return bridge


@pytest.fixture
def bridge(app, broker):
    bridge = start_bridge(app, broker)
    yield bridge
    bridge.stop()


@pytest.fixture
def handset_on(broker, make_handset):
    clients: list[Handset] = []

    def make(handset=None, **kwargs) -> Handset:
        handset = handset or make_handset()
        broker.add_account(handset.device_id, topics.device_password(handset.key_hex))
        client = Handset(broker.port, handset, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def stored(app, device_id: str | None = None) -> int:
    where = [StoredMessage.device_id == device_id] if device_id else []
    return count(app, StoredMessage, *where)


def security(app, event: str) -> int:
    """Refusals of this kind (repeats from one source are one row with a count)."""
    with app.app_context(), db.session_factory()() as session:
        return session.scalar(select(func.coalesce(func.sum(SecurityLog.repeats), 0))
                              .where(SecurityLog.event == event))


def duplicates(app) -> int:
    """Messages stored more than once (same device, same body) and alarms doubled."""
    with app.app_context(), db.session_factory()() as session:
        bodies = session.scalar(select(func.count()).select_from(StoredMessage)) - session.scalar(
            select(func.count()).select_from(
                select(StoredMessage.device_id, StoredMessage.body).distinct().subquery()))
        alarms = session.scalar(select(func.count()).select_from(Alarm)) - session.scalar(
            select(func.count()).select_from(
                select(Alarm.device_id, Alarm.aid).distinct().subquery()))
    return bodies + alarms


def stream(client: Handset, n: int, kind: str = "position", gap_s: float = 0.0) -> None:
    for _ in range(n):
        client.publish_signed(client.handset.message(kind))
        if gap_s:
            time.sleep(gap_s)


# -- logins and cross-device access ---------------------------------------------------

def test_bad_logins_are_refused(broker, handset_on, make_handset):
    victim = make_handset()
    broker.add_account(victim.device_id, topics.device_password(victim.key_hex))
    other = make_handset()
    broker.add_account(other.device_id, topics.device_password(other.key_hex))
    attempts = {
        "wrong password": dict(handset=victim, password="0" * 32),
        "another device's password": dict(handset=victim,
                                          password=topics.device_password(other.key_hex)),
        "empty password": dict(handset=victim, password=""),
        "unknown user": dict(handset=make_handset(), password="0" * 32),
        "the bridge's name, a device's password": dict(
            handset=victim, user=BRIDGE_USER, password=topics.device_password(victim.key_hex)),
        "the bridge's name, a guessed password": dict(handset=victim, user=BRIDGE_USER,
                                                     password="tgd-bridge"),
        "a device with the bridge's password": dict(handset=victim, password=BRIDGE_PASSWORD),
        "user name case changed": dict(handset=victim, user=victim.device_id.lower(),
                                       password=topics.device_password(victim.key_hex)),
        "the probe's account with the bridge's password": dict(
            handset=victim, user=PROBE_USER, password=BRIDGE_PASSWORD),
    }
    refused = 0
    for what, kwargs in attempts.items():
        client = handset_on(handset=kwargs.pop("handset"), subscribe_down=False, **kwargs)
        rc = client.connects.get(timeout=10)
        assert rc != 0, what
        refused += 1
        client.close()
    report("bad logins", sent=len(attempts), acknowledged=0, stored=0, lost=0,
           refused=refused)


def test_a_device_reads_and_writes_nothing_of_another(app, bridge, handset_on):
    victim, intruder = handset_on(), handset_on()
    assert victim.wait_connected() == 0 and intruder.wait_connected() == 0
    vid = victim.handset.device_id
    probes = [topics.downlink(vid), topics.uplink(vid), topics.status(vid), "tgd/+/down",
              "tgd/+/up", "tgd/#", "#", "+/+/+", f"$share/{BRIDGE_USER}/tgd/+/up",
              f"$share/x/{topics.downlink(vid)}", "$share/g/#", "$SYS/#"]
    granted = sum(intruder.subscribe(topic) < 128 for topic in probes)
    # Writes under the victim's topics, signed with the intruder's own key.
    for topic in (topics.uplink(vid), topics.status(vid), topics.downlink(vid)):
        intruder.publish_signed(intruder.handset.message("alarm"), topic=topic)
    stream(victim, 10, "heartbeat")
    assert wait_until(lambda: stored(app, vid) == 10)
    time.sleep(0.5)
    got = victim.answers(1.0)
    intruder_got = intruder.answers(0.5)
    report("cross-device", sent=10, acknowledged=victim.acked, stored=stored(app, vid),
           lost=10 - stored(app, vid), subscriptions_tried=len(probes),
           subscriptions_granted=granted, intruder_received=len(intruder_got))
    assert intruder_got == [], "the intruder read another handset's messages"
    if guard_plugin() is not None:  # refused at subscribe time (deploy/mosquitto/tgd_guard.c)
        assert granted == 0
    assert stored(app, intruder.handset.device_id) == 0 and count(app, Alarm) == 0
    assert sorted(a["seq"] for a in got) == list(range(1, 11))
    assert _link_state(app, vid) != "offline"


# -- poison and oversized messages ------------------------------------------------------

@both
def test_poison_messages_never_hold_the_window(app, bridge, handset_on):
    attacker, victim = handset_on(), handset_on()
    attacker.wait_connected()
    victim.wait_connected()
    for _ in range(30):  # more than the broker's in-flight window
        attacker.publish(POISON)
    stream(victim, 10, "position")
    ok = wait_until(lambda: stored(app, victim.handset.device_id) == 10, timeout=20)
    n = stored(app, victim.handset.device_id)
    report("poison", sent=10, acknowledged=victim.acked, stored=n, lost=victim.acked - n,
           duplicates=duplicates(app), poison_sent=30,
           poison_refused=security(app, "malformed_json"))
    assert ok
    assert wait_until(lambda: security(app, "malformed_json") == 30)
    assert stored(app, attacker.handset.device_id) == 0
    assert attacker.answers(0.3) == []  # a body without seq is not answered
    # All 30 were acknowledged: a new connection of the bridge's session gets none again.
    bridge._client.reconnect()
    assert wait_until(bridge.connected.is_set)
    stream(victim, 1, "heartbeat")
    assert wait_until(lambda: stored(app, victim.handset.device_id) == 11)
    time.sleep(0.5)
    assert security(app, "malformed_json") == 30


def test_an_uplink_the_bridge_cannot_handle_is_refused_after_three_attempts(
        app, bridge, handset_on, monkeypatch):
    from tgd_server.mqtt import bridge as bridge_module

    buggy, victim = handset_on(), handset_on()
    buggy.wait_connected()
    victim.wait_connected()
    real = bridge_module.ingest_device_message

    def ingest(body, signature, channel, source):  # a bug that only this device's body hits
        if source == f"mqtt:{buggy.handset.device_id}":
            raise KeyError("a bug")
        return real(body, signature, channel=channel, source=source)

    monkeypatch.setattr(bridge_module, "ingest_device_message", ingest)
    stream(buggy, 3, "position")
    stream(victim, 5, "position")
    ok = wait_until(lambda: security(app, "bridge_error") == 3 and stored(app) == 5,
                    timeout=20)
    report("unexpected error", sent=5, acknowledged=victim.acked, stored=stored(app),
           lost=victim.acked - stored(app), failing_sent=3,
           failing_refused=security(app, "bridge_error"))
    assert ok


def test_oversized_uplinks_never_reach_the_bridge(app, bridge, handset_on):
    attacker, victim = handset_on(), handset_on()
    attacker.wait_connected()
    victim.wait_connected()
    handled = bridge.handled
    attacker.publish(b"0" * 64 + b"\n" + b" " * (8 << 20), wait=False)  # 8 MiB
    attacker.publish(b"0" * 64 + b"\n" + b" " * 5000, wait=False)  # over message_size_limit
    stream(victim, 5, "heartbeat")
    assert wait_until(lambda: stored(app, victim.handset.device_id) == 5)
    time.sleep(0.5)
    report("oversized", sent=5, acknowledged=victim.acked,
           stored=stored(app, victim.handset.device_id), lost=0, oversized_sent=2,
           oversized_reaching_the_bridge=bridge.handled - handled - 5)
    assert bridge.handled - handled == 5
    assert security(app, "too_large") == 0


# -- client-ID takeover -------------------------------------------------------------------

def test_a_device_cannot_take_another_s_client_id(app, bridge, handset_on, broker):
    victim = handset_on()
    assert victim.wait_connected() == 0
    victim.client.publish(topics.status(victim.handset.device_id), b"online", qos=1,
                          retain=True).wait_for_publish()
    vid = victim.handset.device_id
    assert wait_until(lambda: _link_state(app, vid) == "online")
    intruder = handset_on(client_id=vid)
    assert intruder.wait_connected() == 0
    time.sleep(1.0)
    assert victim.disconnects.empty(), "the victim was disconnected by the intruder"
    assert _link_state(app, vid) == "online", "the victim's will fired"
    stream(victim, 5, "heartbeat")
    assert wait_until(lambda: stored(app, vid) == 5)
    report("client-id takeover (device)", sent=5, acknowledged=victim.acked,
           stored=stored(app, vid), lost=victim.acked - stored(app, vid),
           victim_disconnected=int(not victim.disconnects.empty()))


def test_a_device_cannot_take_the_bridge_s_client_id(app, bridge, handset_on):
    victim = handset_on()
    victim.wait_connected()
    intruders = [handset_on(client_id=client_id)
                 for client_id in (BRIDGE_USER, "tgd-bridge-1", "tgd-bridge-test")]
    for intruder in intruders:
        intruder.wait_connected()
    stream(victim, 30, "position", gap_s=0.02)
    ok = wait_until(lambda: stored(app, victim.handset.device_id) == 30, timeout=20)
    n = stored(app, victim.handset.device_id)
    report("client-id takeover (bridge)", sent=30, acknowledged=victim.acked, stored=n,
           lost=victim.acked - n, duplicates=duplicates(app))
    assert ok and bridge.connected.is_set()


# -- $share hijack ---------------------------------------------------------------------

def test_share_groups_take_nothing_from_the_bridges(app, broker, handset_on):
    """Two bridges (partitions 0/2 and 1/2) and a device in every share group it can name."""
    from tgd_server.mqtt.accounts import service_accounts

    for user, password in service_accounts(BRIDGE_PASSWORD, 2)[1:]:
        broker.add_account(user, password)
    bridges = [Bridge(app, BrokerSettings(port=broker.port, username=topics.bridge_user(k),
                                          password=BRIDGE_PASSWORD, partition=(k, 2)))
               for k in range(2)]
    for b in bridges:
        b.start()
    try:
        assert all(b.wait_connected(10) for b in bridges), broker.log_text()
        hijacker = handset_on()
        hijacker.wait_connected()
        granted = sum(hijacker.subscribe(f"$share/{group}/tgd/+/up") < 128
                      for group in (BRIDGE_USER, "tgd-bridge-1", "g"))
        victims = [handset_on() for _ in range(4)]
        for v in victims:
            v.wait_connected()
            stream(v, 5, "position")
        ok = wait_until(lambda: stored(app) == 20, timeout=20)
        report("$share hijack", sent=20, acknowledged=sum(v.acked for v in victims),
               stored=stored(app), lost=20 - stored(app), duplicates=duplicates(app),
               hijacker_received=len(hijacker.answers(0.3)), share_subscriptions_granted=granted)
        assert ok and duplicates(app) == 0
        assert guard_plugin() is None or granted == 0
        assert all(b.handled > 0 for b in bridges)  # both partitions were used
    finally:
        for b in bridges:
            b.stop()


# -- reserved names ---------------------------------------------------------------------

def test_service_names_cannot_be_devices(app, client, api_headers, tmp_path):
    from tgd_server.mqtt.accounts import write_password_file

    headers = api_headers("admin")
    for name in (BRIDGE_USER, "tgd-bridge-2", "TGD-Bridge", "tgd-anything"):
        response = client.post("/api/v1/devices", headers=headers, json={
            "device_id": name, "special_number": "+687751234", "key": "ab" * 32})
        assert response.status_code == 400, name
        assert "reserved" in response.get_json()["detail"]
    # A device row with the bridge's name (registered before the rule) is skipped.
    with app.app_context(), db.write_session() as session:
        session.add(Device(id=BRIDGE_USER, key_hex="cd" * 32, special_number="+687759999"))
    broker = PrivateBroker(tmp_path, [(BRIDGE_USER, "placeholder")])
    with app.app_context():
        written = write_password_file(str(broker.passwd), BRIDGE_PASSWORD)
    broker.start()
    try:
        assert written == 1
        bridge = start_bridge(app, broker)  # the bridge's own password still works
        bridge.stop()
        squatter = Handset(broker.port, _Named(BRIDGE_USER, "cd" * 32), subscribe_down=False)
        assert squatter.connects.get(timeout=10) != 0
        squatter.close()
    finally:
        broker.stop()
    report("reserved names", sent=4, acknowledged=0, stored=0, lost=0, refused=4)


class _Named:
    def __init__(self, device_id, key_hex):
        self.device_id, self.key_hex = device_id, key_hex


# -- retained uplinks, redelivered copies, answers and their seq --------------------------

def test_retained_uplinks_are_refused_and_never_read_again(app, bridge, handset_on, broker):
    device = handset_on()
    device.wait_connected()
    device.publish_signed(device.handset.message("position"), retain=True)
    # The broker's guard refuses it (MQTT 3.1.1: dropped, still acknowledged) ...
    stream(device, 1, "heartbeat")
    assert wait_until(lambda: stored(app) == 1)
    time.sleep(0.5)
    assert stored(app) == 1 and [a["seq"] for a in device.answers(0.5)] == [2]
    # ... and nothing was retained: a new session of the bridge reads nothing back.
    bridge.stop()
    again = start_bridge(app, broker)
    try:
        time.sleep(1.0)
        assert stored(app) == 1 and again.handled == 0
    finally:
        again.stop()
    # Behind the broker, the bridge refuses a retained uplink itself (a broker without
    # the guard): a security-log row, nothing stored, no answer.
    with app.app_context():
        message = device.handset.message("position")
        body = device.handset.encode(message)
        again.handle(topics.uplink(device.handset.device_id),
                     device.handset.sign(body).encode() + b"\n" + body, retained=True)
    assert security(app, "retained_uplink") == 1 and stored(app) == 1
    report("retained uplink", sent=3, acknowledged=device.acked, stored=stored(app), lost=0,
           retained_refused=2)


def test_a_redelivered_copy_is_answered_as_stored(app, bridge, handset_on):
    device = handset_on()
    device.wait_connected()
    payload_message = device.handset.message("position")
    device.publish_signed(payload_message)
    device.publish(device.payloads[-1])  # the same bytes again: a broker redelivery
    device.publish(b"0" * 64 + b"\n{}")  # no seq: nothing to name, no answer
    assert wait_until(lambda: security(app, "replay") == 1)
    answers = device.answers(1.0)
    assert [a["seq"] for a in answers] == [payload_message["seq"]] * 2
    assert all(a["ok"] is True for a in answers), answers  # never a refusal to act on
    assert answers[1]["alarm"]["aid"] == device.handset.aid
    assert stored(app) == 1 and duplicates(app) == 0


# -- status updates ---------------------------------------------------------------------

def test_status_updates_do_not_fail_while_uplinks_are_written(app, broker, make_handset,
                                                              handset_on):
    """200 handsets' retained status and their uplinks at once, on SQLite (finding 3)."""
    fleet = [make_handset() for _ in range(200)]
    probe = Handset(broker.port, _Named("probe", "00" * 32), user=PROBE_USER,
                    password=PROBE_PASSWORD, client_id=PROBE_USER, subscribe_down=False)
    probe.wait_connected()
    for h in fleet:
        probe.client.publish(topics.status(h.device_id), b"online", qos=1, retain=True)
    device = handset_on()
    device.wait_connected()
    bridge = start_bridge(app, broker)
    try:
        stream(device, 20, "heartbeat")
        ok = wait_until(lambda: count(app, Device, Device.link_state == "online") == 200
                        and stored(app) == 20, timeout=30)
        report("status under load", sent=20, acknowledged=device.acked, stored=stored(app),
               lost=device.acked - stored(app), statuses=200,
               online=count(app, Device, Device.link_state == "online"),
               bridge_retries=getattr(bridge, "retries", -1))
        assert ok
    finally:
        bridge.stop()
        probe.close()


# -- broker kill -9 ---------------------------------------------------------------------

def test_broker_kill_9_keeps_what_it_acknowledged(app, broker, handset_on):
    device = handset_on()
    device.wait_connected()
    bridge = start_bridge(app, broker)
    bridge.stop()  # the bridge's session exists and is away
    stream(device, 10, "position")
    time.sleep(1.6)  # autosave_interval 1
    broker.kill()
    broker.start()
    bridge = start_bridge(app, broker)
    try:
        ok = wait_until(lambda: stored(app) == 10, timeout=20)
        report("broker kill -9 (bridge away)", sent=10, acknowledged=device.acked,
               stored=stored(app), lost=device.acked - stored(app), duplicates=duplicates(app))
        assert ok and duplicates(app) == 0
    finally:
        bridge.stop()


def test_broker_kill_9_during_a_stream_loses_and_doubles_nothing(app, broker, handset_on):
    device = handset_on()
    device.wait_connected()
    bridge = start_bridge(app, broker)
    time.sleep(1.5)  # the bridge's session is in the saved file (a newer one is in the window)
    try:
        stream(device, 20, "position", gap_s=0.02)
        assert wait_until(lambda: stored(app) == 20)
        broker.kill()  # the saved file is up to 1 s old: it replays what was stored
        broker.start()
        again = device  # paho reconnects it (same client id: never a second client)
        assert again.connects.get(timeout=20) == 0
        stream(again, 10, "position")
        ok = wait_until(lambda: stored(app) == 30, timeout=30)
        time.sleep(1.0)
        refusals = [a for a in again.answers(0.5) if not a.get("ok")]
        report("broker kill -9 (stream)", sent=30, acknowledged=device.acked,
               stored=stored(app), lost=30 - stored(app), duplicates=duplicates(app),
               refusals_answered=len(refusals))
        with app.app_context(), db.session_factory()() as session:
            seqs = set(session.scalars(select(StoredMessage.seq)))
        assert ok and duplicates(app) == 0 and refusals == [], (
            sorted(set(range(1, 31)) - seqs), bridge.retries, broker.log_text()[-3000:])
    finally:
        bridge.stop()


# -- bridge kill -9 ---------------------------------------------------------------------

@both
def test_bridge_kill_9_during_a_stream(app, broker, handset_on, database_url, tmp_path):
    env = {**os.environ, "TGD_DATABASE_URL": database_url, "TGD_VAR_DIR": str(tmp_path),
           "TGD_SECRET_KEY": "probe", "TGD_MQTT_PASSWORD": BRIDGE_PASSWORD}
    command = [str(Path(sys.executable).with_name("tgd-server")), "mqtt-bridge",
               "--port", str(broker.port)]

    log = open(tmp_path / "bridge.log", "ab")  # noqa: SIM115 - closed with the test

    def spawn():
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)

    device = handset_on()
    device.wait_connected()
    process = spawn()
    try:
        assert wait_until(lambda: b"bridge subscribed" in (tmp_path / "bridge.log").read_bytes(),
                          timeout=30)  # the bridge's session exists from now on
        device.publish_signed(device.handset.message("alarm"))
        assert wait_until(lambda: stored(app) == 1, timeout=30)
        for n in range(1, 40):
            device.publish_signed(device.handset.message("position"))
            if n == 20:
                process.kill()  # kill -9 in the middle of the stream
                process.wait()
                process = spawn()
            time.sleep(0.03)
        ok = wait_until(lambda: stored(app) == 40, timeout=30)
        report("bridge kill -9", sent=40, acknowledged=device.acked, stored=stored(app),
               lost=device.acked - stored(app), duplicates=duplicates(app))
        assert ok and duplicates(app) == 0, (tmp_path / "bridge.log").read_text()[-3000:]
    finally:
        process.terminate()
        process.wait(10)
        log.close()


# -- database outages -------------------------------------------------------------------

def _outage(app, backend, proxy, database_url, seconds):
    """Cut the database away for `seconds`: PostgreSQL's connections reset and refused,
    or SQLite's write lock held by another process."""
    if backend == "postgresql":
        proxy.cut()
        time.sleep(seconds)
        proxy.restore()
        return
    path = make_url(database_url).database
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")
    time.sleep(seconds)
    holder.execute("ROLLBACK")
    holder.close()


@both
@pytest.mark.parametrize("seconds", [4.0, LONG_OUTAGE_S], ids=["4s", "long"])
def test_database_outage_recovers_by_itself(app, bridge, handset_on, backend, proxy,
                                            database_url, seconds):
    import threading

    device = handset_on()
    device.wait_connected()
    stream(device, 5, "position")
    assert wait_until(lambda: stored(app) == 5)
    cut = threading.Thread(target=_outage, args=(app, backend, proxy, database_url, seconds))
    cut.start()
    time.sleep(0.3)
    stream(device, 25, "position", gap_s=seconds / 25)  # published during the outage
    cut.join()
    back = time.monotonic()
    ok = wait_until(lambda: stored(app) == 30, timeout=30)
    recovered_s = time.monotonic() - back
    stream(device, 5, "heartbeat")  # and the window is free again
    ok = ok and wait_until(lambda: stored(app) == 35, timeout=15)
    report(f"database outage {seconds:.0f} s ({backend})", sent=35, acknowledged=device.acked,
           stored=stored(app), lost=device.acked - stored(app), duplicates=duplicates(app),
           recovered_s=round(recovered_s, 1), bridge_retries=getattr(bridge, "retries", -1))
    assert ok and duplicates(app) == 0


def _link_state(app, device_id: str) -> str | None:
    with app.app_context(), db.session_factory()() as session:
        device = session.get(Device, device_id)
        return device.link_state if device is not None else None
