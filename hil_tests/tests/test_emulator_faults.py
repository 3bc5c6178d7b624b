"""Every fault of the emulator, now and on a timeline, seen from the modem user's side."""

import time

import pytest

from tgd_rig.emulator import Sim7600Emulator, Track, UnknownFault
from tgd_rig.emulator.client import boot
from tgd_rig.emulator.transcript import TX

BOOT = b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"


@pytest.fixture
def net(net):
    net.add_police("17", answer_after_s=0.05)
    return net


@pytest.fixture
def at(at):
    at.command("AT+CMEE=2")
    return at


def test_registration_lost_and_regained_with_urcs(at, modem):
    at.command("AT+CREG=1")
    at.command("AT+CEREG=2")
    modem.inject("no_service", duration_s=0.2)
    assert at.expect(b"\r\n+CEREG: 2\r\n", 2) == b"\r\n+CREG: 2\r\n\r\n+CEREG: 2\r\n"
    assert at.command("AT+CPSI?") == b"\r\n+CPSI: NO SERVICE,Online\r\n\r\nOK\r\n"
    assert at.command("AT+CSQ") == b"\r\n+CSQ: 99,99\r\n\r\nOK\r\n"
    assert at.command("AT+COPS?") == b"\r\n+COPS: 0\r\n\r\nOK\r\n"
    back = at.expect(b",7\r\n", 2)
    assert back.startswith(b"\r\n+CREG: 1\r\n\r\n+CEREG: 1,\"")


def test_registration_denied(at, modem, net):
    modem.inject("registration_denied")
    assert at.command("AT+CREG?") == b"\r\n+CREG: 0,3\r\n\r\nOK\r\n"
    since = time.monotonic()
    modem.inject("service_back")
    net.wait_event("registration", 2, since=since, stat=1)
    assert at.command("AT+CREG?") == b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"
    # Registering again took timing.register_s, searching meanwhile.
    stats = [e["stat"] for e in net.events_of("registration") if e["t"] >= since]
    assert stats == [2, 1]


def test_weak_signal(at, modem):
    modem.inject("weak_signal", rsrp_dbm=-120)
    # RSSI = RSRP + 25 dB on LTE: -95 dBm -> (−95+113)//2 = 9
    assert at.command("AT+CSQ") == b"\r\n+CSQ: 9,99\r\n\r\nOK\r\n"
    assert b",-1200," in at.command("AT+CPSI?")
    modem.inject("signal_normal")
    assert at.command("AT+CSQ") != b"\r\n+CSQ: 9,99\r\n\r\nOK\r\n"


@pytest.mark.parametrize("fault, result", [
    ("call_busy", b"BUSY"), ("call_no_carrier", b"NO CARRIER"), ("call_no_answer", b"NO ANSWER"),
])
def test_call_faults_for_the_next_n_calls(at, modem, net, fault, result):
    modem.inject(fault, count=2)
    for _ in range(2):
        assert at.command("ATD17;") == b"\r\nOK\r\n"
        assert at.expect(b"\r\n" + result + b"\r\n", 3)
    at.command("ATD17;")
    assert at.expect(b"VOICE CALL: BEGIN\r\n", 3)  # the third call goes through
    assert len(net.events_of("call_failed")) == 2


def test_sms_error_for_the_next_call(at, modem):
    at.command("AT+CMGF=1")
    modem.inject("sms_error", code=331)
    for expected in (b"\r\n+CMS ERROR: no network service\r\n", b"\r\n+CMGS: 0\r\n\r\nOK\r\n"):
        at.send('AT+CMGS="+687700100"')
        at.expect(b"> ")
        at.write(b"x\x1a")
        assert at.expect(b"\r\n", 3) + at.expect(b"\r\n", 3) in expected
        at.read_for(0.05)


def test_reboot_now_loses_state(at, modem, net):
    modem.inject("reboot")
    assert at.expect(b"PB DONE\r\n", 3) == BOOT
    assert at.command("AT") == b"AT\r\r\nOK\r\n"
    assert [e["kind"] for e in net.events if e["kind"].startswith("modem_")][-2:] == [
        "modem_off", "modem_boot"]


def test_reboot_in_the_middle_of_a_call(at, modem, net):
    police = net.police["17"]
    modem.inject("reboot_during_call", after_s=0.2)
    at.command("AT+CLCC=1")
    at.command("ATD17;")
    got = at.expect(b"PB DONE\r\n", 3)
    assert b"VOICE CALL: BEGIN" in got and got.endswith(BOOT)
    assert b"VOICE CALL: END" not in got
    assert police.calls[0].end_reason == "caller_lost"


def test_silence_for_a_while(at, modem):
    modem.inject("silence", duration_s=0.6)
    at.send("AT")
    assert at.read_for(0.2) == b""
    time.sleep(0.45)
    assert at.command("AT") == b"\r\nOK\r\n"


