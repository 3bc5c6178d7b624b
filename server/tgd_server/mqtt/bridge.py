"""The MQTT bridge: device uplinks from the broker into the ingest core, answers back.

One paho-mqtt client with a persistent session (clean_session False) so that QoS 1
uplinks published while the bridge restarts wait in the broker; with `shared`,
several bridge processes split the uplinks through the shared subscription
`$share/tgd-bridge/tgd/+/up`. Each uplink is acknowledged to the broker
(manual PUBACK) only after the ingest core has committed it: a crash before that
makes the broker redeliver, and the ingest core's sequence window refuses the
redelivered copy (409 replay) so exactly one alarm still exists.

The network thread only queues: `workers` threads run the ingest, a device always
on the same worker so its messages keep their order, and concurrent messages of
different devices share the ingest core's commits.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import zlib
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from flask import Flask
from paho.mqtt.enums import CallbackAPIVersion

from .. import db
from ..ingest import ingest_device_message
from ..models import Device, utcnow
from ..security_log import log_refusal
from . import topics

log = logging.getLogger("tgd.mqtt")

BRIDGE_USER = "tgd-bridge"


@dataclass
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = BRIDGE_USER
    password: str | None = None
    client_id: str = "tgd-bridge-1"
    shared: bool = False
    keepalive_s: int = 30
    tls_ca: str | None = None
    workers: int = 8


class Bridge:
    """Feeds `tgd/+/up` into the ingest core and publishes the answers on `tgd/<id>/down`."""

    def __init__(self, app: Flask, broker: BrokerSettings) -> None:
        self.app = app
        self.broker = broker
        self.connected = threading.Event()
        self.handled = 0
        self._client: mqtt.Client | None = None
        self._queues: list[queue.Queue] = []
        self._workers: list[threading.Thread] = []

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        for index in range(max(1, self.broker.workers)):
            work: queue.Queue = queue.Queue()
            worker = threading.Thread(target=self._work, args=(work,), daemon=True,
                                      name=f"tgd-bridge-{index}")
            worker.start()
            self._queues.append(work)
            self._workers.append(worker)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.broker.client_id,
                             clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls_ca:
            client.tls_set(ca_certs=self.broker.tls_ca)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        for work in self._queues:
            work.put(None)
        for worker in self._workers:
            worker.join(timeout=10)
        self._queues.clear()
        self._workers.clear()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self.connected.clear()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    # -- paho callbacks (network thread) ------------------------------------

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the bridge: %s", reason_code)
            return
        uplinks = topics.UPLINK_FILTER
        if self.broker.shared:
            uplinks = f"$share/{topics.SHARE_GROUP}/{uplinks}"
        client.subscribe([(uplinks, 1), (topics.STATUS_FILTER, 1)])
        log.info("bridge connected to %s:%s, subscribed to %s",
                 self.broker.host, self.broker.port, uplinks)
        self.connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        log.warning("bridge disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, client, _userdata, msg: mqtt.MQTTMessage) -> None:
        parsed = topics.parse_topic(msg.topic)
        lane = zlib.crc32(parsed[0].encode()) if parsed else 0
        self._queues[lane % len(self._queues)].put((client, msg))

    def _work(self, work: queue.Queue) -> None:
        while (item := work.get()) is not None:
            client, msg = item
            try:
                with self.app.app_context():
                    self.handle(msg.topic, msg.payload)
            except Exception:  # noqa: BLE001 - never lose the worker; the broker redelivers
                log.exception("uplink on %s not handled; left unacknowledged for redelivery",
                              msg.topic)
                continue
            client.ack(msg.mid, msg.qos)

    # -- the work (also called directly by tests) ---------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        parsed = topics.parse_topic(topic)
        if parsed is None:
            log_refusal("mqtt", topic, "bad_topic", detail=topic, body=payload)
            return
        device_id, kind = parsed
        if kind == "status":
            mark_link(device_id, payload)
            return
        if kind != "up":
            return
        self.handled += 1
        try:
            signature, body = topics.split_frame(payload)
        except topics.FrameError as exc:
            log_refusal("mqtt", f"mqtt:{device_id}", "unsigned", device_id, str(exc), payload)
            return
        if _claimed_device(body) not in (device_id, None):
            log_refusal("mqtt", f"mqtt:{device_id}", "topic_mismatch", device_id,
                        "body's dev differs from the topic's device", body)
            return
        result = ingest_device_message(body, signature, channel="mqtt", source=f"mqtt:{device_id}")
        self._answer(device_id, result.answer)

    def _answer(self, device_id: str, answer: dict) -> None:
        key_hex = _device_key(device_id)
        if key_hex is None or self._client is None:
            return  # unknown device: nothing to sign the answer with, nobody to tell
        body = json.dumps(answer, separators=(",", ":")).encode()
        self._client.publish(topics.downlink(device_id), topics.frame(key_hex, body), qos=1)


def _claimed_device(body: bytes) -> str | None:
    try:
        claimed = json.loads(body).get("dev")
    except (ValueError, AttributeError):
        return None  # the ingest core refuses it with the right error
    return claimed if isinstance(claimed, str) else None


def _device_key(device_id: str) -> str | None:
    with db.session_factory()() as session:
        device = session.get(Device, device_id)
        return device.key_hex if device is not None else None


def mark_link(device_id: str, payload: bytes) -> None:
    """Record a handset's MQTT presence (its retained status or its last will)."""
    state = payload.decode("ascii", errors="replace").strip().lower()
    if state not in ("online", "offline"):
        log_refusal("mqtt", f"mqtt:{device_id}", "bad_status", device_id, state[:64], payload)
        return
    with db.session_factory()() as session:
        device = session.get(Device, device_id)
        if device is None:
            return
        device.link_state = state
        device.link_changed_at = utcnow()
        session.commit()
    log.info("device %s is %s on MQTT", device_id, state)
