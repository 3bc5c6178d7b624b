"""Every hold reaches the police (issue 12), on the emulated rig: the real firmware at the
rig's heap, the SIM7600 emulator, the real server.

- Two alarms in a row: the police never hang up the first call; the operator closes the
  alarm; the handset hangs the call up (idle again within track_interval_s plus a
  margin); the second hold calls 17 again and reaches the server. With both behaviours
  of the module for a second call (refused with +CME ERROR, or the first put on hold).
- A hold while the alarm is open re-asserts it: the police hung up, the hold dials 17
  again at once, the same alarm, and the server's timeline shows the press.
- The police endpoint's behaviours: busy, reject, never answer, then answer: the
  handset redials after each failure and gets through within call_retries.
"""

from __future__ import annotations

import time

import pytest
from rig_testkit import needs_firmware, wait_until

from tgd_rig.emulated import EmulatedRig

HOLD_MS = 600
HOLD_S = HOLD_MS / 1000 + 0.4
IDLE_MARGIN_S = 5.0  # on top of track_interval_s (scaled): a loaded 2-core machine


def _boot(rig, device_id, **config):
    handset = rig.add_handset(device_id, config={"trigger_hold_ms": HOLD_MS, **config})
    handset.power_on()
    handset.expect("READY", timeout=30)
    return handset


def _hold(handset) -> float:
    """Hold the button; the host time the hold ended."""
    handset.press(HOLD_S)
    return time.monotonic()


@pytest.mark.parametrize("mode", ["refuse", "hold"])
def test_second_alarm_after_a_close_calls_17_and_reaches_the_server(rig_workdir, mode):
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        handset = _boot(rig, f"SA{mode[:4].upper()}")
        rig.inject(handset.device_id, "second_call", mode=mode)
        msisdn = handset.identity.special_number
        # the police answer and never hang up (EmulatedRig's endpoint: hangup_after_s None)
        mark = rig.events.mark()
        _hold(handset)
        rig.wait_call(30, since=mark, caller=msisdn)
        first = rig.wait_server_alarm(handset.device_id, timeout=30, since=mark)
        log_mark = handset.log.mark()
        closed_at = time.monotonic()
        rig.close_alarm(first.data["alarm_id"])
        handset.expect("ALARM_END", timeout=20, since=log_mark)
        idle_s = rig.firmware_time_scale * handset.config["track_interval_s"] + IDLE_MARGIN_S
        assert wait_until(lambda: not handset.modem.calls, idle_s), handset.modem.calls
        assert time.monotonic() - closed_at < idle_s
        handset.expect("HANGUP", timeout=1, since=log_mark, why="alarm_end")
        [record] = rig.police.calls
        assert record.end_reason == "caller_hangup"

        mark = rig.events.mark()
        log_mark = handset.log.mark()
        held = _hold(handset)
        dial = rig.events.wait_for(lambda e: e.kind == "dial" and e.data.get("modem") == msisdn,
                                   15, mark, "the second alarm's dial")
        assert dial.t - held < 1.0 + 0.5, dial.t - held  # within 1 s of the hold (+ polling)
        rig.wait_call(30, since=mark, caller=msisdn)
        second = rig.wait_server_alarm(handset.device_id, timeout=30, since=mark)
        assert second.data["alarm_id"] != first.data["alarm_id"]
        assert not rig.net.events_of("dial_refused", modem=msisdn)
        assert not rig.net.events_of("call_held", modem=msisdn)
        assert not [ln for ln in handset.log.find("CALL", since=log_mark)
                    if ln.get("state") == "failed"]
        assert len(rig.server_alarms(handset.device_id)) == 2


