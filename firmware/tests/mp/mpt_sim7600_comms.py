# heapsize: 256k  (tests and helpers are compiled in the heap too; mpt_at_memory.py prints the figures)
# SIM7600 driver: voice call, discreet audio, SMS with delivery report, HTTP POST.
import asyncio

from tgd.modem.errors import AtTimeout, CallFailed, CmsError
from scripted_modem import ERROR, OK, answer, make_modem, ok
from scripted_stream import until

CLCC_DIALING = b'\r\n+CLCC: 1,0,2,0,0,"17",129\r\n'
CLCC_ALERTING = b'\r\n+CLCC: 1,0,3,0,0,"17",129\r\n'
CLCC_ACTIVE = b'\r\n+CLCC: 1,0,0,0,0,"17",129\r\n'
CLCC_DISCONNECT = b'\r\n+CLCC: 1,0,6,0,0,"17",129\r\n'
CDS = b'\r\n+CDS: 6,42,"+687700100",145,"26/11/26,08:00:00+44","26/11/26,08:00:02+44",0\r\n'
URL = "http://127.0.0.1:8080/api/v1/device/messages"
SIG = "X-TGD-Signature: " + "ab" * 32
BODY = b'{"v":1,"dev":"NC0001","seq":1}'
ANSWER = b'{"ok":true,"seq":1}'


async def settle(ms=20):
    await asyncio.sleep_ms(ms)


def call_log(modem):
    seen = []
    modem.on_call = lambda state, reason: seen.append((state, reason))
    return seen


async def test_dial_tracks_the_call_and_makes_audio_discreet():
    modem, stream, _, _ = make_modem([
        answer("ATD17;", OK + CLCC_DIALING, 10, CLCC_ALERTING, 10,
               b"\r\nVOICE CALL: BEGIN\r\n" + CLCC_ACTIVE),
        ok("AT+CLVL=0"), ok("AT+VMUTE=1"),
    ])
    seen = call_log(modem)
    await modem.dial("17")
    assert modem.call_state == "dialing"
    await until(lambda: modem.call_state == "active" and stream.done(), what="active")
    assert seen == [("dialing", None), ("alerting", None), ("active", None)], seen
    assert stream.done(), (stream.script, stream.unexpected)  # CLVL=0 and VMUTE=1 went out
    assert "AT+CMUT=1" not in stream.commands()  # the microphone stays on
    stream.push(CLCC_DISCONNECT + b"\r\nVOICE CALL: END: 000042\r\n\r\nNO CARRIER\r\n")
    await until(lambda: modem.call_state == "ended", what="ended")
    await settle(20)  # later end URCs of the same call must not add events
    assert modem.call_state == "ended"
    assert seen[-1] == ("ended", "normal") and len(seen) == 4, seen
    modem.deinit()


async def test_dial_refused_at_once_raises_call_failed():
    for final, reason in ((b"BUSY", "busy"), (b"NO CARRIER", "no_carrier"),
                          (b"NO ANSWER", "no_answer"), (b"ERROR", "error"),
                          (b"+CME ERROR: no network service", "error")):
        modem, stream, _, _ = make_modem([answer("ATD17;", b"\r\n" + final + b"\r\n")])
        seen = call_log(modem)
        try:
            await modem.dial("17")
            raise AssertionError("no CallFailed")
        except CallFailed as e:
            assert e.reason == reason, (final, e.reason)
        assert modem.call_state == "ended"
        assert seen[-1] == ("ended", reason)
        modem.deinit()


async def test_busy_after_ok_ends_the_call_with_its_reason():
    modem, stream, _, _ = make_modem([answer("ATD17;", OK, 10, b"\r\nBUSY\r\n")])
    seen = call_log(modem)
    await modem.dial("17")
    await until(lambda: len(seen) == 2, what="ended")
    assert seen == [("dialing", None), ("ended", "busy")], seen
    modem.deinit()


async def test_busy_after_a_disconnect_clcc_keeps_its_reason():
    # Logged order on the emulated and real modem: "+CLCC: ...,6" first, then "BUSY".
    for final, reason in ((b"BUSY", "busy"), (b"NO ANSWER", "no_answer"), (b"", "no_carrier")):
        tail = b"\r\n" + final + b"\r\n" if final else b""
        modem, stream, _, _ = make_modem([answer("ATD17;", OK + CLCC_DIALING, 10,
                                                 CLCC_DISCONNECT + tail)])
        seen = call_log(modem)
        await modem.dial("17")
        await until(lambda: len(seen) == 2, what="ended")
        assert seen == [("dialing", None), ("ended", reason)], (final, seen)
        modem.deinit()


async def test_invalid_number_is_refused_without_a_command():
    modem, stream, _, _ = make_modem()
    for bad in ("", "17;ATH", '17"', "1" * 30, "+33+1"):
        try:
            await modem.dial(bad)
            raise AssertionError("accepted " + bad)
        except CallFailed as e:
            assert e.reason == "invalid_number"
    assert bytes(stream.written) == b""
    modem.deinit()


