"""AT+CMQTT* of the emulated SIM7600 against a private Mosquitto with the project's
configuration (deploy/mosquitto: accounts, ACL), byte for byte."""

import pytest
from mqtt_testkit import Spy, needs_mosquitto, start_broker

from tgd_server.mqtt.topics import device_password

DEV = "NC0001"
KEY = "11" * 32
PASSWORD = device_password(KEY)


@pytest.fixture(scope="module")
def broker():
    needs_mosquitto()
    b = start_broker({DEV: KEY}, persistent=False)
    yield b
    b.stop()


@pytest.fixture
def spy(broker):
    s = Spy(broker.port, ["tgd/+/up", "tgd/+/status"])
    yield s
    s.close()




def _input(at, command: str, data: bytes) -> None:
    at.send(command)
    assert at.expect(b"\r\n>", 2) == b"\r\n>"
    at.write(data)  # exactly n bytes, no Ctrl-Z
    assert at.expect(b"\r\nOK\r\n", 2) == b"\r\nOK\r\n"


def _start(at, client_id=DEV, tls=0):
    assert at.command("AT+CMQTTSTART") == b"\r\nOK\r\n"
    assert at.expect(b"+CMQTTSTART: 0\r\n", 3) == b"\r\n+CMQTTSTART: 0\r\n"
    assert at.command(f'AT+CMQTTACCQ=0,"{client_id}",{tls}') == b"\r\nOK\r\n"


def _connect(at, port, user=DEV, password=PASSWORD, will=True, code=0):
    if will:
        topic = f"tgd/{DEV}/status".encode()
        _input(at, f"AT+CMQTTWILLTOPIC=0,{len(topic)}", topic)
        _input(at, "AT+CMQTTWILLMSG=0,7,1", b"offline")
    assert at.command(
        f'AT+CMQTTCONNECT=0,"tcp://127.0.0.1:{port}",60,1,"{user}","{password}"'
    ) == b"\r\nOK\r\n"
    line = f"\r\n+CMQTTCONNECT: 0,{code}\r\n".encode()
    assert at.expect(b"+CMQTTCONNECT: 0,", 5) == line[: line.index(b",") + 1]
    assert at.expect(b"\r\n", 1) == f"{code}\r\n".encode()


def _publish(at, topic: str, payload: bytes, retain=0) -> None:
    _input(at, f"AT+CMQTTTOPIC=0,{len(topic)}", topic.encode())
    _input(at, f"AT+CMQTTPAYLOAD=0,{len(payload)}", payload)
    assert at.command(f"AT+CMQTTPUB=0,1,60,{retain}") == b"\r\nOK\r\n"
    assert at.expect(b"+CMQTTPUB: 0,", 5) == b"\r\n+CMQTTPUB: 0,"
    assert at.expect(b"\r\n", 1) == b"0\r\n"


def test_publish_subscribe_and_receive_through_the_real_broker(at, broker, spy, net):
    _start(at)
    _connect(at, broker.port)
    down = f"tgd/{DEV}/down".encode()
    _input(at, f"AT+CMQTTSUB=0,{len(down)},1", down)
    assert at.expect(b"+CMQTTSUB: 0,0\r\n", 5) == b"\r\n+CMQTTSUB: 0,0\r\n"
    framed = b"ab" * 32 + b'\n{"v":1,"dev":"NC0001"}'  # a line break inside the payload
    _publish(at, f"tgd/{DEV}/up", framed)
    assert spy.next() == (f"tgd/{DEV}/up", framed, False)
    _publish(at, f"tgd/{DEV}/status", b"online", retain=1)
    assert spy.next() == (f"tgd/{DEV}/status", b"online", False)

    answer = b"cd" * 32 + b'\n{"ok":true,"seq":5,"cmds":[]}'
    spy.publish(f"tgd/{DEV}/down", answer)
    topic = f"tgd/{DEV}/down".encode()
    assert at.expect(b"+CMQTTRXEND: 0\r\n", 5) == (
        f"\r\n+CMQTTRXSTART: 0,{len(topic)},{len(answer)}\r\n".encode()
        + f"\r\n+CMQTTRXTOPIC: 0,{len(topic)}\r\n".encode() + topic
        + f"\r\n+CMQTTRXPAYLOAD: 0,{len(answer)}\r\n".encode() + answer
        + b"\r\n+CMQTTRXEND: 0\r\n")

    assert at.command("AT+CMQTTDISC=0,60") == b"\r\nOK\r\n"
    assert at.expect(b"+CMQTTDISC: 0,0\r\n", 3)
    assert spy.nothing_for(0.5)  # a clean disconnect: no will
    assert at.command("AT+CMQTTREL=0") == b"\r\nOK\r\n"
    assert at.command("AT+CMQTTSTOP") == b"\r\nOK\r\n"
    assert at.expect(b"+CMQTTSTOP: 0\r\n", 2)
    kinds = [e["kind"] for e in net.events if e["kind"].startswith("mqtt")]
    assert kinds[:3] == ["mqtt_connect", "mqtt_connected", "mqtt_subscribe"]
    assert "mqtt_message" in kinds


