"""Between alarms: heartbeats reach the server; a rattling button never alarms."""

from __future__ import annotations

import time

import pytest
from rig_testkit import needs_firmware

from tgd_rig.emulated import EmulatedRig
from tgd_rig.errors import ExpectTimeout


@pytest.fixture
def rig(rig_workdir):
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        yield rig


def test_heartbeat_arrives_at_the_server(rig):
    # 60 s is the shortest interval the firmware accepts; the fast timing scales it.
    handset = rig.add_handset("HB0001", battery_mv=3900, config={"heartbeat_interval_s": 60})
    handset.power_on()
    handset.expect("READY", timeout=30)
    first = handset.expect("DATA", timeout=20, type="heartbeat", status=200)
    handset.expect("DATA", timeout=20, type="heartbeat", status=200)   # and the next, on its period
    rig.events.wait_for(lambda e: e.kind == "server_message" and e.device == "HB0001"
                        and e.data.get("type") == "heartbeat", 10, what="a heartbeat at the server")
    device = rig.server.request("GET", "/api/v1/devices/HB0001", rig.server.tech_token)
    assert device["last_heartbeat_at"] is not None
    assert device["battery_mv"] == 3900
    assert first.get("seq") is not None


def test_bounces_and_brushes_never_alarm(rig):
    handset = rig.add_handset("BN0001", config={"trigger_hold_ms": 600})
    handset.power_on()
    handset.expect("READY", timeout=30)
    mark = handset.log.mark()
    # a rattle: 25 contacts of 20 ms (under the 30 ms debounce) over 2 s
    handset.bounce([0.02, 0.06] * 25)
    # brushes in a bag: presses just under the hold time, each ending with a bounce
    for _ in range(3):
        handset.press(0.45)
        handset.bounce([0.005, 0.01, 0.005])
        time.sleep(0.3)
    with pytest.raises(ExpectTimeout):
        handset.log.expect("ALARM", timeout=2.0, since=mark)
    assert not handset.log.find("DIAL", since=mark)
    assert rig.server_alarms("BN0001") == []


def test_a_bouncy_long_press_makes_exactly_one_alarm(rig):
    handset = rig.add_handset("BN0002", config={"trigger_hold_ms": 600})
    handset.power_on()
    handset.expect("READY", timeout=30)
    mark = handset.log.mark()
    handset.bounce([0.005, 0.004, 0.006, 0.003])    # bounce on the way down
    handset.press(0.9)                               # then held
    handset.bounce([0.004, 0.005, 0.003])           # and bounce on the way up
    handset.log.expect("ALARM", timeout=5, since=mark)
    rig.wait_server_alarm("BN0002", timeout=30)
    with pytest.raises(ExpectTimeout):
        handset.log.expect("ALARM", timeout=1.5)     # nothing after the first
    assert len(rig.server_alarms("BN0002")) == 1
