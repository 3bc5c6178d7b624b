"""A caller who withholds the number (the campaign's unknown callers): +CLIP shows none;
the data-only and voice-only network losses (faults data_down, voice_down)."""

import time

from tgd_rig.emulator import Sim7600Emulator, Track
from tgd_rig.emulator.client import boot


def _modem(net, msisdn):
    m = Sim7600Emulator(net, msisdn=msisdn, track=Track.fixed(-22.2758, 166.4580))
    at = boot(m)
    at.command("ATE0")
    for command in ("AT+CMEE=2", "AT+CLIP=1", "AT+CVHU=0"):
        assert at.command(command) == b"\r\nOK\r\n"
    return m, at


def test_a_withheld_number_rings_with_an_empty_clip(net):
    callee, cat = _modem(net, "+687751001")
    caller, at = _modem(net, "+687759999")
    try:
        caller.clir = True
        assert at.command("ATD+687751001;") == b"\r\nOK\r\n"
        cat.expect(b'RING\r\n\r\n+CLIP: "",128,,,"",1\r\n', 5)
        at.command("AT+CHUP")
        caller.clir = False
        cat.command("AT+CHUP")
        assert at.command("ATD+687751001;") == b"\r\nOK\r\n"
        cat.expect(b'+CLIP: "+687759999",145,,,"",0\r\n', 5)
    finally:
        for c in (at, cat):
            c.close()
        caller.close()
        callee.close()


def test_voice_down_fails_calls_and_sms_but_not_data_and_data_down_the_reverse(net):
    m, at = _modem(net, "+687751001")
    try:
        m.inject("voice_down")
        assert at.command("ATD17;") == b"\r\nOK\r\n"
        at.expect(b"NO CARRIER\r\n", 5)
        assert at.command('AT+CMGF=1') == b"\r\nOK\r\n"
        at.send('AT+CMGS="+687700100"')
        at.expect(b"> ", 2)
        at.write(b"hi\x1a")
        at.expect(b"+CMS ERROR: no network service\r\n", 5)
        m.inject("voice_up")
        assert m.faults.voice_down is False
        m.inject("data_down", duration_s=0.2)
        assert m.faults.data_down is True
        deadline = time.monotonic() + 3
        while m.faults.data_down and time.monotonic() < deadline:
            time.sleep(0.02)
        assert m.faults.data_down is False      # back by itself after duration_s
    finally:
        at.close()
        m.close()
