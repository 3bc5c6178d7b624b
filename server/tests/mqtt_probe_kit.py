"""Helpers of the MQTT probe suite (test_mqtt_probe.py): handset clients on their own
accounts, a TCP proxy that cuts the database away, and the probe's report line."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from tgd_server import db
from tgd_server.mqtt import topics

WAIT_S = 10


class Handset:
    """What the handset's modem does over AT+CMQTT*: its own account, its own topics.

    `sent` counts publishes, `acked` those the broker acknowledged (PUBACK)."""

    def __init__(self, port: int, handset, *, user: str | None = None,
                 password: str | None = None, client_id: str | None = None,
                 subscribe_down: bool = True):
        self.handset = handset
        self.inbox: queue.Queue = queue.Queue()
        self.connects: queue.Queue = queue.Queue()
        self.disconnects: queue.Queue = queue.Queue()
        self.sent = self.acked = 0
        self.payloads: list[bytes] = []
        user = user or handset.device_id
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or handset.device_id,
                                  clean_session=False, protocol=mqtt.MQTTv311)
        if password is None:
            password = topics.device_password(handset.key_hex)
        self.client.username_pw_set(user, password)
        self.client.will_set(topics.status(handset.device_id), b"offline", qos=1, retain=True)
        self.client.on_connect = lambda c, u, f, rc, p: self.connects.put(rc)
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnects.put(rc)
        self.client.on_message = lambda c, u, msg: self.inbox.put((msg.topic, msg.payload))
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.subscribe_down = subscribe_down

    def wait_connected(self) -> int:
        rc = self.connects.get(timeout=WAIT_S)
        if rc == 0 and self.subscribe_down:
            self.subscribe(topics.downlink(self.handset.device_id))
        return rc

    def subscribe(self, topic: str) -> int:
        done: queue.Queue = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: done.put(rcs[0].value)
        self.client.subscribe(topic, qos=1)
        return done.get(timeout=WAIT_S)

    def publish(self, payload: bytes, topic: str | None = None, retain: bool = False,
                wait: bool = True):
        topic = topic or topics.uplink(self.handset.device_id)
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.sent += 1
        self.payloads.append(payload)
        if wait:
            info.wait_for_publish(WAIT_S)
            self.acked += info.is_published()
        return info

    def publish_signed(self, message: dict, **kwargs):
        body = self.handset.encode(message)
        return self.publish(self.handset.sign(body).encode() + b"\n" + body, **kwargs)

    def answers(self, timeout: float = 0.5) -> list[dict]:
        """The signed answers received so far (bodies as dicts)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, payload = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return got
            got.append(json.loads(topics.split_frame(payload)[1]))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def count(app, model, *where) -> int:
    with app.app_context(), db.session_factory()() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def report(name: str, *, sent: int, acknowledged: int, stored: int, lost: int,
           duplicates: int = 0, **extra) -> str:
    """The probe's line: what was sent, acknowledged by the broker, stored, lost."""
    more = "".join(f" {key}={value}" for key, value in extra.items())
    line = (f"PROBE {name}: sent={sent} acknowledged={acknowledged} stored={stored} "
            f"lost={lost} duplicates={duplicates}{more}")
    print(line)
    return line


class TcpProxy:
    """A TCP relay to the database server that can be cut: connections reset, new ones
    refused (what the bridge sees when PostgreSQL stops), then restored."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.up = False
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
