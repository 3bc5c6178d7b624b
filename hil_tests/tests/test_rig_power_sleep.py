"""Standby on the emulated rig: between heartbeats both the ESP32 (the firmware's sleep
records) and the modem (AT+CSCLK=1, DTR high: the emulator's sleep records) sleep, and
a press while both sleep still dials: DTR low wakes the modem before the ATD, and no
byte is sent to a sleeping modem."""

from __future__ import annotations

import time

from rig_testkit import needs_firmware, wait_until

from tgd_rig.emulated import EmulatedRig
from tgd_rig.emulator.transcript import LOST, SLEEP, WAKE

HOLD_MS = 600


def _entries(handset, since: float = 0.0):
    return [e for e in handset.modem.transcript.entries() if e.t >= since]


def test_idle_handset_sleeps_between_heartbeats_and_dials_at_once_from_sleep(rig_workdir):
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        handset = rig.add_handset("SL0001", config={"trigger_hold_ms": HOLD_MS,
                                                    "heartbeat_interval_s": 60})
        handset.power_on()
        handset.expect("READY", timeout=30)
        first = handset.expect("HEARTBEAT", timeout=30)
        second = handset.expect("HEARTBEAT", timeout=30)
        # the modem slept between the two beats, and the second beat woke it with DTR
        between = [e for e in _entries(handset, first.t) if e.t <= second.t]
        assert any(e.direction == SLEEP for e in between), handset.modem.transcript.format(40)
        assert any(e.direction == WAKE and e.data == b"DTR low" for e in between)
        # the ESP32 slept most of the interval (its own record, in the HEARTBEAT line)
        assert second.int("slept") > second.int("span") // 2, second.raw
        assert not [e for e in between if e.direction == LOST]

        assert wait_until(lambda: handset.modem.asleep, 10), "the modem never fell asleep again"
        mark = handset.log.mark()
        pressed = time.monotonic()
        handset.press(HOLD_MS / 1000 + 0.4)
        handset.log.expect("DIAL", timeout=10, since=mark)
        assert wait_until(lambda: any(e.direction == "rx" and b"ATD" in e.data
                                 for e in _entries(handset, pressed)), 10)
        after = _entries(handset, pressed)
        wake = next(e for e in after if e.direction == WAKE)
        atd = next(e for e in after if e.direction == "rx" and b"ATD" in e.data)
        assert wake.data == b"DTR low" and wake.t < atd.t
        assert not [e for e in after if e.direction == LOST], handset.modem.transcript.format(30)
        rig.wait_server_alarm(handset.device_id, timeout=60)
        # the alarm holds DTR low: no sleep while it is open
        time.sleep(2.0)   # twice the fast sleep delay
        assert not handset.modem.asleep
