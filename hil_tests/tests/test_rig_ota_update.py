"""Updates over the air on the rig: an update completes, end to end.

The real firmware (VM, 48 KB) on the SIM7600 emulator takes an offer from a heartbeat
answer, downloads the bundle in chunks (AT+HTTPACTION=0 with a Range header,
AT+HTTPREAD), checks it, writes it into its inactive slot, switches, resets (the host
board's reset: the rig starts it again), passes its boot self-test and reports
`ota` {"slot":"b","res":"ok","ver":"1.1.0"} with fw 1.1.0. Its journal goes through:
sequence numbers never go back, and an alarm afterwards reaches 17.
"""

from __future__ import annotations

import pytest
from ota_testkit import (
    Keys,
    OtaServer,
    alarm_reaches_17,
    firmware_env,
    make_release,
    ota_handset,
    seqs,
)
from rig_testkit import needs_firmware

from tgd_rig.emulated import EmulatedRig


@pytest.fixture
def ota_rig(rig_workdir, monkeypatch):
    needs_firmware()
    for k, v in firmware_env().items():
        monkeypatch.setenv(k, v)
    with OtaServer() as server, EmulatedRig(rig_workdir, timing="fast",
                                             police_answer_after_s=0.3) as rig:
        yield rig, server


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