async def test_hangup():
    modem, stream, _, _ = make_modem([
        answer("ATD17;", OK + b"\r\nVOICE CALL: BEGIN\r\n"),
        ok("AT+CLVL=0"), ok("AT+VMUTE=1"),
        answer("AT+CHUP", b"\r\nVOICE CALL: END: 000010\r\n" + OK),
    ])
    seen = call_log(modem)
    await modem.dial("17")
    # The discreet-audio commands the driver sends by itself go first.
    await until(lambda: modem.call_state == "active" and len(stream.script) == 1, what="audio set")
    await modem.hangup()
    assert seen[-1] == ("ended", "hangup"), seen
    assert stream.done()
    modem.deinit()


async def test_reboot_during_a_call_ends_it():
    from scripted_modem import init_steps
    modem, stream, _, _ = make_modem([answer("ATD17;", OK + b"\r\nVOICE CALL: BEGIN\r\n"),
                                      ok("AT+CLVL=0"), ok("AT+VMUTE=1")] + init_steps())
    seen = call_log(modem)
    await modem.dial("17")
    await until(lambda: modem.call_state == "active", what="active")
    stream.push(b"\r\nRDY\r\n")
    await until(lambda: modem.call_state == "ended", what="ended")
    assert seen[-1] == ("ended", "reboot"), seen
    modem.deinit()


async def test_incoming_ring_does_not_touch_the_outgoing_call_state():
    modem, stream, _, lines = make_modem()
    modem.at.start()
    stream.push(b'\r\nRING\r\n\r\n+CLIP: "02152063113",128,,,"",0\r\n\r\n+CLCC: 2,1,4,0,0,"0215",129\r\n')
    await until(lambda: any(" RING" in x for x in lines), what="RING logged")
    assert modem.call_state == "idle"
    assert any(" RING" in x for x in lines)
    modem.deinit()


async def test_send_sms_with_delivery_report():
    modem, stream, _, _ = make_modem([
        answer('AT+CMGS="+687700100"', b"\r\n> "),
        (b"AML=1;lt=+22.27\x1a", [b"\r\n+CMGS: 42\r\n" + OK]),
    ])
    modem._sms_ready = True
    reports = []
    modem.on_sms_report = lambda mr, st: reports.append((mr, st))
    assert await modem.send_sms("+687700100", "AML=1;lt=+22.27") == 42
    stream.push(CDS)
    await until(lambda: reports, what="report")
    assert reports == [(42, 0)]
    assert stream.done(), stream.unexpected
    modem.deinit()


async def test_send_sms_redoes_the_sms_setup_that_failed_at_boot():
    modem, stream, _, _ = make_modem([
        ok("AT+CMGF=1"), ok('AT+CSCS="GSM"'), ok("AT+CSMP=49,167,0,0"), ok("AT+CNMI=2,1,0,1,0"),
        answer('AT+CMGS="17"', b"\r\n>\r\n"),
        (b"hi\x1a", [b"\r\n+CMGS: 7\r\n" + OK]),
    ])
    assert await modem.send_sms("17", "hi") == 7
    assert stream.done(), stream.unexpected
    modem.deinit()


async def test_send_sms_error_is_typed():
    modem, stream, _, _ = make_modem([answer('AT+CMGS="17"', b"\r\n+CMS ERROR: Unknown error\r\n")])
    modem._sms_ready = True
    try:
        await modem.send_sms("17", "hi")
        raise AssertionError("no CmsError")
    except CmsError as e:
        assert e.code == "Unknown error"
    modem.deinit()


async def test_sms_text_is_checked():
    modem, stream, _, _ = make_modem()
    for number, text in (("17", "x" * 161), ("17", "a\x1ab"), ("1;7", "x")):
        try:
            await modem.send_sms(number, text)
            raise AssertionError("accepted")
        except ValueError:
            pass
    assert bytes(stream.written) == b""
    modem.deinit()


async def test_new_sms_is_reported():
    modem, stream, _, _ = make_modem()
    modem.at.start()
    got = []
    modem.on_sms = got.append
    stream.push(b'\r\n+CMTI: "SM",3\r\n')
    await until(lambda: got, what="on_sms")
    assert got == [3]
    modem.deinit()


def http_steps(action_line, read=True):
    steps = [
        ok("AT+HTTPINIT"),
        ok('AT+HTTPPARA="URL","%s"' % URL),
        ok('AT+HTTPPARA="USERDATA","%s"' % SIG),
        ok('AT+HTTPPARA="CONTENT","application/json"'),
        answer("AT+HTTPDATA=%d,10000" % len(BODY), b"\r\nDOWNLOAD\r\n"),
        (BODY, [OK]),
        answer("AT+HTTPACTION=1", OK, 20, b"\r\n" + action_line + b"\r\n"),
    ]
    if read:
        steps.append(answer("AT+HTTPREAD=0,%d" % len(ANSWER),
                            OK + b"\r\n+HTTPREAD: DATA,%d\r\n" % len(ANSWER) + ANSWER
                            + b"\r\n+HTTPREAD: 0\r\n"))
    steps.append(ok("AT+HTTPTERM"))
    return steps


