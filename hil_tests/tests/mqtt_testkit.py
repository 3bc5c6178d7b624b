"""Helpers of the MQTT tests: the server's private broker (loaded by path, so both test
trees run the project's Mosquitto configuration the same way), device accounts and a
spy client with the bridge's account."""

from __future__ import annotations

import importlib.util
import queue
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tgd_server.mqtt.topics import device_password

_BROKER_PY = Path(__file__).resolve().parents[2] / "server" / "tests" / "mqtt_broker.py"
_spec = importlib.util.spec_from_file_location("tgd_mqtt_broker", _BROKER_PY)
mqtt_broker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mqtt_broker)  # type: ignore[union-attr]

PrivateBroker = mqtt_broker.PrivateBroker
BRIDGE_USER = "tgd-bridge"
BRIDGE_PASSWORD = "bridge-secret-for-tests"
NO_MOSQUITTO = "the mosquitto binary is not installed (apt-get install mosquitto)"


def needs_mosquitto() -> None:
    if mqtt_broker.mosquitto_binary() is None:
        pytest.skip(NO_MOSQUITTO)


def start_broker(devices: dict[str, str], persistent: bool = True) -> PrivateBroker:
    """A private broker with the bridge's account and one account per device {id: key hex}."""
    needs_mosquitto()
    workdir = Path(tempfile.mkdtemp(prefix="tgd-mosquitto-"))
    accounts = [(BRIDGE_USER, BRIDGE_PASSWORD)]
    accounts += [(dev, device_password(key)) for dev, key in devices.items()]
    return PrivateBroker(workdir, accounts, persistent=persistent).start()


class Spy:
    """A paho client with the bridge's account that records what it receives."""

    def __init__(self, port: int, topics: list[str], user: str = BRIDGE_USER,
                 password: str = BRIDGE_PASSWORD):
        self.messages: queue.Queue = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"spy-{user}",
                                  protocol=paho.MQTTv311)
        self.client.username_pw_set(user, password)
        self.client.on_message = lambda _c, _u, msg: self.messages.put(
            (msg.topic, bytes(msg.payload), bool(msg.retain)))
        subscribed = queue.Queue()
        self.client.on_subscribe = lambda *_a: subscribed.put(True)
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        for topic in topics:
            self.client.subscribe(topic, 1)
            subscribed.get(timeout=5)

    def next(self, timeout: float = 5.0, retained: bool = False) -> tuple[str, bytes, bool]:
        """The next message (retained ones, left by earlier tests, only when asked)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            if retained or not message[2]:
                return message

    def nothing_for(self, seconds: float) -> bool:
        try:
            self.next(seconds)
        except queue.Empty:
            return True
        return False

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, 1, retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
