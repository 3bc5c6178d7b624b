"""The MQTT transport end to end: the real firmware (transport "mqtt") on the MicroPython
VM, the SIM7600 emulator's AT+CMQTT* on a private Mosquitto with the project's
configuration (accounts, ACL), the server's bridge (tgd_server.mqtt.bridge) feeding the
real ingest core, the call and the AML SMS beside it.

- an alarm over MQTT reaches the server once, and is acknowledged by the answer that
  comes back on the handset's downlink;
- the broker restarts in the middle of an alarm: the positions keep coming (HTTP while
  the broker is away), MQTT takes over again, still one alarm;
- the broker cannot be reached during an alarm: the HTTP fallback delivers it (and the
  SMS goes anyway).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mqtt_testkit import BRIDGE_PASSWORD, mqtt_broker, needs_mosquitto, start_broker
from rig_testkit import assert_passed, needs_firmware

from tgd_rig.devicelog import parse_log_line
from tgd_rig.emulated import EmulatedRig
from tgd_rig.runner import observe
from tgd_rig.scenario import parse_scenario
from tgd_server.mqtt.bridge import Bridge, BrokerSettings
from tgd_server.mqtt.topics import device_password


def scenario(device_id: str, observe_s: float = 25.0, log_sequence=("ALARM", "DATA", "ACKED")):
    return parse_scenario({
        "name": f"mqtt_{device_id}", "timing": "fast", "observe_s": observe_s,
        "handset": {"device_id": device_id, "indoor": True},
        "config": {"trigger_hold_ms": 600, "track_interval_s": 5},
        "police": {"answer_after_s": 1.0},
        "press": [{"at_s": 0.5, "hold_s": 0.8}],
        "expect": {"alarms": 1, "log_sequence": list(log_sequence),
                   "within_s": {"dial": 1.0, "server_alarm": 15, "sms_delivered": 20}},
    })


class MqttRig:
    """An emulated rig whose handset speaks MQTT to a private broker bridged to the server."""

    def __init__(self, workdir: Path, device_id: str, broker_port: int | None = None):
        self.rig = EmulatedRig(workdir, timing="fast", police_answer_after_s=1.0)
        self.device_id = device_id
        self.broker = None
        self.bridge = None
        self.port = broker_port

    def start(self, with_broker: bool = True):
        self.rig.start()
        if with_broker:
            self.broker = start_broker({}, persistent=True)  # the bridge's account for now
            self.port = self.broker.port
            self.bridge = Bridge(self.rig.server.app, BrokerSettings(
                port=self.port, password=BRIDGE_PASSWORD, client_id=f"bridge-{self.device_id}"))
            self.bridge.start()
            assert self.bridge.wait_connected(10), self.broker.log_text()
        sc = scenario(self.device_id)
        self.handset = self.rig.add_handset(
            self.device_id, indoor=True,
            config={**sc.config, "transport": "mqtt", "mqtt_url": f"tcp://127.0.0.1:{self.port}"})
        if self.broker is not None:  # the device's account: user = id, password from its key
            self.broker.add_account(self.device_id, device_password(self.handset.identity.key))
        self.handset.power_on()
        return self

    def stop(self):
        if self.bridge is not None:
            self.bridge.stop()
        self.rig.stop()
        if self.broker is not None:
            self.broker.stop()

    def log(self) -> list[tuple[float, str, dict[str, str]]]:
        out = []
        for line in self.handset.log.lines:
            if line.event:
                out.append((line.t, line.event, dict(line.fields)))
        return out

    def data(self, **match: str) -> list[tuple[float, dict[str, str]]]:
        return [(t, f) for t, event, f in self.log()
                if event == "DATA" and all(f.get(k) == v for k, v in match.items())]

    def wait_data(self, timeout: float, **match: str) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.data(**match)
            if found:
                return found[0][0]
            time.sleep(0.05)
        raise AssertionError(f"no DATA {match} in {timeout} s; log: {self.handset.log.path}")


@pytest.fixture
def mqtt_rig(rig_workdir, request):
    needs_firmware()
    made = []

    def make(device_id: str, with_broker: bool = True, broker_port: int | None = None):
        r = MqttRig(rig_workdir, device_id, broker_port)
        made.append(r)
        return r.start(with_broker)

    yield make
    for r in made:
        r.stop()


def _lines(report: dict) -> list[tuple[str, dict[str, str]]]:
    out = []
    for raw in Path(report["log"]).read_text().splitlines():
        _, event, fields = parse_log_line(raw.split(" ", 1)[1] if " " in raw else raw)
        if event:
            out.append((event, fields))
    return out


def test_alarm_over_mqtt_arrives_exactly_once(mqtt_rig):
    needs_mosquitto()
    r = mqtt_rig("NC0041")
    report = observe(r.rig, r.handset, scenario("NC0041"))
    assert_passed(report)
    assert report["server_alarms"] == 1
    lines = _lines(report)
    alarm_data = [f for e, f in lines if e == "DATA" and f.get("type") == "alarm"]
    assert alarm_data and alarm_data[0].get("via") == "mqtt" and alarm_data[0]["status"] == "200"
    assert ("MQTT", {"state": "connected"}) in [(e, f) for e, f in lines if e == "MQTT"]
    # Every data message of the alarm went through the broker, none by HTTP.
    assert all(f.get("via") == "mqtt" for e, f in lines if e == "DATA" and f["status"] == "200")
    ups = r.rig.net.events_of("mqtt_publish", topic="tgd/NC0041/up")
    assert len(ups) >= 2, "the alarm and at least one position were published"
    assert not r.rig.net.events_of("http_request")
    # The server marked the handset online from its retained status.
    with r.rig.server.app.app_context():
        from tgd_server import db
        from tgd_server.models import Device
        with db.session_factory()() as session:
            assert session.get(Device, "NC0041").link_state == "online"


def test_broker_restart_in_the_middle_of_an_alarm(mqtt_rig):
    needs_mosquitto()
    r = mqtt_rig("NC0042")
    r.handset.log.expect("READY", timeout=30)
    r.handset.press(0.8)
    first = r.wait_data(20, type="alarm", status="200", via="mqtt")
    r.broker.stop()
    down_at = time.monotonic()
    # Positions go on by HTTP while the broker is away.
    r.wait_data(20, type="position", status="mqtt_down")
    deadline = time.monotonic() + 20
    while not [t for t, f in r.data(type="position", status="200") if t > down_at
               and "via" not in f]:
        assert time.monotonic() < deadline, f"no position by HTTP; log {r.handset.log.path}"
        time.sleep(0.05)
    r.broker.start()
    up_at = time.monotonic()
    assert r.bridge.wait_connected(15)
    deadline = time.monotonic() + 30
    while not [t for t, f in r.data(type="position", status="200", via="mqtt") if t > up_at]:
        assert time.monotonic() < deadline, f"MQTT did not take over again; log {r.handset.log.path}"
        time.sleep(0.05)
    alarms = r.rig.server_alarms("NC0042")
    assert len(alarms) == 1, alarms
    assert first < down_at < up_at


def test_unreachable_broker_during_an_alarm_falls_back_to_http(mqtt_rig):
    # No broker at all at the configured address (needs no mosquitto binary).
    r = mqtt_rig("NC0043", with_broker=False, broker_port=mqtt_broker.free_port())
    report = observe(r.rig, r.handset, scenario("NC0043"))
    assert_passed(report)
    assert report["server_alarms"] == 1
    lines = _lines(report)
    alarm_data = [f for e, f in lines if e == "DATA" and f.get("type") == "alarm"]
    assert alarm_data[0]["status"] == "mqtt_down" and alarm_data[0]["what"] == "connect:3"
    assert any(f["status"] == "200" and "via" not in f for f in alarm_data), alarm_data
    assert r.rig.net.events_of("http_request")
