"""The simulated network: police endpoint calls, SMS between emulated modems with
delivery reports, SMS sinks, events."""

import time

import pytest

from tgd_rig.emulator import Sim7600Emulator, Track
from tgd_rig.emulator.client import boot

HANDSET = "+687751001"
GATEWAY = "+687700100"


def _modem(net, msisdn, **kw):
    m = Sim7600Emulator(net, msisdn=msisdn, track=Track.fixed(-22.2758, 166.4580), **kw)
    client = boot(m)
    client.command("ATE0")
    for command in ("AT+CMEE=2", "AT+CLCC=1", "AT+CVHU=0", "AT+CMGF=1",
                    'AT+CSCS="GSM"', "AT+CSMP=49,167,0,0", "AT+CNMI=2,1,0,1,0", "AT+CLIP=1"):
        assert client.command(command) == b"\r\nOK\r\n"
    return m, client


@pytest.fixture
def handset(net):
    m, client = _modem(net, HANDSET)
    yield m, client
    client.close()
    m.close()


@pytest.fixture
def gateway(net):
    m, client = _modem(net, GATEWAY)
    yield m, client
    client.close()
    m.close()


def test_call_to_police_rings_answers_and_records_caller_id(net, handset):
    police = net.add_police("17", answer_after_s=0.3)
    m, at = handset
    t0 = time.monotonic()
    assert at.command("ATD17;") == b"\r\nOK\r\n"
    got = at.expect(b"+CLCC: 1,0,0,0,0,\"17\",129\r\n", 3)
    assert got == (b'\r\n+CLCC: 1,0,2,0,0,"17",129\r\n'
                   b'\r\n+CLCC: 1,0,3,0,0,"17",129\r\n'
                   b"\r\nVOICE CALL: BEGIN\r\n"
                   b'\r\n+CLCC: 1,0,0,0,0,"17",129\r\n')
    [call] = police.calls
    assert call.caller == HANDSET and call.number == "17"
    assert call.answered_at - call.dialled_at >= 0.3  # the configured answer delay
    assert at.command("AT+CLCC") == b'\r\n+CLCC: 1,0,0,0,0,"17",129\r\n\r\nOK\r\n'
    assert at.command("AT+CLVL=0") == b"\r\nOK\r\n"
    assert at.command("AT+VMUTE=1") == b"\r\nOK\r\n"
    time.sleep(1.05)
    assert at.command("ATH") == (b'\r\n+CLCC: 1,0,6,0,0,"17",129\r\n'
                                 b"\r\nVOICE CALL: END: 000001\r\n\r\nOK\r\n")
    assert call.end_reason == "caller_hangup" and 1.0 <= call.duration_s < 2
    kinds = [e["kind"] for e in net.events if e["t"] >= t0 and e.get("modem") == HANDSET]
    assert kinds == ["dial", "call_alerting", "call_answered", "call_ended"]
    assert at.command("AT+VMUTE?") == b"\r\n+VMUTE: 0\r\n\r\nOK\r\n"  # reset when the call ended


def test_ath_is_a_no_op_unless_cvhu_0(net, handset):
    net.add_police("17", answer_after_s=0.05)
    m, at = handset
    at.command("AT+CVHU=1")
    at.command("ATD17;")
    at.expect(b"VOICE CALL: BEGIN\r\n", 3)
    at.read_for(0.05)
    assert at.command("ATH") == b"\r\nOK\r\n"
    assert at.command("AT+CLCC").startswith(b'\r\n+CLCC: 1,0,0,')
    assert at.command("AT+CHUP").endswith(b"\r\nVOICE CALL: END: 000000\r\n\r\nOK\r\n")


def test_police_hangs_up(net, handset):
    police = net.add_police("17", answer_after_s=0.05, hangup_after_s=0.1)
    m, at = handset
    at.command("ATD17;")
    got = at.expect(b"VOICE CALL: END: 000000\r\n", 3)
    assert b'+CLCC: 1,0,6,0,0,"17",129\r\n\r\nVOICE CALL: END' in got
    assert police.calls[0].end_reason == "police_hangup"


def test_police_never_answers(net, handset):
    police = net.add_police("17", answer_after_s=None)
    m, at = handset
    at.command("ATD17;")
    assert at.expect(b"\r\nNO ANSWER\r\n", 3)
    assert police.calls[0].end_reason == "no_answer"
    assert net.events_of("call_failed", reason="no_answer")