def test_strictness_and_immediate_error_codes(at, broker):
    assert at.command('AT+CMQTTACCQ=0,"x",0') == b"\r\nERROR\r\n"  # before START
    _start(at)
    assert at.command("AT+CMQTTSTART") == b"\r\n+CMQTTSTART: 23\r\n\r\nERROR\r\n"
    assert at.command('AT+CMQTTACCQ=0,"y",0') == b"\r\n+CMQTTACCQ: 0,19\r\n\r\nERROR\r\n"
    assert at.command("AT+CMQTTACCQ?") == (
        b'\r\n+CMQTTACCQ: 0,"NC0001",0\r\n\r\n+CMQTTACCQ: 1,"",0\r\n\r\nOK\r\n')
    assert at.command("AT+CMQTTPUB=0,1,60") == b"\r\n+CMQTTPUB: 0,11\r\n\r\nERROR\r\n"
    assert at.command("AT+CMQTTDISC=0,60") == b"\r\n+CMQTTDISC: 0,11\r\n\r\nERROR\r\n"
    assert at.command('AT+CMQTTCONNECT=0,"mqtt://127.0.0.1:1",60,1') == b"\r\nERROR\r\n"
    assert at.command("AT+CMQTTTOPIC=1,5") == b"\r\nERROR\r\n"  # client 1 not acquired
    assert at.command("AT+CMQTTTOPIC=0,0") == b"\r\nERROR\r\n"
    _connect(at, broker.port, will=False)
    assert at.command("AT+CMQTTPUB=0,1,60") == b"\r\n+CMQTTPUB: 0,18\r\n\r\nERROR\r\n"
    assert at.command("AT+CMQTTREL=0") == b"\r\nERROR\r\n"  # still connected


@pytest.mark.parametrize("how, code", [("bad_password", None), ("closed_port", 3), ("tls", 32)])
def test_connect_failures_have_the_modems_codes(at, broker, how, code):
    _start(at, tls=1 if how == "tls" else 0)
    port = broker.port
    password = PASSWORD
    if how == "closed_port":
        from mqtt_testkit import mqtt_broker
        port = mqtt_broker.free_port()
    if how == "bad_password":
        password = "wrong"
    assert at.command(
        f'AT+CMQTTCONNECT=0,"tcp://127.0.0.1:{port}",60,1,"{DEV}","{password}"') == b"\r\nOK\r\n"
    got = at.expect(b"\r\n", 5) + at.expect(b"\r\n", 5)
    if code is None:  # MQTT 3.1.1 CONNACK 4 or 5: bad user name or password / not authorized
        assert got in (b"\r\n+CMQTTCONNECT: 0,30\r\n", b"\r\n+CMQTTCONNECT: 0,31\r\n")
    else:
        assert got == f"\r\n+CMQTTCONNECT: 0,{code}\r\n".encode()
    # The client can connect again after a failure.
    if how != "tls":
        _connect(at, broker.port, will=False)


def test_acl_confines_a_handset_to_its_own_topics(at, broker, spy):
    _start(at)
    _connect(at, broker.port, will=False)
    _publish(at, "tgd/NC0002/up", b"x" * 64 + b"\n{}")  # MQTT 3.1.1: accepted, then dropped
    assert spy.nothing_for(1.0)
    _publish(at, f"tgd/{DEV}/up", b"mine")
    assert spy.next() == (f"tgd/{DEV}/up", b"mine", False)


def test_connection_lost_sends_the_retained_will(at, broker, spy, modem):
    _start(at)
    _connect(at, broker.port)
    modem.inject("mqtt_connection_lost")
    assert at.expect(b"+CMQTTCONNLOST: 0,1\r\n", 3)
    assert spy.next() == (f"tgd/{DEV}/status", b"offline", False)
    retained = Spy(broker.port, [f"tgd/{DEV}/status"])  # a late subscriber sees the retained will
    try:
        assert retained.next(retained=True) == (f"tgd/{DEV}/status", b"offline", True)
    finally:
        retained.close()
    assert at.command("AT+CMQTTPUB=0,1,60") == b"\r\n+CMQTTPUB: 0,11\r\n\r\nERROR\r\n"
    _connect(at, broker.port)  # reconnects on the same client


def test_coverage_loss_gives_connlost_then_nonet_and_stops_the_service(at, broker, modem, spy):
    _start(at)
    _connect(at, broker.port)
    modem.inject("no_service")
    assert at.expect(b"+CMQTTNONET\r\n", 3).endswith(
        b"\r\n+CMQTTCONNLOST: 0,3\r\n\r\n+CMQTTNONET\r\n")
    assert spy.next()[1] == b"offline"
    assert at.command("AT+CMQTTACCQ?") == b"\r\nERROR\r\n"  # service stopped
    modem.inject("service_back")
    modem.net.wait_event("registration", 3, modem=modem.msisdn, stat=1,
                         since=modem.net.events[-1]["t"])
    _start(at)
    _connect(at, broker.port)


def test_unreachable_broker_fault(at, broker, modem):
    _start(at)
    _connect(at, broker.port, will=False)
    modem.inject("mqtt_unreachable")
    assert at.expect(b"+CMQTTCONNLOST: 0,1\r\n", 3)
    _connect(at, broker.port, will=False, code=3)
    modem.inject("mqtt_reachable")
    _connect(at, broker.port, will=False)
