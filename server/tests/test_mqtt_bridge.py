"""The MQTT transport against a real Mosquitto running the project's configuration."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import secrets
import time

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import PrivateBroker, mosquitto_binary
from paho.mqtt.enums import CallbackAPIVersion
from server_testkit import wait_until
from sqlalchemy import func, select

from tgd_server import db
from tgd_server.models import Alarm, Position, SecurityLog
from tgd_server.models import DeviceMessage as StoredMessage
from tgd_server.mqtt import topics
from tgd_server.mqtt.bridge import BRIDGE_USER, Bridge, BrokerSettings

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(mosquitto_binary() is None,
                       reason="the mosquitto binary is not installed (apt-get install mosquitto)"),
]

BRIDGE_PASSWORD = "bridge-" + secrets.token_hex(8)
WAIT_S = 10


@pytest.fixture
def backend():  # the broker tests run on SQLite only; the ingest core is tested on both
    return "sqlite"


@pytest.fixture
def broker(tmp_path):
    broker = PrivateBroker(tmp_path, [(BRIDGE_USER, BRIDGE_PASSWORD)]).start()
    yield broker
    broker.stop()


@pytest.fixture
def bridge(app, broker):
    bridge = Bridge(app, BrokerSettings(port=broker.port, password=BRIDGE_PASSWORD,
                                        client_id="tgd-bridge-test"))
    bridge.start()
    assert bridge.wait_connected(WAIT_S), broker.log_text()
    yield bridge
    bridge.stop()


class DeviceClient:
    """What the handset's modem does over AT+CMQTT*: its own account, its own topics."""

    def __init__(self, broker: PrivateBroker, handset, password: str | None = None):
        self.handset = handset
        self.inbox: queue.Queue = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=handset.device_id,
                                  protocol=mqtt.MQTTv311)
        self.client.username_pw_set(handset.device_id,
                                    password or topics.device_password(handset.key_hex))
        self.client.will_set(topics.status(handset.device_id), b"offline", qos=1, retain=True)
        self.connected: queue.Queue = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.put(rc)
        self.client.on_message = lambda c, u, msg: self.inbox.put((msg.topic, msg.payload))
        self.client.connect("127.0.0.1", broker.port, keepalive=30)
        self.client.loop_start()

    def wait_connected(self):
        return self.connected.get(timeout=WAIT_S)

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        time.sleep(0.2)

    def publish_signed(self, message: dict, topic: str | None = None) -> bytes:
        body = self.handset.encode(message)
        payload = self.handset.sign(body).encode() + b"\n" + body
        info = self.client.publish(topic or topics.uplink(self.handset.device_id), payload, qos=1)
        info.wait_for_publish(WAIT_S)
        return payload

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def device(broker, make_handset):
    clients = []

    def make(handset=None, password=None):
        handset = handset or make_handset()
        broker.add_account(handset.device_id, topics.device_password(handset.key_hex))
        client = DeviceClient(broker, handset, password)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def count(app, model, *where) -> int:
    with app.app_context(), db.session_factory()() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_alarm_over_mqtt_is_ingested_and_answered_signed(app, bridge, device):
    handset_client = device()
    assert handset_client.wait_connected() == 0
    handset = handset_client.handset
    handset_client.subscribe(topics.downlink(handset.device_id))

    handset_client.publish_signed(handset.message("alarm"))

    topic, payload = handset_client.inbox.get(timeout=WAIT_S)
    signature, body = topics.split_frame(payload)
    expected = hmac.new(bytes.fromhex(handset.key_hex), body, hashlib.sha256).hexdigest()
    assert topic == topics.downlink(handset.device_id)
    assert signature == expected
    answer = json.loads(body)
    assert answer["ok"] is True and answer["alarm"]["aid"] == handset.aid
    assert count(app, Alarm) == 1


def test_broker_redelivery_makes_one_alarm(app, bridge, device):
    handset_client = device()
    handset_client.wait_connected()
    handset = handset_client.handset
    payload = handset_client.publish_signed(handset.message("alarm"))
    # The broker redelivers the same QoS 1 message (e.g. the bridge died before its PUBACK).
    handset_client.client.publish(topics.uplink(handset.device_id), payload, qos=1).wait_for_publish()
    handset_client.publish_signed(handset.message("position"))  # a retry: new seq, same aid

    assert wait_until(lambda: count(app, StoredMessage) == 2)
    assert wait_until(lambda: count(app, SecurityLog, SecurityLog.event == "replay") == 1)
    assert count(app, Alarm) == 1


def test_acl_confines_a_handset_to_its_own_topics(app, bridge, device):
    victim = device()
    intruder = device()
    victim.wait_connected()
    intruder.wait_connected()
    intruder.subscribe(topics.downlink(victim.handset.device_id))

    # Signed with the intruder's own key but published under the victim's topic:
    # the broker drops it silently (MQTT 3.1.1), so nothing may arrive anywhere.
    intruder.publish_signed(intruder.handset.message("alarm"),
                            topic=topics.uplink(victim.handset.device_id))
    victim.subscribe(topics.downlink(victim.handset.device_id))
    victim.publish_signed(victim.handset.message("heartbeat"))

    assert wait_until(lambda: count(app, StoredMessage) == 1)
    time.sleep(0.5)
    assert count(app, StoredMessage) == 1
    assert count(app, Alarm) == 0
    assert victim.inbox.get(timeout=WAIT_S)[0] == topics.downlink(victim.handset.device_id)
    assert intruder.inbox.empty(), "the intruder read another handset's downlink"


