"""Police call-back on the emulated rig (anchors.md #5): the real firmware at the rig's heap,
the SIM7600 emulator, the real server.

After an alarm's call to the police has ended, an "aggressor" (another subscriber on the
emulated network) calls her number: the handset hangs up at once, he hears it end and
is never connected. Then the police call back: the handset answers by itself, with the
speaker muted and at level 0 (AT+CLVL=0, AT+VMUTE=1 after ATA, in the modem's
transcript), nothing vibrates, and the answered call-back is on the alarm's channel
state (CALL state=active reason=callback).
"""

from __future__ import annotations

import time

from rig_testkit import needs_firmware, wait_until

from tgd_rig.emulated import EmulatedRig
from tgd_rig.emulator import Sim7600Emulator, Track
from tgd_rig.emulator.client import boot
from tgd_rig.emulator.transcript import RX

HOLD_MS = 600
AGGRESSOR = "+687759999"


def _rx_since(modem, t0: float) -> bytes:
    return b"".join(e.data for e in modem.transcript.entries() if e.t >= t0 and e.direction == RX)


def _reported_active(rig, device_id: str) -> int:
    """How many of the alarm's data messages said ch.call active (server timeline)."""
    [alarm] = rig.server_alarms(device_id)
    timeline = rig.server.alarm(alarm["id"])["timeline"]
    return sum(1 for e in timeline if e["kind"] == "message" and "call=active" in e["detail"])


def test_police_call_back_answered_silently_aggressor_hung_up(rig_workdir):
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        handset = rig.add_handset("CB0001", config={"trigger_hold_ms": HOLD_MS})
        msisdn = handset.identity.special_number
        handset.power_on()
        handset.expect("READY", timeout=30)
        mark = rig.events.mark()
        t_press = time.monotonic()
        handset.press(HOLD_MS / 1000 + 0.4)
        handset.expect("ALARM", timeout=10)
        rig.wait_call(30, since=mark, caller=msisdn)
        rig.wait_server_alarm(handset.device_id, timeout=30, since=mark)
        # the alarm call's discreet audio first: a hang-up a few ms after the answer made
        # its AT+VMUTE=1 fail (the modem is right: no call), about one run in three
        assert wait_until(lambda: b"AT+VMUTE=1\r" in _rx_since(handset.modem, t_press), 10)
        rig.police.hangup()   # the operator ends the alarm call; the alarm stays open
        handset.expect("CALL", timeout=10, state="ended")
        log_mark = handset.log.mark()

        # An aggressor calls her: hung up while it rings, never connected.
        other = Sim7600Emulator(rig.net, msisdn=AGGRESSOR, track=Track.fixed(-22.27, 166.45))
        at = boot(other)
        try:
            for command in ("ATE0", "AT+CLCC=1", "AT+CVHU=0"):
                at.command(command)
            ev_mark = rig.events.mark()
            assert at.command(f"ATD{msisdn};") == b"\r\nOK\r\n"
            got = at.expect(b"NO CARRIER\r\n", 15)
            assert b"VOICE CALL: BEGIN" not in got, got
            handset.log.expect("CALLBACK", timeout=10, since=log_mark, action="rejected",
                               number=AGGRESSOR)
            ended = rig.events.wait_for(lambda e: e.kind == "call_ended"
                                        and e.data.get("modem") == AGGRESSOR, 10, ev_mark,
                                        "the aggressor's call ended")
            assert ended.data.get("by") == "remote"
        finally:
            at.close()
            other.close()

        # The police call back: answered at once, silently.
        before = _reported_active(rig, handset.device_id)
        t0 = time.monotonic()
        ev_mark = rig.events.mark()
        # 3 s: the audio commands after ATA must come before the police hang up, also on a
        # loaded machine (an ERROR to AT+VMUTE after the hang-up is the modem being right)
        record = rig.police.call_back(msisdn, hangup_after_s=3.0)
        rig.events.wait_for(lambda e: e.kind == "callback_answered", 15, ev_mark,
                            "the call-back answered")
        handset.log.expect("CALLBACK", timeout=10, since=log_mark, action="answered",
                           number=rig.emergency_number)
        handset.log.expect("CALL", timeout=10, since=log_mark, state="active", reason="callback")
        done = rig.events.wait_for(lambda e: e.kind == "callback_ended", 15, ev_mark,
                                   "the call-back ended")
        assert done.data.get("reason") == "police_hangup", done.data
        assert record.answered_at is not None and record.duration_s >= 3.0
        handset.log.expect("CALLBACK", timeout=10, since=log_mark, action="ended")
        rx = _rx_since(handset.modem, t0)
        ata = rx.find(b"ATA\r")
        assert ata >= 0, rx
        assert rx.find(b"AT+CLVL=0\r", ata) > ata and rx.find(b"AT+VMUTE=1\r", ata) > ata, rx
        errors = [ln.raw for ln in handset.log.find("ERROR", since=log_mark)
                  if ln.get("where") in ("discreet_audio", "callback")]
        assert errors == []
        assert not handset.log.find("VIBRATE", since=log_mark)
        # on the alarm's timeline at the server: a message with ch.call active came after
        # the alarm's call had ended (the handset sends one as soon as it answers)
        assert wait_until(lambda: _reported_active(rig, handset.device_id) > before, 20)
        # the alarm is still open and the handset still sends its positions
        handset.expect("DATA", timeout=20, type="position", status=200)
