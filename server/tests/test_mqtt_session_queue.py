"""Per-session queue bounds of the deployed Mosquitto configuration, against a real
private broker (docs/mqtt.md, "The broker's settings").

A handset's session that is offline while answers pile up for it holds at most
`max_queued_bytes` of payload and `max_queued_messages` messages; the broker drops the
newer ones (it keeps the oldest), logs it, and no other session loses anything.

    .venv/bin/pytest server/tests/test_mqtt_session_queue.py -s -q      # CI: the byte bound, ~8 s
    TGD_MQTT_QUEUE_COUNT=1 .venv/bin/pytest server/tests/test_mqtt_session_queue.py -s -q
                                      # also the message-count bound (100 000 messages, ~20 s)
"""

from __future__ import annotations

import math
import os
import queue
import secrets
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import PrivateBroker, mosquitto_binary
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tgd_server.mqtt import topics
from tgd_server.mqtt.bridge import ANSWER_EXPIRY_S, BRIDGE_USER
from tgd_server.mqtt.private_broker import DEPLOY

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(mosquitto_binary() is None,
                       reason="the mosquitto binary is not installed (apt-get install mosquitto)"),
]

WAIT_S = 10
BRIDGE_PASSWORD = "bridge-" + secrets.token_hex(8)
VICTIM, OFFLINE_PEER, ONLINE_PEER = "NC9001", "NC9002", "NC9003"
PEER_MESSAGES = 20


def deployed_setting(name: str) -> int:
    """A bound set in deploy/mosquitto/mosquitto.conf; missing or 0 (no bound for
    Mosquitto; its defaults are 1000 messages and no byte bound) fails the test."""
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == name and int(words[1]) > 0:
            return int(words[1])
    pytest.fail(f"deploy/mosquitto/mosquitto.conf sets no {name}: the per-session queue "
                "bound is gone")