def test_wrong_password_is_refused(broker, make_handset, device):
    client = device(password="not-the-derived-password")
    assert client.wait_connected() != 0


def test_unsigned_and_mismatched_uplinks_are_refused_and_store_nothing(app, bridge, make_handset):
    handset = make_handset()
    other = make_handset()
    body = handset.encode(handset.message("alarm"))
    with app.app_context():
        bridge.handle(topics.uplink(handset.device_id), body)  # no signature line
        bridge.handle(topics.uplink(other.device_id),           # body of one, topic of another
                      handset.sign(body).encode() + b"\n" + body)
        bridge.handle("tgd/../up", b"x")
    assert count(app, StoredMessage) == 0
    assert count(app, Alarm) == 0
    events = {row for row in _security_events(app)}
    assert {"unsigned", "topic_mismatch", "bad_topic"} <= events


def test_last_will_marks_the_handset_offline(app, bridge, device, broker):
    handset_client = device()
    handset_client.wait_connected()
    handset_client.client.publish(topics.status(handset_client.handset.device_id), b"online",
                                  qos=1, retain=True).wait_for_publish()
    assert wait_until(lambda: _link_state(app, handset_client.handset.device_id) == "online")
    handset_client.client._sock.close()  # the modem vanishes: no DISCONNECT, the will fires
    assert wait_until(lambda: _link_state(app, handset_client.handset.device_id) == "offline",
                      timeout=60)


def test_broker_restart_in_the_middle_of_an_alarm(app, bridge, device, broker):
    handset_client = device()
    handset_client.wait_connected()
    handset = handset_client.handset
    handset_client.publish_signed(handset.message("alarm"))
    assert wait_until(lambda: count(app, Alarm) == 1)

    broker.stop()
    broker.start()  # persistence on: the bridge's persistent session survives
    handset_client.close()
    again = DeviceClient(broker, handset)
    try:
        assert again.wait_connected() == 0
        assert wait_until(bridge.connected.is_set, timeout=40), broker.log_text()
        again.publish_signed(handset.message("position", fix={
            "m": "G", "lat": -22.2741, "lon": 166.4488, "acc": 8, "t": int(time.time())}))
        assert wait_until(lambda: count(app, Position, Position.method == "G") == 1, timeout=40)
    finally:
        again.close()
    assert count(app, Alarm) == 1


def _security_events(app) -> list[str]:
    with app.app_context(), db.session_factory()() as session:
        return list(session.scalars(select(SecurityLog.event)))


def _link_state(app, device_id: str) -> str | None:
    from tgd_server.models import Device

    with app.app_context(), db.session_factory()() as session:
        device = session.get(Device, device_id)
        return device.link_state if device is not None else None


@pytest.mark.parametrize("argv, flag", [
    (["mqtt-bridge", "--partition", "2/2"], "--partition"),
    (["mqtt-bridge", "--partition", "x"], "--partition"),
    (["mqtt-passwd", "--out", "unused", "--bridges", "0"], "--bridges"),
])
def test_cli_mistakes_name_the_flag(argv, flag, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    tgd_server = str(Path(sys.executable).with_name("tgd-server"))
    done = subprocess.run([tgd_server, *argv], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert flag in error and "Traceback" not in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_update_offer_travels_in_the_mqtt_heartbeat_answer_only(app, bridge, device, api_headers):
    """Issue 17: the same answer over MQTT as over HTTP; an alarm's answer has no offer."""
    from tgd_flash import release_file, release_sign

    seed = bytes(range(32))
    app.config["TGD_RELEASE_PUBS"] = release_sign.public_key(seed).hex()
    tech = api_headers("technician")
    client = app.test_client()
    data = release_file.build_release(seed, "1.1.0", [("alarm.mpy", b"M\x06x")], "1.0.0")
    assert client.post("/api/v1/releases", data=data, headers=tech).status_code == 201
    handset_client = device()
    handset_client.wait_connected()
    handset = handset_client.handset
    assert client.post("/api/v1/rollouts", headers=tech, json={
        "version": "1.1.0", "canary": handset.device_id, "stages": [100]}).status_code == 201
    handset_client.subscribe(topics.downlink(handset.device_id))
    answers = []
    for kind in ("alarm", "heartbeat"):
        handset_client.publish_signed(handset.message(kind))
        answers.append(json.loads(topics.split_frame(handset_client.inbox.get(timeout=WAIT_S)[1])[1]))
    assert "update" not in answers[0] and answers[0]["alarm"]["aid"] == handset.aid
    assert answers[1]["update"]["version"] == "1.1.0"
    assert answers[1]["update"]["url"] == "/api/v1/fw/1.1.0/bundle"
