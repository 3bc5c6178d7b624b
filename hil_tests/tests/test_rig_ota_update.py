"""Updates over the air on the rig: an update completes, end to end.

The real firmware (VM, 48 KB) on the SIM7600 emulator takes an offer from a heartbeat
answer, downloads the bundle in chunks (AT+HTTPACTION=0 with a Range header,
AT+HTTPREAD), checks it, writes it into its inactive slot, switches, resets (the host
board's reset: the rig starts it again), passes its boot self-test and reports
`ota` {"slot":"b","res":"ok","ver":"1.1.0"} with fw 1.1.0. Its journal goes through:
sequence numbers never go back, and an alarm afterwards reaches 17.

The alarm always wins: an offer that comes while an alarm is open waits for its end
(only a heartbeat's answer is read for offers), and a hold during the download dials
17 within 1 s of the end of the hold, then the download resumes where it stopped.
"""

from __future__ import annotations

import time

from ota_testkit import (
    HOLD_MS,
    Keys,
    OtaServer,
    alarm_reaches_17,
    firmware_env,
    make_release,
    ota_handset,
    seqs,
    uart_timing,
)
from rig_testkit import needs_firmware

from tgd_rig.emulated import EmulatedRig


def test_an_update_completes_and_the_journal_goes_through(ota_rig):
    rig, server = ota_rig
    keys = Keys()
    handset = ota_handset(rig, server, keys, "OT001")
    before = alarm_reaches_17(rig, handset, server)
    server.release = make_release("1.1.0", keys)
    server.offering = True
    handset.expect("OTA", timeout=30, step="download")
    handset.expect("OTA", timeout=60, step="switch", slot="b", ver="1.1.0")
    handset.expect("BOOT", timeout=20, fw="1.1.0")
    handset.expect("OTA", timeout=30, step="selftest", res="ok", ver="1.1.0")
    server.offering = False
    handset.expect("HEARTBEAT", timeout=30, status="ok")
    beats = [m for m in server.of("OT001", "heartbeat") if m.get("fw") == "1.1.0"]
    assert beats and beats[-1]["ota"] == {"slot": "b", "res": "ok", "ver": "1.1.0"}
    # the bundle came in Range windows, each answered 206
    gets = server.bundle_gets()
    assert gets and all(status == 206 for _, _, status in gets), gets
    after = alarm_reaches_17(rig, handset, server)
    assert after["aid"] != before["aid"] and after["fw"] == "1.1.0"
    s = seqs(server, "OT001")
    assert s == sorted(s) and len(set(s)) == len(s), s   # never reused across the update


def test_an_offer_during_an_alarm_is_deferred(ota_rig):
    rig, server = ota_rig
    keys = Keys()
    handset = ota_handset(rig, server, keys, "OT002")
    server.release = make_release("1.1.0", keys)
    server.offer_in_every_answer = True   # alarm and position answers carry it too
    mark = handset.log.mark()
    alarm = alarm_reaches_17(rig, handset, server, close=False)
    server.offering = True
    n = len(server.of("OT002"))
    deadline = time.monotonic() + 20
    while len(server.of("OT002")) < n + 3:   # answers with the offer reached the handset
        assert time.monotonic() < deadline, "no message during the alarm"
        time.sleep(0.1)
    assert server.bundle_gets() == [], "downloaded during an alarm"
    assert not handset.log.find("OTA", since=mark), "took an offer during an alarm"
    server.alarm_states["OT002"] = "closed"
    handset.expect("ALARM_END", timeout=30, aid=alarm["aid"])
    handset.expect("OTA", timeout=30, step="switch", ver="1.1.0")
    handset.expect("OTA", timeout=30, step="selftest", res="ok", ver="1.1.0")


def test_a_hold_during_the_download_calls_17_within_1_s(rig_workdir, monkeypatch):
    needs_firmware()
    for k, v in firmware_env().items():
        monkeypatch.setenv(k, v)
    with OtaServer() as server, EmulatedRig(rig_workdir, timing=uart_timing(),
                                             police_answer_after_s=0.3) as rig:
        keys = Keys()
        handset = ota_handset(rig, server, keys, "OT003")
        server.release = make_release("1.1.0", keys, pad=60000)   # ~6 s at 115200 baud
        server.offering = True
        handset.expect("OTA", timeout=30, step="download", have=0)
        time.sleep(1.5)
        assert 0 < server.bytes_sent < len(server.release.bundle)
        mark = rig.events.mark()
        handset.press(HOLD_MS / 1000 + 0.1)
        released = [e for e in rig.events.snapshot(mark) if e.kind == "release"][-1]
        dial = rig.events.wait_for(lambda e: e.kind == "dial" and e.device == "OT003", 10,
                                   mark, "the dial of 17")
        assert dial.data["number"] == "17"
        print(f"hold during the download: 17 dialled {dial.t - released.t:+.3f} s from the end "
              f"of the hold")
        assert dial.t - released.t < 1.0, f"dialled {dial.t - released.t:.2f} s after the hold"
        rig.wait_call(20, since=mark, caller=handset.identity.special_number)
        gets_before = len(server.bundle_gets())
        server.alarm_state = "closed"
        handset.expect("ALARM_END", timeout=30)
        # the download resumes from what the staging file holds, not from byte 0
        handset.expect("OTA", timeout=30, step="download",
                       where=lambda ln: int(ln.get("have") or 0) > 0)
        handset.expect("OTA", timeout=60, step="switch", ver="1.1.0")
        handset.expect("OTA", timeout=30, step="selftest", res="ok", ver="1.1.0")
        after = server.bundle_gets()[gets_before:]
        assert after and not [g for g in after if g[1].startswith("bytes=0-")], after