class Device:
    """A handset's session: its own account and client id, persistent (clean session
    off, as the modem connects), subscribed at QoS 1 to its own downlink."""

    def __init__(self, port: int, device_id: str):
        self.device_id, self.port = device_id, port
        self.inbox: queue.Queue = queue.Queue()
        self.client: mqtt.Client | None = None

    def connect(self) -> Device:
        subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id,
                             clean_session=False, protocol=mqtt.MQTTv311)
        client.username_pw_set(self.device_id, "pw-" + self.device_id)
        client.on_message = lambda _c, _u, msg: self.inbox.put(msg.payload)
        client.on_subscribe = lambda *_args: subscribed.set()
        client.connect("127.0.0.1", self.port, keepalive=30)
        client.loop_start()
        client.subscribe(topics.downlink(self.device_id), qos=1)
        assert subscribed.wait(WAIT_S), "no SUBACK"
        self.client = client
        return self

    def go_offline(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client = None

    def drain(self, quiet_s: float = 1.5) -> list[bytes]:
        """Everything delivered until nothing came for `quiet_s`."""
        got = []
        while True:
            try:
                got.append(self.inbox.get(timeout=quiet_s))
            except queue.Empty:
                return got


@pytest.fixture
def broker(tmp_path):
    # Persistence off: the bound is the same either way, and a 64 MiB session saved every
    # second would only slow the test.
    broker = PrivateBroker(tmp_path, [(BRIDGE_USER, BRIDGE_PASSWORD)]
                           + [(d, "pw-" + d) for d in (VICTIM, OFFLINE_PEER, ONLINE_PEER)],
                           persistent=False).start()
    yield broker
    broker.stop()


@pytest.fixture
def answers(broker):
    """Publishes on handsets' downlinks as the bridge does (its account, MQTT 5, QoS 1,
    the answers' 5-minute expiry)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=BRIDGE_USER,
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(BRIDGE_USER, BRIDGE_PASSWORD)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", broker.port, keepalive=30)
    client.loop_start()
    assert connected.wait(WAIT_S), broker.log_text()
    properties = Properties(PacketTypes.PUBLISH)
    properties.MessageExpiryInterval = ANSWER_EXPIRY_S

    def publish(device_id: str, count: int, size: int) -> int:
        """`count` numbered payloads of `size` bytes; returns how many the broker PUBACKed."""
        padding = b"." * (size - 8)
        infos = []
        for n in range(count):
            infos.append(client.publish(topics.downlink(device_id), b"%08d" % n + padding,
                                        qos=1, properties=properties))
            if n % 5000 == 4999:  # paho's packet ids are 16 bits: settle before reusing them
                infos[-1].wait_for_publish(60)
        for info in infos:
            info.wait_for_publish(60)
        return sum(info.is_published() for info in infos)

    yield publish
    client.disconnect()
    client.loop_stop()


def flood_an_offline_session(broker, answers, *, size: int, bound: int) -> dict:
    """The victim offline, `bound` + 200 answers of `size` bytes for it; its offline and
    online peers get PEER_MESSAGES each after the flood. Returns what each received."""
    victim = Device(broker.port, VICTIM).connect()
    offline_peer = Device(broker.port, OFFLINE_PEER).connect()
    online_peer = Device(broker.port, ONLINE_PEER).connect()
    victim.go_offline()
    offline_peer.go_offline()
    sent = bound + 200
    started = time.monotonic()
    acknowledged = answers(VICTIM, sent, size)
    answers(OFFLINE_PEER, PEER_MESSAGES, size)
    answers(ONLINE_PEER, PEER_MESSAGES, size)
    got = {"sent": sent, "acknowledged": acknowledged,
           "flood_s": round(time.monotonic() - started, 1),
           ONLINE_PEER: online_peer.drain()}
    got[VICTIM] = victim.connect().drain()
    got[OFFLINE_PEER] = offline_peer.connect().drain()
    for device in (victim, offline_peer, online_peer):
        device.go_offline()
    print(f"QUEUE {size}-byte answers to an offline handset: sent={sent} "
          f"acknowledged_by_broker={acknowledged} delivered_on_reconnect={len(got[VICTIM])} "
          f"dropped={sent - len(got[VICTIM])} bound={bound} "
          f"offline_peer={len(got[OFFLINE_PEER])}/{PEER_MESSAGES} "
          f"online_peer={len(got[ONLINE_PEER])}/{PEER_MESSAGES} flood_s={got['flood_s']}")
    return got


def check_bounded(broker, got: dict, bound: int) -> None:
    numbers = [int(payload[:8]) for payload in got[VICTIM]]
    # The broker accepted every publish (a PUBACK to the bridge) and kept the oldest
    # `bound` for the offline session, in order; the newer ones were dropped.
    assert got["acknowledged"] == got["sent"]
    assert len(numbers) == bound, f"kept {len(numbers)} of {got['sent']}, bound {bound}"
    assert numbers == list(range(bound))
    assert f"Outgoing messages are being dropped for client {VICTIM}." in broker.log_text()
    # Other sessions, offline or online, lose nothing.
    for peer in (OFFLINE_PEER, ONLINE_PEER):
        assert [int(p[:8]) for p in got[peer]] == list(range(PEER_MESSAGES)), peer
        assert f"dropped for client {peer}." not in broker.log_text()


def test_an_offline_handset_session_holds_at_most_max_queued_bytes(broker, answers):
    """Answers of 4000 bytes (under message_size_limit): the byte bound is reached first.
    Without `max_queued_bytes` the count bound (100 000) would keep all of them; without
    `max_queued_messages` Mosquitto's default (1000) would keep fewer."""
    size = 4000
    assert size <= deployed_setting("message_size_limit")
    bound = min(math.ceil(deployed_setting("max_queued_bytes") / size),
                deployed_setting("max_queued_messages"))
    got = flood_an_offline_session(broker, answers, size=size, bound=bound)
    check_bounded(broker, got, bound)


@pytest.mark.skipif(not os.environ.get("TGD_MQTT_QUEUE_COUNT"),
                    reason="100 000 messages (~20 s): TGD_MQTT_QUEUE_COUNT=1 runs it")
def test_an_offline_handset_session_holds_at_most_max_queued_messages(broker, answers):
    """Small answers: the message-count bound is reached first."""
    size = 64
    bound = deployed_setting("max_queued_messages")
    assert bound * size < deployed_setting("max_queued_bytes")
    got = flood_an_offline_session(broker, answers, size=size, bound=bound)
    check_bounded(broker, got, bound)