def test_hold_during_an_open_alarm_redials_and_shows_on_the_timeline(rig_workdir):
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        handset = _boot(rig, "SARP01")
        msisdn = handset.identity.special_number
        rig.police.behave("answer", answer_after_s=0.3, hangup_after_s=1.0)
        mark = rig.events.mark()
        _hold(handset)
        rig.wait_call(30, since=mark, caller=msisdn)
        alarm = rig.wait_server_alarm(handset.device_id, timeout=30, since=mark)
        handset.expect("CALL", timeout=15, state="ended")  # the police hung up
        time.sleep(0.5)
        dials = len(rig.net.events_of("dial", modem=msisdn))
        assert dials == 1  # answered then ended: no redial by itself
        rig.police.behave("answer", answer_after_s=0.3)  # and stay on the line

        mark = rig.events.mark()
        held = _hold(handset)
        dial = rig.events.wait_for(lambda e: e.kind == "dial" and e.data.get("modem") == msisdn,
                                   15, mark, "the redial")
        assert dial.t - held < 1.5, dial.t - held
        handset.expect("BUTTON", timeout=5, alarm="already_open", press="2", redial="1")
        rig.wait_call(30, since=mark, caller=msisdn)
        # the same alarm, and its timeline shows the press
        assert len(rig.server_alarms(handset.device_id)) == 1

        def represses():
            timeline = rig.server.alarm(alarm.data["alarm_id"])["timeline"]
            return [e for e in timeline if e["kind"] == "repress"]
        assert wait_until(lambda: len(represses()) == 1, 20), represses()
        assert represses()[0]["channel"] == "button"


def test_police_busy_reject_and_never_answer_are_redialled(rig_workdir):
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        handset = _boot(rig, "SAPB01", call_retries=10)
        msisdn = handset.identity.special_number
        police = rig.police

        def ended(reason):
            return lambda: any(c.end_reason == reason for c in police.calls)

        police.behave("busy")
        mark = rig.events.mark()
        _hold(handset)
        assert wait_until(ended("busy"), 20)
        police.behave("reject", reject_after_s=0.3)
        assert wait_until(ended("rejected"), 20)
        police.behave("never_answer")
        assert wait_until(ended("no_answer"), 30)
        police.behave("answer", answer_after_s=0.3)
        rig.wait_call(30, since=mark, caller=msisdn)
        handset.expect("CALL", timeout=10, state="active")
        # every failure was redialled; none was refused by the module
        assert len(rig.net.events_of("dial", modem=msisdn)) == len(police.calls) >= 4
        assert not rig.net.events_of("dial_refused", modem=msisdn)
        assert all(c.caller == msisdn for c in police.calls)


def test_the_server_shows_the_police_phone_ringing_before_anyone_answers(rig_workdir):
    """Issue 15, freshness: while the police phone rings, the console reads "sonnerie", not
    a stale "numérotation". The handset sends the call's alerting step at once."""
    needs_firmware()
    ring_s = 3.0  # under the fast timing's no-outcome limit (6 s)
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=ring_s) as rig:
        # indoors (no GNSS fix to send) and positions far apart: only the call's own step
        # can bring "alerting" to the server in time
        handset = rig.add_handset("SARING", indoor=True,
                                  config={"trigger_hold_ms": HOLD_MS, "track_interval_s": 3600})
        handset.power_on()
        handset.expect("READY", timeout=30)
        mark = rig.events.mark()
        _hold(handset)
        rig.events.wait_for(lambda e: e.kind == "call_alerting", 15, mark, "the police ringing")
        ringing_since = time.monotonic()
        alarm = rig.wait_server_alarm(handset.device_id, timeout=15, since=mark)

        def call_state():
            return rig.server.alarm(alarm.data["alarm_id"])["call_state"]
        assert wait_until(lambda: call_state() == "alerting", ring_s - 1.0), call_state()
        assert time.monotonic() - ringing_since < 2.0
        assert time.monotonic() - ringing_since < ring_s  # still ringing: nobody answered yet
        assert not [c for c in rig.police.calls if c.answered_at is not None]
        assert wait_until(lambda: call_state() == "active", 30), call_state()
        timeline = rig.server.alarm(alarm.data["alarm_id"])["timeline"]
        steps = [e["kind"] for e in timeline if e["channel"] == "call"]
        assert steps.index("alerting") < steps.index("active"), steps
