"""The MQTT bridge: device uplinks from the broker into the ingest core, answers back.

One paho-mqtt client speaking MQTT 5 with a persistent session (clean start off,
no session expiry) so that QoS 1 uplinks published while the bridge restarts wait
in the broker. Each uplink is acknowledged to the broker (manual PUBACK) only
once it is decided (docs/mqtt.md, "What the bridge decides"):

- stored: the ingest core committed it (or an identical copy was stored before:
  a redelivery, answered as stored);
- refused: a security-log row is written, then the PUBACK;
- kept: the database is unavailable; the bridge keeps the message and tries it
  again every few seconds (at most RETRY_MAX_S apart) until it can store or refuse
  it. Mosquitto resends an unacknowledged message only after a reconnect, so the
  bridge retries itself; a crash before the PUBACK makes the broker redeliver it
  to the next session, and the ingest core's sequence window makes that copy one.

An unexpected exception on one message is tried UNEXPECTED_ATTEMPTS times, then
refused (`bridge_error`): a message the bridge cannot handle never holds the
broker's in-flight window. The window itself is the bridge's Receive Maximum.

Several bridge processes split the uplinks by partition (`--partition k/n`, each
with its own account): every bridge subscribes to every uplink and handles the
devices whose crc32 falls in its partition. There is no shared subscription: a
device that joins a `$share` group takes nothing from the bridge.

The network thread only queues: `workers` threads run the ingest, a device always
on the same worker so its messages keep their order, and concurrent messages of
different devices share the ingest core's commits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import zlib
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from flask import Flask
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import select
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .. import db
from ..ingest import IngestTimeout, ingest_device_message, log_ingest_refusal
from ..message import MessageRefused, parse_envelope
from ..models import Alarm, Device, utcnow
from ..models import DeviceMessage as StoredMessage
from ..security_log import refusal_row
from . import topics

log = logging.getLogger("tgd.mqtt")

BRIDGE_USER = topics.BRIDGE_USER
# The database cannot be reached or is busy: keep the message and try again.
TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, IngestTimeout)
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 2.0
UNEXPECTED_ATTEMPTS = 3  # then the message is refused (bridge_error)
RECEIVE_MAXIMUM = 256  # uplinks the broker may have in flight to the bridge
SESSION_EXPIRY_S = 0xFFFFFFFF  # the bridge's session never expires
ANSWER_EXPIRY_S = 300  # an answer nobody read in 5 minutes is dropped by the broker
# Worker lanes. Each holds one message until its commit, so the lanes are how many
# messages the ingest writer can commit together: the bridge keeps up with R msg/s only
# while a message's wait for its commit stays under WORKERS / R. A batch on PostgreSQL
# is round trips (five: ping, BEGIN, device rows FOR UPDATE, the rows, COMMIT; eight
# before the rows went in one statement), each waiting for a CPU on a busy machine:
# with 32 lanes and 4 ms per round trip the bridge kept up with 330-360 msg/s
# (docs/benchmarks.md, "MQTT transport"). 128 lanes tolerate 220 ms at 575 msg/s, and
# the writer's batches grow instead of the queue. At most RECEIVE_MAXIMUM messages are
# in the bridge, so more lanes than that would idle.
WORKERS = 128


@dataclass
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = BRIDGE_USER
    password: str | None = None
    client_id: str | None = None  # the broker uses the user name (use_username_as_clientid)
    partition: tuple[int, int] = (0, 1)  # (k, n): this bridge handles crc32(device) % n == k
    keepalive_s: int = 30
    tls_ca: str | None = None
    workers: int = WORKERS


class Bridge:
    """Feeds `tgd/+/up` into the ingest core and publishes the answers on `tgd/<id>/down`."""

    def __init__(self, app: Flask, broker: BrokerSettings) -> None:
        self.app = app
        self.broker = broker
        self.connected = threading.Event()
        self.handled = 0
        self.retries = 0  # attempts that failed and were tried again (tests, probes)
        self._client: mqtt.Client | None = None
        self._queues: list[queue.Queue] = []
        self._workers: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._keys: dict[str, str] | None = None  # device id -> key (read at the first answer)
        self._keys_lock = threading.Lock()

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        for index in range(max(1, self.broker.workers)):
            work: queue.Queue = queue.Queue()
            worker = threading.Thread(target=self._work, args=(work,), daemon=True,
                                      name=f"tgd-bridge-{index}")
            worker.start()
            self._queues.append(work)
            self._workers.append(worker)
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=self.broker.client_id or self.broker.username or "",
                             protocol=mqtt.MQTTv5, manual_ack=True)
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls_ca:
            client.tls_set(ca_certs=self.broker.tls_ca)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        connect = Properties(PacketTypes.CONNECT)
        connect.SessionExpiryInterval = SESSION_EXPIRY_S
        connect.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s,
                             clean_start=False, properties=connect)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        self._stopping.set()
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
        # Uplinks: no retained message at subscribe time (a device cannot make the bridge
        # read an old uplink again) and the publisher's retain flag kept, so that a
        # retained uplink is seen and refused. Status: the retained states once, when
        # the subscription is new (the persistent session has the changes since).
        client.subscribe([
            (topics.UPLINK_FILTER, SubscribeOptions(qos=1, retainAsPublished=True,
                                                    retainHandling=2)),
            (topics.STATUS_FILTER, SubscribeOptions(qos=1, retainHandling=1)),
        ])
        log.info("bridge connected to %s:%s as %s, partition %d/%d", self.broker.host,
                 self.broker.port, self.broker.username, *self.broker.partition)

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("broker refused the bridge's subscriptions: %s", ", ".join(refused))
            return
        log.info("bridge subscribed to the uplinks and statuses")
        self.connected.set()  # subscribed: ready to receive

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        log.warning("bridge disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, client, _userdata, msg: mqtt.MQTTMessage) -> None:
        parsed = topics.parse_topic(msg.topic)
        lane = zlib.crc32(parsed[0].encode()) if parsed else 0
        k, n = self.broker.partition
        if parsed and n > 1 and lane % n != k:
            client.ack(msg.mid, msg.qos)  # another bridge's device
            return
        self._queues[lane % len(self._queues)].put((client, msg))

    def _work(self, work: queue.Queue) -> None:
        while (item := work.get()) is not None:
            client, msg = item
            if self.settle(msg.topic, msg.payload, bool(msg.retain)):
                client.ack(msg.mid, msg.qos)

    # -- the decision ---------------------------------------------------------

    def settle(self, topic: str, payload: bytes, retained: bool = False) -> bool:
        """Handle one message until it is stored or refused (True: acknowledge it).

        False only when the bridge stops first: the message stays unacknowledged and
        the broker gives it to the next session."""
        delay, unexpected = RETRY_FIRST_S, 0
        while not self._stopping.is_set():
            try:
                with self.app.app_context():
                    if unexpected >= UNEXPECTED_ATTEMPTS:
                        self._refuse(topic, "bridge_error", payload,
                                     f"not handled after {unexpected} attempts")
                    else:
                        self.handle(topic, payload, retained)
                return True
            except TRANSIENT as exc:
                log.warning("uplink on %s kept, database unavailable (%s); again in %.1f s",
                            topic, type(exc).__name__, delay)
            except Exception:  # noqa: BLE001 - decided below: tried again, then refused
                unexpected += 1
                log.exception("uplink on %s failed (attempt %d of %d)", topic, unexpected,
                              UNEXPECTED_ATTEMPTS)
            self.retries += 1
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, RETRY_MAX_S)
        return False

    # -- the work (also called directly by tests) ---------------------------

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        parsed = topics.parse_topic(topic)
        if parsed is None:
            self._refuse(topic, "bad_topic", payload, topic)
            return
        device_id, kind = parsed
        if kind == "status":
            mark_link(device_id, payload)
            return
        if kind != "up":
            return
        self.handled += 1
        if retained:
            self._refuse(topic, "retained_uplink", payload, "uplinks must not be retained",
                         device_id)
            return
        try:
            signature, body = topics.split_frame(payload)
        except topics.FrameError as exc:
            self._refuse(topic, "unsigned", payload, str(exc), device_id)
            return
        envelope = _envelope(body)
        if envelope is not None and envelope["dev"] != device_id:
            self._refuse(topic, "topic_mismatch", body,
                         "body's dev differs from the topic's device", device_id)
            return
        result = ingest_device_message(body, signature, channel="mqtt", source=f"mqtt:{device_id}")
        answer = result.answer
        seq = envelope.get("seq") if envelope is not None else None
        if result.status == 409 and envelope is not None:
            answer = _stored_copy_answer(device_id, envelope, body) or answer
        if not isinstance(seq, int) or isinstance(seq, bool):
            return  # no seq to name: the handset could not tell which message it answers
        answer.setdefault("seq", seq)
        self._answer(device_id, answer, body, signature)

    def _refuse(self, topic: str, event: str, payload: bytes, detail: str,
                device_id: str | None = None) -> None:
        parsed = topics.parse_topic(topic)
        device_id = device_id or (parsed[0] if parsed else None)
        row = refusal_row("mqtt", f"mqtt:{device_id}" if device_id else topic[:128], event,
                          device_id, detail, payload)
        log_ingest_refusal(db.session_factory(), row)

    def _answer(self, device_id: str, answer: dict, body: bytes, signature: str) -> None:
        key_hex = self._device_key(device_id, body, signature)
        if key_hex is None or self._client is None:
            return  # unknown device: nothing to sign the answer with, nobody to tell
        answer_body = json.dumps(answer, separators=(",", ":")).encode()
        self._client.publish(topics.downlink(device_id), topics.frame(key_hex, answer_body),
                             qos=1, properties=_ANSWER_PROPERTIES)

    def _device_key(self, device_id: str, body: bytes, signature: str) -> str | None:
        """The key to sign the answer with. The keys are read once, all together; a
        cached key is used only if it verifies the uplink (so a device given a new key
        is read again), else the device's row is read."""
        with self._keys_lock:
            if self._keys is None:
                with db.session_factory()() as session:
                    rows = session.execute(select(Device.id, Device.key_hex).where(
                        Device.retired_at.is_(None)))
                    self._keys = {device_id: key for device_id, key in rows}
            key_hex = self._keys.get(device_id)
        if key_hex is not None and hmac.compare_digest(
                hmac.new(bytes.fromhex(key_hex), body, hashlib.sha256).hexdigest(), signature):
            return key_hex
        with db.session_factory()() as session:
            device = session.get(Device, device_id)
            key_hex = device.key_hex if device is not None and device.retired_at is None else None
        with self._keys_lock:
            if key_hex is None:
                self._keys.pop(device_id, None)
            else:
                self._keys[device_id] = key_hex
        return key_hex