async def test_http_post_full_exchange():
    modem, stream, _, _ = make_modem(http_steps(b"+HTTPACTION: 1,200,%d" % len(ANSWER)))
    status, body = await modem.http_post(URL, BODY, SIG, 5000)
    assert (status, body) == (200, ANSWER), (status, body)
    assert stream.done(), (stream.script[:1], stream.unexpected)
    modem.deinit()


async def test_http_post_ends_a_stale_session_first():
    steps = http_steps(b"+HTTPACTION: 1,200,%d" % len(ANSWER))
    steps[0:1] = [answer("AT+HTTPINIT", ERROR), ok("AT+HTTPTERM"), ok("AT+HTTPINIT")]
    modem, stream, _, _ = make_modem(steps)
    assert (await modem.http_post(URL, BODY, SIG, 5000))[0] == 200
    assert stream.done()
    modem.deinit()


async def test_http_modem_side_error_is_a_status():
    modem, stream, _, _ = make_modem(http_steps(b"+HTTPACTION: 1,713,0", read=False))
    assert await modem.http_post(URL, BODY, SIG, 5000) == (713, b"")
    assert stream.done()
    modem.deinit()


async def test_http_without_answer_times_out_and_still_terminates():
    steps = http_steps(b"", read=False)
    steps[6] = answer("AT+HTTPACTION=1", OK)
    modem, stream, _, _ = make_modem(steps)
    try:
        await modem.http_post(URL, BODY, SIG, 50)
        raise AssertionError("no timeout")
    except AtTimeout:
        pass
    assert stream.commands()[-1] == "AT+HTTPTERM"
    modem.deinit()


async def test_http_refuses_values_that_would_break_the_command():
    modem, stream, _, _ = make_modem()
    for url, header in ((URL + '"', SIG), (URL, "X: a\r\nAT+CHUP")):
        try:
            await modem.http_post(url, BODY, header, 1000)
            raise AssertionError("accepted")
        except ValueError:
            pass
    assert bytes(stream.written) == b""
    modem.deinit()


async def test_http_answer_lost_still_gives_the_status():
    steps = http_steps(b"+HTTPACTION: 1,200,%d" % len(ANSWER))
    steps[7] = answer("AT+HTTPREAD=0,%d" % len(ANSWER), ERROR)
    modem, stream, _, lines = make_modem(steps)
    assert await modem.http_post(URL, BODY, SIG, 5000) == (200, b"")
    assert stream.done()
    assert any("httpread" in x for x in lines)
    modem.deinit()


async def test_read_and_delete_an_incoming_sms():
    modem, stream, _, _ = make_modem([
        ok("AT+CMGR=3", b'+CMGR: "REC UNREAD","+687700100",,"26/11/26,08:00:00+44"', b"LOCATE",
           b"second line"),
        ok("AT+CMGR=4"),
        ok("AT+CMGD=3"),
    ])
    assert await modem.read_sms(3) == ("+687700100", "LOCATE\nsecond line")
    assert await modem.read_sms(4) is None
    await modem.delete_sms(3)
    assert stream.done()
    modem.deinit()


async def test_call_and_sms_go_out_while_http_waits_for_the_server():
    # The alarm's channels side by side on one UART: the lock is free while the modem
    # waits for the server, so the dial and the SMS are not held up by a slow answer.
    steps = http_steps(b"+HTTPACTION: 1,200,%d" % len(ANSWER))
    http_rest = steps[7:]
    steps[6] = answer("AT+HTTPACTION=1", OK, 300, b"\r\n+HTTPACTION: 1,200,%d\r\n" % len(ANSWER))
    steps[7:] = [
        answer("ATD17;", OK + CLCC_DIALING),
        answer('AT+CMGS="+687700100"', b"\r\n> "),
        (b"AML\x1a", [b"\r\n+CMGS: 5\r\n" + OK]),
    ] + http_rest
    modem, stream, _, _ = make_modem(steps)
    modem._sms_ready = True
    post = asyncio.create_task(modem.http_post(URL, BODY, SIG, 5000))
    await until(lambda: "AT+HTTPACTION=1" in stream.commands(), what="request sent")
    await modem.dial("17")
    assert await modem.send_sms("+687700100", "AML") == 5
    assert not post.done()  # the server has not answered yet
    assert await post == (200, ANSWER)
    cmds = stream.commands()
    assert cmds.index("ATD17;") < cmds.index("AT+HTTPREAD=0,%d" % len(ANSWER)), cmds
    assert stream.done(), (stream.script[:1], stream.unexpected)
    modem.deinit()
