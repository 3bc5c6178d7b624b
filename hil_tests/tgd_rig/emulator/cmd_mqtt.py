"""MQTT over the modem (AT+CMQTT*), backed by a real broker connection per client.

SIM7600 MQTT application note (reference/sim7600-at.md, "MQTT over the modem"):

    AT+CMQTTSTART                      -> OK, +CMQTTSTART: 0        (+CMQTTSTART: 23, ERROR: started)
    AT+CMQTTACCQ=<i>,"<id>"[,<tls>]    -> OK                        (+CMQTTACCQ: <i>,19, ERROR: used)
    AT+CMQTTWILLTOPIC=<i>,<n> / AT+CMQTTWILLMSG=<i>,<n>,<qos>   -> ">" then exactly n bytes -> OK
    AT+CMQTTCONNECT=<i>,"tcp://h:p",<keepalive>,<clean>[,"user","pass"] -> OK, +CMQTTCONNECT: <i>,<err>
    AT+CMQTTTOPIC=<i>,<n> / AT+CMQTTPAYLOAD=<i>,<n>              -> ">" then exactly n bytes -> OK
    AT+CMQTTPUB=<i>,<qos>,<timeout>[,<retain>]   -> OK, +CMQTTPUB: <i>,<err>  (+CMQTTPUB: <i>,11, ERROR)
    AT+CMQTTSUB=<i>,<n>,<qos>          -> ">" topic -> OK, +CMQTTSUB: <i>,<err>
    AT+CMQTTDISC=<i>,<timeout>         -> OK, +CMQTTDISC: <i>,0
    AT+CMQTTREL=<i> / AT+CMQTTSTOP     -> OK (+CMQTTSTOP: 0)

Incoming: +CMQTTRXSTART: <i>,<tl>,<pl> / +CMQTTRXTOPIC: <i>,<tl> / topic / +CMQTTRXPAYLOAD:
<i>,<pl> / payload / +CMQTTRXEND: <i>. Broker gone: +CMQTTCONNLOST: <i>,<cause> (1 closed
by the peer, 3 network closed). Coverage lost: +CMQTTNONET and the service stops.

Each acquired client that connects gets its own paho-mqtt client to the real broker, so
the rig exercises the broker's accounts and ACL. paho calls back in its own thread;
every callback hops into the network loop before touching the modem.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from .atparse import EXEC, READ, SET, AtSyntaxError, Command
from .errors import Refused
from .formats import frame

if TYPE_CHECKING:
    from .modem import Sim7600Emulator

CLIENTS = 2  # client indices 0 and 1
MAX_TOPIC = 1024
MAX_PAYLOAD = 10240
INPUT_TIMEOUT_S = 10.0  # topic/payload bytes after the `>` prompt

# Error codes of the SIM7600 MQTT application note.
OK_CODE = 0
FAILED = 1
SOCK_CONNECT_FAIL = 3
NO_CONNECTION = 11
NOT_SUPPORTED = 13
TIMEOUT = 17
TOPIC_EMPTY = 18
CLIENT_USED = 19
NETWORK_OPENED = 23  # AT+CMQTTSTART when already started
DNS_FAIL = 25
CLOSED_BY_SERVER = 26
HANDSHAKE_FAIL = 32
CONNLOST_PEER = 1  # +CMQTTCONNLOST causes: closed passively by the peer
CONNLOST_NETWORK = 3  # ... the network (PDP) went away

# MQTT 3.1.1 CONNACK refusals (as paho's reason codes) -> the modem's error codes.
_CONNACK_ERRORS = {132: 27, 133: 28, 136: 29, 134: 30, 135: 31}


@dataclass
class MqttSlot:
    """One client index: set by ACCQ, WILL*, TOPIC/PAYLOAD; connected by CONNECT."""

    index: int
    client_id: str
    tls: bool
    will_topic: bytes | None = None
    will_msg: bytes | None = None
    will_qos: int = 0
    topic: bytes | None = None
    payload: bytes = b""
    paho: Any = None  # paho.Client while connecting or connected
    state: str = "idle"  # idle, connecting, connected
    closing: bool = False  # a disconnect we asked for (no CONNLOST)
    pending: dict[int, Any] = field(default_factory=dict)  # mid -> timeout handle


@dataclass
class MqttService:
    """AT+CMQTTSTART .. AT+CMQTTSTOP."""

    slots: dict[int, MqttSlot] = field(default_factory=dict)


def _service(m: Sim7600Emulator) -> MqttService:
    service = m.settings.mqtt
    if service is None:
        raise Refused("MQTT service not started (AT+CMQTTSTART)")
    return service


def _slot(m: Sim7600Emulator, cmd: Command) -> MqttSlot:
    index = cmd.arg_int(0, 0, CLIENTS - 1)
    slot = _service(m).slots.get(index)
    if slot is None:
        raise Refused(f"MQTT client {index} not acquired")
    return slot


def _code_then_error(name: str, index: int | None, code: int) -> list[str]:
    """An immediate failure: the command's own line with the code, then ERROR."""
    where = f"{index}," if index is not None else ""
    return [f"+{name}: {where}{code}", "ERROR"]