_ANSWER_PROPERTIES = Properties(PacketTypes.PUBLISH)  # built once: paho only reads it
_ANSWER_PROPERTIES.MessageExpiryInterval = ANSWER_EXPIRY_S


def _envelope(body: bytes) -> dict | None:
    """The body's envelope, or None: the ingest core then refuses it with the right error."""
    try:
        return parse_envelope(body)
    except MessageRefused:
        return None


def _stored_copy_answer(device_id: str, envelope: dict, body: bytes) -> dict | None:
    """A refused replay whose exact bytes are stored: a redelivered copy. Its answer is
    'stored' (the handset may still be waiting for it), never a refusal that would make
    the handset send the same data again under a new seq."""
    with db.session_factory()() as session:
        stored = session.scalar(select(StoredMessage.body).where(
            StoredMessage.device_id == device_id, StoredMessage.seq == envelope["seq"]))
        if stored is None or stored.encode("utf-8") != body:
            return None
        answer = {"ok": True, "seq": envelope["seq"], "cmds": []}
        aid = envelope.get("aid")
        if isinstance(aid, str):
            state = session.scalar(select(Alarm.state).where(Alarm.device_id == device_id,
                                                             Alarm.aid == aid))
            if state is not None:
                answer["alarm"] = {"aid": aid, "state": state}
    log.info("uplink %s seq %s is a copy of a stored message: answered as stored",
             device_id, envelope["seq"])
    return answer


def mark_link(device_id: str, payload: bytes) -> None:
    """Record a handset's MQTT presence (its retained status or its last will)."""
    state = payload.decode("ascii", errors="replace").strip().lower()
    if state not in ("online", "offline"):
        row = refusal_row("mqtt", f"mqtt:{device_id}", "bad_status", device_id, state[:64],
                          payload)
        log_ingest_refusal(db.session_factory(), row)
        return
    with db.write_session() as session:  # the one write mechanism (BEGIN IMMEDIATE on SQLite)
        device = session.get(Device, device_id)
        if device is None:
            return
        device.link_state = state
        device.link_changed_at = utcnow()
    log.info("device %s is %s on MQTT", device_id, state)