def test_unknown_number_no_carrier_and_no_service_refused(net, handset):
    m, at = handset
    at.command("ATD0999;")
    assert at.expect(b"\r\nNO CARRIER\r\n", 3)
    m.inject("no_service")
    assert at.command("ATD17;") == b"\r\n+CME ERROR: no network service\r\n"


def test_sms_between_modems_with_delivery_report(net, handset, gateway):
    m, at = handset
    g, gat = gateway
    at.send(f'AT+CMGS="{GATEWAY}"')
    assert at.expect(b"\r\n> ", 2) == b"\r\n> "
    at.write(b"TGD ALARM test\x1a")
    assert at.expect(b"OK\r\n", 3) == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    assert gat.expect(b'\r\n+CMTI: "SM",0\r\n', 3)
    cds = at.expect(b",0\r\n", 3).decode()
    assert cds.startswith(f'\r\n+CDS: 6,0,"{GATEWAY}",145,"')
    read = gat.command("AT+CMGR=0").decode()
    assert read.startswith(f'\r\n+CMGR: "REC UNREAD","{HANDSET}",,"')
    assert read.endswith('+44"\r\nTGD ALARM test\r\n\r\nOK\r\n')
    assert gat.command("AT+CMGR=0").startswith(b'\r\n+CMGR: "REC READ"')
    assert gat.command("AT+CPMS?") == b'\r\n+CPMS: "SM",1,30,"SM",1,30,"SM",1,30\r\n\r\nOK\r\n'
    listing = gat.command('AT+CMGL="ALL"')
    assert listing.startswith(f'\r\n+CMGL: 0,"REC READ","{HANDSET}",,"'.encode())
    assert gat.command("AT+CMGD=0") == b"\r\nOK\r\n"
    assert gat.command("AT+CMGR=0") == b"\r\nOK\r\n"  # empty slot
    assert gat.command("AT+CMGR=30") == b"\r\n+CMS ERROR: invalid memory index\r\n"
    kinds = [e["kind"] for e in net.events if e["kind"].startswith("sms_")]
    assert kinds == ["sms_submitted", "sms_received", "sms_delivered"]


def test_sms_without_report_request_gets_no_cds(net, handset, gateway):
    m, at = handset
    g, gat = gateway
    at.command("AT+CSMP=17,167,0,0")
    at.send(f'AT+CMGS="{GATEWAY}"')
    at.expect(b"> ")
    at.write(b"hello\x1a")
    at.expect(b"OK\r\n", 3)
    gat.expect(b"+CMTI", 3)
    assert b"+CDS" not in at.read_for(0.2)


def test_sms_escape_cancels_and_text_before_prompt_is_refused(net, handset):
    m, at = handset
    sink = net.add_sms_sink("+687700999")
    at.send('AT+CMGS="+687700999"')
    at.expect(b"> ")
    at.write(b"never mind\x1b")
    assert at.expect(b"OK\r\n", 2) == b"\r\nOK\r\n"
    at.write(b'AT+CMGS="+687700999"\rtoo early\x1a')  # text without waiting for "> "
    assert at.expect(b"ERROR\r\n", 2).endswith(b"\r\n> \r\nERROR\r\n")
    time.sleep(0.2)
    assert sink.received == [] and not net.events_of("sms_submitted")


def test_sms_to_a_full_storage_waits_until_space(net, handset):
    g = Sim7600Emulator(net, msisdn=GATEWAY, track=Track.fixed(-22.2758, 166.458), sms_capacity=1)
    gat = boot(g)
    try:
        gat.command("ATE0")
        gat.command("AT+CNMI=2,1,0,1,0")
        m, at = handset
        for text in (b"one", b"two"):
            at.send(f'AT+CMGS="{GATEWAY}"')
            at.expect(b"> ")
            at.write(text + b"\x1a")
            at.expect(b"OK\r\n", 3)
        gat.expect(b'+CMTI: "SM",0\r\n', 3)
        assert b"+CMTI" not in gat.read_for(0.2)  # full: the second waits in the network
        assert len(net.events_of("sms_delivered")) == 1
        gat.command("AT+CMGD=0")
        gat.expect(b'+CMTI: "SM",0\r\n', 3)
        assert gat.command("AT+CMGR=0").endswith(b"\r\ntwo\r\n\r\nOK\r\n")
    finally:
        gat.close()
        g.close()


def test_sms_sink_gets_messages_for_numbers_without_modem(net, handset):
    got = []
    net.add_sms_sink("+687700100", lambda sender, text, t: got.append((sender, text)))
    m, at = handset
    at.send('AT+CMGS="+687700100"')
    at.expect(b"> ")
    at.write(b"A\"ML=1;lt=-22.27\x1a")
    at.expect(b"OK\r\n", 3)
    net.wait_event("sms_delivered", 3, to="+687700100")
    assert got == [(HANDSET, 'A"ML=1;lt=-22.27')]