# -- service and clients --------------------------------------------------------------
def cmqttstart(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != EXEC:
        raise AtSyntaxError("CMQTTSTART takes no argument")
    if m.settings.mqtt is not None:
        return _code_then_error("CMQTTSTART", None, NETWORK_OPENED)
    service = MqttService()
    m.settings.mqtt = service

    def started() -> None:
        if m.settings.mqtt is not service:
            return
        if not m.data_up:
            m.settings.mqtt = None
            m.urc("+CMQTTSTART: 7")  # network open failed
            return
        m.urc("+CMQTTSTART: 0")

    m.later(m.draw("netopen_s"), started)
    return ["OK"]


def cmqttstop(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != EXEC:
        raise AtSyntaxError("CMQTTSTOP takes no argument")
    service = _service(m)
    for slot in service.slots.values():
        _drop_connection(m, slot, graceful=True)
    m.settings.mqtt = None
    m.later(0, m.urc, "+CMQTTSTOP: 0")
    return ["OK"]


def cmqttaccq(m: Sim7600Emulator, cmd: Command) -> list[str]:
    service = _service(m)
    if cmd.kind == READ:
        lines = []
        for i in range(CLIENTS):
            slot = service.slots.get(i)
            cid, tls = (slot.client_id, int(slot.tls)) if slot else ("", 0)
            lines.append(f'+CMQTTACCQ: {i},"{cid}",{tls}')
        return lines + ["OK"]
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTACCQ: set or read form")
    cmd.nargs(2, 3)
    index = cmd.arg_int(0, 0, CLIENTS - 1)
    client_id = cmd.arg_str(1)
    if not 1 <= len(client_id) <= 128:
        raise AtSyntaxError("CMQTTACCQ: client id of 1..128 characters")
    tls = cmd.arg_int(2, 0, 1, default=0)
    if index in service.slots:
        return _code_then_error("CMQTTACCQ", index, CLIENT_USED)
    service.slots[index] = MqttSlot(index, client_id, bool(tls))
    return ["OK"]


def cmqttrel(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTREL: set form only")
    cmd.nargs(1, 1)
    slot = _slot(m, cmd)
    if slot.state != "idle":
        raise Refused("CMQTTREL of a connected client (AT+CMQTTDISC first)")
    del _service(m).slots[slot.index]
    return ["OK"]


def cmqttsslcfg(m: Sim7600Emulator, cmd: Command) -> list[str]:
    # The SSL context (authmode, CA) is not modelled: like HTTPS here, no certificate check.
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTSSLCFG: set form only")
    cmd.nargs(2, 2)
    cmd.arg_int(0, 0, CLIENTS - 1)
    cmd.arg_int(1, 0, 9)
    return ["OK"]


# -- `>` inputs of exact length ---------------------------------------------------------
def _input(m: Sim7600Emulator, cmd: Command, low: int, high: int, store) -> None:
    length = cmd.arg_int(1, low, high)

    def done(data: bytes | None) -> None:
        if data is None:
            m.finish(["ERROR"])
            return
        store(data)
        m.finish(["OK"])

    m.start_data_input(length, INPUT_TIMEOUT_S, done, prompt_bytes=b"\r\n>")


def cmqttwilltopic(m: Sim7600Emulator, cmd: Command) -> None:
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTWILLTOPIC: set form only")
    cmd.nargs(2, 2)
    slot = _slot(m, cmd)
    _input(m, cmd, 1, MAX_TOPIC, lambda data: setattr(slot, "will_topic", data))


def cmqttwillmsg(m: Sim7600Emulator, cmd: Command) -> None:
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTWILLMSG: set form only")
    cmd.nargs(3, 3)
    slot = _slot(m, cmd)
    qos = cmd.arg_int(2, 0, 2)

    def store(data: bytes) -> None:
        slot.will_msg = data
        slot.will_qos = qos

    _input(m, cmd, 1, MAX_TOPIC, store)


def cmqtttopic(m: Sim7600Emulator, cmd: Command) -> None:
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTTOPIC: set form only")
    cmd.nargs(2, 2)
    slot = _slot(m, cmd)
    _input(m, cmd, 1, MAX_TOPIC, lambda data: setattr(slot, "topic", data))


def cmqttpayload(m: Sim7600Emulator, cmd: Command) -> None:
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTPAYLOAD: set form only")
    cmd.nargs(2, 2)
    slot = _slot(m, cmd)
    _input(m, cmd, 1, MAX_PAYLOAD, lambda data: setattr(slot, "payload", data))


# -- connection ---------------------------------------------------------------------------
def cmqttconnect(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTCONNECT: set form only")
    cmd.nargs(4, 6)
    slot = _slot(m, cmd)
    url = cmd.arg_str(1)
    keepalive = cmd.arg_int(2, 1, 64800)
    clean = cmd.arg_int(3, 0, 1)
    user = cmd.arg_str(4) if len(cmd.args) > 4 else None
    password = cmd.arg_str(5) if len(cmd.args) > 5 else None
    parts = urlsplit(url)
    # The address is "tcp://" even for TLS (the client's server_type says TLS).
    if parts.scheme != "tcp" or not parts.hostname:
        raise AtSyntaxError(f"CMQTTCONNECT: not tcp://host:port: {url!r}")
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise AtSyntaxError(f"CMQTTCONNECT: bad port in {url!r}") from exc
    if slot.state != "idle":
        return _code_then_error("CMQTTCONNECT", slot.index, NOT_SUPPORTED)
    slot.state = "connecting"
    slot.closing = False
    m.net.event("mqtt_connect", modem=m.msisdn, index=slot.index, url=url, user=user)
    if not m.data_up:
        m.later(m.draw("http_rtt_s"), _connect_result, m, slot, None, NO_CONNECTION)
        return ["OK"]
    if m.faults.mqtt_unreachable:
        m.later(m.draw("http_rtt_s"), _connect_result, m, slot, None, SOCK_CONNECT_FAIL)
        return ["OK"]
    client = _make_client(m, slot, bool(clean), user, password)
    slot.paho = client
    loop = m.net.loop

    def work() -> None:
        try:
            client.connect(parts.hostname, port, keepalive)
        except socket.gaierror:
            code = DNS_FAIL
        except (ConnectionRefusedError, TimeoutError, ValueError):
            code = SOCK_CONNECT_FAIL
        except OSError:  # reset or closed during the TLS handshake, or an SSL error
            code = HANDSHAKE_FAIL if slot.tls else SOCK_CONNECT_FAIL
        else:
            client.loop_start()  # CONNACK comes to on_connect
            return
        _hop(loop, _connect_result, m, slot, client, code)

    threading.Thread(target=work, name=f"mqtt-connect-{m.msisdn}", daemon=True).start()
    return ["OK"]


def _make_client(m: Sim7600Emulator, slot: MqttSlot, clean: bool, user: str | None,
                 password: str | None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=slot.client_id,
                         clean_session=clean, protocol=paho.MQTTv311,
                         reconnect_on_failure=False)
    if user is not None:
        client.username_pw_set(user, password)
    if slot.will_topic is not None and slot.will_msg is not None:
        # Retained, so the broker keeps "offline" as the handset's status (not confirmed
        # on a real SIM7600, whose CMQTTWILLMSG has no retain flag).
        client.will_set(slot.will_topic.decode("utf-8", "replace"), slot.will_msg,
                        slot.will_qos, retain=True)
    if slot.tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # like the modem's default authmode 0
        client.tls_set_context(context)
    loop = m.net.loop
    client.on_connect = lambda c, _u, _f, rc, _p: _hop(
        loop, _connect_result, m, slot, c, 0 if not rc.is_failure else
        _CONNACK_ERRORS.get(rc.value, FAILED))
    client.on_disconnect = lambda c, _u, _f, rc, _p: _hop(loop, _disconnected, m, slot, c)
    client.on_publish = lambda c, _u, mid, _rc, _p: _hop(loop, _published, m, slot, c, mid)
    client.on_subscribe = lambda c, _u, mid, rcs, _p: _hop(
        loop, _subscribed, m, slot, c, mid, any(rc.is_failure for rc in rcs))
    client.on_message = lambda c, _u, msg: _hop(
        loop, _incoming, m, slot, c, msg.topic.encode("utf-8"), bytes(msg.payload))
    return client


def _hop(loop, fn, *args) -> None:
    """From a paho thread into the network loop (which may be gone at shutdown)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass


def _current(m: Sim7600Emulator, slot: MqttSlot, client) -> bool:
    """The callback is about the connection this slot still has (not a dropped one)."""
    service = m.settings.mqtt
    return (service is not None and service.slots.get(slot.index) is slot
            and slot.paho is client and m.power == "on")


def _connect_result(m: Sim7600Emulator, slot: MqttSlot, client, code: int) -> None:
    if client is not None and not _current(m, slot, client):
        return
    if slot.state != "connecting":
        return
    m.net.event("mqtt_connected", modem=m.msisdn, index=slot.index, result=code)
    if code == OK_CODE:
        slot.state = "connected"
    else:
        _drop_connection(m, slot, graceful=False)
    m.urc(f"+CMQTTCONNECT: {slot.index},{code}")


def _disconnected(m: Sim7600Emulator, slot: MqttSlot, client) -> None:
    if not _current(m, slot, client):
        return
    if slot.closing:
        return
    if slot.state == "connecting":
        _connect_result(m, slot, client, CLOSED_BY_SERVER)
        return
    _connection_lost(m, slot, CONNLOST_PEER)


def _connection_lost(m: Sim7600Emulator, slot: MqttSlot, cause: int) -> None:
    _drop_connection(m, slot, graceful=False)
    m.net.event("mqtt_connlost", modem=m.msisdn, index=slot.index, cause=cause)
    m.urc(f"+CMQTTCONNLOST: {slot.index},{cause}")


def _drop_connection(m: Sim7600Emulator, slot: MqttSlot, graceful: bool) -> None:
    """Forget the slot's broker connection; an ungraceful drop makes the broker send the will."""
    client = slot.paho
    slot.paho = None
    slot.state = "idle"
    slot.closing = False
    for handle in slot.pending.values():
        handle.cancel()
    slot.pending.clear()
    if client is not None:
        threading.Thread(target=_close_client, args=(client, graceful), daemon=True).start()


def _close_client(client: paho.Client, graceful: bool) -> None:
    # In a thread of its own: loop_stop() joins paho's thread.
    try:
        if graceful:
            client.disconnect()
        else:
            sock = client.socket()
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the broker publishes the will
        client.loop_stop()
    except (OSError, AttributeError):
        pass


def cmqttdisc(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTDISC: set form only")
    cmd.nargs(1, 2)
    slot = _slot(m, cmd)
    cmd.arg_int(1, 0, 180, default=0)
    if slot.state != "connected":
        return _code_then_error("CMQTTDISC", slot.index, NO_CONNECTION)
    _drop_connection(m, slot, graceful=True)
    m.net.event("mqtt_disconnect", modem=m.msisdn, index=slot.index)
    m.later(m.draw("http_rtt_s") / 2, m.urc, f"+CMQTTDISC: {slot.index},0")
    return ["OK"]


# -- publish and subscribe ------------------------------------------------------------------
def cmqttpub(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTPUB: set form only")
    cmd.nargs(3, 5)
    slot = _slot(m, cmd)
    qos = cmd.arg_int(1, 0, 2)
    timeout_s = cmd.arg_int(2, 1, 180)
    retain = cmd.arg_int(3, 0, 1, default=0)
    cmd.arg_int(4, 0, 1, default=0)  # dup flag: paho sets it itself on a resend
    if slot.state != "connected" or slot.paho is None:
        return _code_then_error("CMQTTPUB", slot.index, NO_CONNECTION)
    if not slot.topic:
        return _code_then_error("CMQTTPUB", slot.index, TOPIC_EMPTY)
    topic, payload = slot.topic.decode("utf-8", "replace"), slot.payload
    slot.topic, slot.payload = None, b""  # used once, like the modem's buffers
    m.net.event("mqtt_publish", modem=m.msisdn, index=slot.index, topic=topic, qos=qos,
                retain=bool(retain), length=len(payload),
                payload=payload[:4096].decode("utf-8", "replace"))
    info = slot.paho.publish(topic, payload, qos, bool(retain))
    if info.rc != paho.MQTT_ERR_SUCCESS:
        m.later(0, m.urc, f"+CMQTTPUB: {slot.index},{NO_CONNECTION}")
        return ["OK"]
    slot.pending[info.mid] = m.later(timeout_s, _pub_timeout, m, slot, info.mid)
    return ["OK"]


def _published(m: Sim7600Emulator, slot: MqttSlot, client, mid: int) -> None:
    if not _current(m, slot, client):
        return
    handle = slot.pending.pop(mid, None)
    if handle is None:
        return
    handle.cancel()
    m.urc(f"+CMQTTPUB: {slot.index},0")


def _pub_timeout(m: Sim7600Emulator, slot: MqttSlot, mid: int) -> None:
    if slot.pending.pop(mid, None) is not None:
        m.urc(f"+CMQTTPUB: {slot.index},{TIMEOUT}")


def cmqttsub(m: Sim7600Emulator, cmd: Command) -> None:
    if cmd.kind != SET:
        raise AtSyntaxError("CMQTTSUB: set form only")
    cmd.nargs(3, 4)
    slot = _slot(m, cmd)
    qos = cmd.arg_int(2, 0, 2)
    cmd.arg_int(3, 0, 1, default=0)

    def store(data: bytes) -> None:
        m.later(0, _subscribe, m, slot, data.decode("utf-8", "replace"), qos)

    _input(m, cmd, 1, MAX_TOPIC, store)


def _subscribe(m: Sim7600Emulator, slot: MqttSlot, topic: str, qos: int) -> None:
    if slot.state != "connected" or slot.paho is None:
        m.urc(f"+CMQTTSUB: {slot.index},{NO_CONNECTION}")
        return
    result, mid = slot.paho.subscribe(topic, qos)
    m.net.event("mqtt_subscribe", modem=m.msisdn, index=slot.index, topic=topic, qos=qos)
    if result != paho.MQTT_ERR_SUCCESS or mid is None:
        m.urc(f"+CMQTTSUB: {slot.index},{NO_CONNECTION}")
        return
    slot.pending[mid] = m.later(60.0, _sub_timeout, m, slot, mid)


def _subscribed(m: Sim7600Emulator, slot: MqttSlot, client, mid: int, refused: bool) -> None:
    if not _current(m, slot, client):
        return
    handle = slot.pending.pop(mid, None)
    if handle is None:
        return
    handle.cancel()
    m.urc(f"+CMQTTSUB: {slot.index},{FAILED if refused else 0}")


def _sub_timeout(m: Sim7600Emulator, slot: MqttSlot, mid: int) -> None:
    if slot.pending.pop(mid, None) is not None:
        m.urc(f"+CMQTTSUB: {slot.index},{TIMEOUT}")


def _incoming(m: Sim7600Emulator, slot: MqttSlot, client, topic: bytes, payload: bytes) -> None:
    if not _current(m, slot, client):
        return
    i = slot.index
    m.net.event("mqtt_message", modem=m.msisdn, index=i, topic=topic.decode("utf-8", "replace"),
                length=len(payload))
    # Topic and payload are raw blocks of the announced length, each followed by CR LF.
    m.emit(frame(f"+CMQTTRXSTART: {i},{len(topic)},{len(payload)}")
           + frame(f"+CMQTTRXTOPIC: {i},{len(topic)}") + topic
           + frame(f"+CMQTTRXPAYLOAD: {i},{len(payload)}") + payload
           + frame(f"+CMQTTRXEND: {i}"))


# -- the world: coverage, power, faults -------------------------------------------------------
def radio_lost(m: Sim7600Emulator) -> None:
    """Registration lost: connections drop, +CMQTTNONET, the service stops."""
    service = m.settings.mqtt
    if service is None:
        return
    for slot in service.slots.values():
        if slot.state == "connected":
            _connection_lost(m, slot, CONNLOST_NETWORK)
        else:
            _drop_connection(m, slot, graceful=False)
    m.settings.mqtt = None
    m.net.event("mqtt_nonet", modem=m.msisdn)
    m.urc("+CMQTTNONET")


def power_lost(m: Sim7600Emulator) -> None:
    """Power cut or reboot: every broker connection just vanishes (the broker sends the wills)."""
    service = m.settings.mqtt
    if service is None:
        return
    for slot in service.slots.values():
        _drop_connection(m, slot, graceful=False)
    m.settings.mqtt = None


def connection_lost(m: Sim7600Emulator, index: int = 0) -> None:
    """Fault: the broker connection of client `index` breaks (no DISCONNECT: the will goes)."""
    service = m.settings.mqtt
    slot = service.slots.get(index) if service is not None else None
    if slot is None or slot.state != "connected":
        m.transcript.note(f"mqtt_connection_lost: client {index} not connected")
        return
    _connection_lost(m, slot, CONNLOST_PEER)


def unreachable(m: Sim7600Emulator) -> None:
    """Fault: connections drop and new CONNECTs fail (+CMQTTCONNECT: <i>,3) until restored."""
    m.faults.mqtt_unreachable = True
    service = m.settings.mqtt
    if service is None:
        return
    for slot in service.slots.values():
        if slot.state == "connected":
            _connection_lost(m, slot, CONNLOST_PEER)
        elif slot.state == "connecting":
            _connect_result(m, slot, None, SOCK_CONNECT_FAIL)


COMMANDS = {
    "+CMQTTSTART": cmqttstart,
    "+CMQTTSTOP": cmqttstop,
    "+CMQTTACCQ": cmqttaccq,
    "+CMQTTREL": cmqttrel,
    "+CMQTTSSLCFG": cmqttsslcfg,
    "+CMQTTWILLTOPIC": cmqttwilltopic,
    "+CMQTTWILLMSG": cmqttwillmsg,
    "+CMQTTCONNECT": cmqttconnect,
    "+CMQTTDISC": cmqttdisc,
    "+CMQTTTOPIC": cmqtttopic,
    "+CMQTTPAYLOAD": cmqttpayload,
    "+CMQTTPUB": cmqttpub,
    "+CMQTTSUB": cmqttsub,
}