def test_silence_until_power_cycle_via_pwrkey(at, modem, net):
    modem.inject("silence")
    at.send("AT")
    assert at.read_for(0.2) == b""
    with open(modem.pwrkey_path, "wb", buffering=0) as key:
        key.write(b"1")
        time.sleep(2.6)  # >= 2.5 s: power down
        key.write(b"0")
        assert modem.power == "off"
        assert net.events_of("modem_off", reason="pwrkey")
        key.write(b"1")
        time.sleep(0.2)  # >= 100 ms: power up
        key.write(b"0")
    assert at.expect(b"PB DONE\r\n", 3).endswith(BOOT)
    assert at.command("AT") == b"AT\r\r\nOK\r\n"


def test_garbage_on_the_line(at, modem):
    modem.inject("garbage", data=b"\xff\x00\xfe")
    assert at.read_for(0.1) == b"\xff\x00\xfe"
    modem.inject("garbage", length=8)
    assert len(at.read_for(0.1)) == 8


def test_urc_injected_between_response_lines(at, modem):
    modem.inject("urc_in_response", urc='+CMTI: "SM",3')
    assert at.command("AT+CSQ").startswith(b"\r\n+CSQ: ")  # info line first
    assert at.read_for(0.05) == b""
    modem.inject("urc_in_response", urc="RING")
    got = at.command("AT+CPIN?")
    assert got == b"\r\n+CPIN: READY\r\n\r\nRING\r\n\r\nOK\r\n"


def test_urc_now(at, modem):
    modem.inject("urc", line="RING")
    assert at.read_for(0.05) == b"\r\nRING\r\n"


def test_faults_on_a_timeline(at, modem, net):
    at.command("AT+CREG=1")
    modem.schedule(modem.uptime_s + 0.1, "no_service")
    modem.schedule(modem.uptime_s + 0.3, "service_back")
    assert at.expect(b"\r\n+CREG: 2\r\n", 2)
    assert at.expect(b"\r\n+CREG: 1\r\n", 2)
    names = [e["name"] for e in net.events_of("fault")]
    assert names == ["no_service", "service_back"]


def test_bad_faults_are_refused_before_anything_happens(modem):
    with pytest.raises(UnknownFault, match="unknown fault"):
        modem.schedule(1.0, "meteor_strike")
    with pytest.raises(UnknownFault, match="unexpected keyword"):
        modem.inject("call_busy", times=2)
    with pytest.raises(UnknownFault, match="bad parameter values"):
        modem.schedule(1.0, "http_error", status=500)
    with pytest.raises(UnknownFault, match="positive integer"):
        modem.schedule(1.0, "call_busy", count=0)
    assert modem.faults.armed("http_error") == 0


def test_no_sim_at_boot(net):
    m = Sim7600Emulator(net, msisdn="+687751009", track=Track.fixed(-22.2758, 166.458))
    m.sim_present = False
    m.open()
    from tgd_rig.emulator.client import AtClient

    client = AtClient(m.port, m.transcript)
    try:
        m.power_on()
        assert client.expect(b"RDY\r\n", 2) == b"\r\nRDY\r\n"
        assert client.read_for(0.1) == b""
        assert client.command("AT+CREG?") == b"AT+CREG?\r\r\n+CREG: 0,0\r\n\r\nOK\r\n"
    finally:
        client.close()
        m.close()


def test_split_writes_really_split(net):
    m = Sim7600Emulator(net, msisdn="+687751008", track=Track.fixed(-22.2758, 166.458))
    client = boot(m)
    try:
        client.command("ATE0")
        m.inject("split_writes", max_chunk=2, max_gap_s=0.01)
        chunks = []
        client.send("AT+CGSN")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and b"OK\r\n" not in b"".join(chunks):
            data = client.serial.read(100)
            if data:
                chunks.append(data)
        assert b"".join(chunks) == b"\r\n866123045678901\r\n\r\nOK\r\n"
        assert len(chunks) > 5  # arrived in pieces
        assert [e for e in m.transcript.entries() if e.direction == TX]
        m.inject("whole_writes")
        assert client.command("AT") == b"\r\nOK\r\n"
    finally:
        client.close()
        m.close()


def test_coverage_lost_during_a_call_ends_it(at, modem, net):
    police = net.police["17"]
    at.command("AT+CLCC=1")
    at.command("ATD17;")
    at.expect(b'+CLCC: 1,0,0,0,0,"17",129\r\n', 3)
    modem.inject("no_service")
    assert at.expect(b"VOICE CALL: END: 000000\r\n", 2) == (
        b'\r\n+CLCC: 1,0,6,0,0,"17",129\r\n\r\nVOICE CALL: END: 000000\r\n')
    assert police.calls[0].end_reason == "radio_lost"