def test_modem_to_modem_call(net, handset, gateway):
    m, at = handset
    g, gat = gateway
    at.command(f"ATD{GATEWAY};")
    assert gat.expect(f'\r\nRING\r\n\r\n+CLIP: "{HANDSET}",145,,,"",0\r\n'.encode(), 3)
    gat.read_for(0.02)
    assert gat.command("ATA").startswith(b"\r\nOK\r\n")
    at.expect(b"VOICE CALL: BEGIN\r\n", 2)
    at.read_for(0.05)
    assert at.command("AT+CHUP").endswith(b"VOICE CALL: END: 000000\r\n\r\nOK\r\n")
    assert gat.expect(b"VOICE CALL: END: 000000\r\n", 2)


def test_wait_event_timeout_lists_events(net):
    with pytest.raises(TimeoutError, match="no dial event"):
        net.wait_event("dial", timeout=0.05)


def test_numbers_are_unique(net):
    net.add_police("17")
    with pytest.raises(ValueError):
        net.add_police("17")


def test_police_call_back_rings_and_is_answered_silently(net, handset):
    police = net.add_police("17", answer_after_s=0.05)
    m, at = handset
    record = police.call_back(HANDSET, hangup_after_s=0.2)
    assert at.expect(b'\r\nRING\r\n\r\n+CLIP: "17",129,,,"",0\r\n', 2)
    at.read_for(0.02)
    assert at.command("ATA") == b"\r\nOK\r\n"
    got = at.expect(b"VOICE CALL: END: 000000\r\n", 2)
    assert b"VOICE CALL: BEGIN\r\n" in got and b'+CLCC: 1,1,0,0,0,"17",129' in got
    assert record.direction == "out" and record.callee == HANDSET
    assert record.end_reason == "police_hangup" and record.duration_s >= 0.2


def test_police_call_back_unanswered(net, handset):
    police = net.add_police("17")
    m, at = handset
    record = police.call_back(HANDSET)
    assert at.expect(b"\r\nNO CARRIER\r\n", 3)  # the network's no-answer timer
    assert record.end_reason == "no_answer" and record.answered_at is None


def test_delivery_report_waits_for_a_sender_that_lost_service(net, handset, gateway):
    from dataclasses import replace

    net.timing = replace(net.timing, sms_delivery_s=(0.5, 0.5))  # room to lose service first
    m, at = handset
    g, gat = gateway
    at.send(f'AT+CMGS="{GATEWAY}"')
    at.expect(b"> ")
    at.write(b"report later\x1a")
    at.expect(b"OK\r\n", 3)
    m.inject("no_service")
    gat.expect(b"+CMTI", 3)
    assert b"+CDS" not in at.read_for(0.2)
    m.inject("service_back")
    assert at.expect(f'+CDS: 6,0,"{GATEWAY}",145,'.encode(), 3)


def test_storage_full_gives_cms_322(net):
    g = Sim7600Emulator(net, msisdn=GATEWAY, track=Track.fixed(-22.2758, 166.458), sms_capacity=1)
    gat = boot(g)
    try:
        gat.command("ATE0")
        gat.command("AT+CMGF=1")
        gat.send('AT+CMGW="+687751001"')
        gat.expect(b"> ")
        gat.write(b"draft\x1a")
        assert gat.expect(b"OK\r\n", 2) == b"\r\n+CMGW: 0\r\n\r\nOK\r\n"
        gat.send("AT+CMGW")
        gat.expect(b"> ")
        gat.write(b"no room\x1a")
        assert gat.expect(b"\r\n+CMS ERROR: 322\r\n", 2)
        assert gat.command("AT+CPMS?") == b'\r\n+CPMS: "SM",1,1,"SM",1,1,"SM",1,1\r\n\r\nOK\r\n'
    finally:
        gat.close()
        g.close()


@pytest.mark.parametrize("kwargs", [{"answer_after_s": -1}, {"hangup_after_s": "soon"},
                                    {"number": "17;"}, {"number": ""}])
def test_bad_police_settings_are_refused(net, kwargs):
    with pytest.raises(ValueError):
        net.add_police(**kwargs)
    assert net.police == {}


def test_police_default_answer_delay_comes_from_timing(net):
    assert net.add_police("17").answer_after_s == net.timing.police_answer_s
    assert net.add_police("18", answer_after_s=None).answer_after_s is None
