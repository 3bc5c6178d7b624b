# heapsize: 256k  (tests and helpers are compiled in the heap too)
# The driver's view of the modem's calls (issue 12): AT+CLCC read as a list, a call found
# there followed as if dialled (adopt), and the +CLCC ids keep calls apart: the end of a
# held or a stranger's call (its "+CLCC: <id>,...,6" then "VOICE CALL: END" or
# "NO CARRIER") never ends the call the driver follows. Bytes as in sim7600-at.md.
import asyncio

from scripted_modem import OK, answer, make_modem, ok
from scripted_stream import until


def call_log(modem):
    seen = []
    modem.on_call = lambda state, reason: seen.append((state, reason))
    return seen


def clcc(call_id, direction, stat, number="17"):
    kind = b"145" if number.startswith("+") else b"129"
    return (b"\r\n+CLCC: %d,%d,%d,0,0,\"" % (call_id, direction, stat) + number.encode()
            + b'",' + kind + b"\r\n")


async def test_call_list_reads_every_call():
    modem, stream, _, _ = make_modem([
        answer("AT+CLCC", clcc(1, 0, 0) + clcc(2, 1, 4, "+687999999") + OK),
        answer("AT+CLCC", OK),
    ])
    modem._at.start()
    assert await modem.call_list() == [(1, 0, 0, "17"), (2, 1, 4, "+687999999")]
    assert await modem.call_list() == []
    assert stream.done()
    modem.deinit()


async def test_a_held_call_ending_does_not_end_the_new_one():
    # The module put the first call on hold (second_call "hold") and dialled: call 2 is ours.
    modem, stream, _, _ = make_modem([
        answer("ATD17;", OK + clcc(1, 0, 1) + clcc(2, 0, 2), 10, clcc(2, 0, 3), 10,
               b"\r\nVOICE CALL: BEGIN\r\n" + clcc(2, 0, 0)),
        ok("AT+CLVL=0"), ok("AT+VMUTE=1"),
    ])
    seen = call_log(modem)
    await modem.dial("17")
    await until(lambda: modem.call_state == "active" and stream.done(), what="active")
    stream.push(clcc(1, 0, 6) + b"\r\nVOICE CALL: END: 000130\r\n")  # the held leg ends
    await asyncio.sleep_ms(30)
    assert modem.call_state == "active", seen
    stream.push(clcc(2, 0, 6) + b"\r\nVOICE CALL: END: 000012\r\n")  # now ours
    await until(lambda: modem.call_state == "ended", what="ended")
    assert seen == [("dialing", None), ("alerting", None), ("active", None),
                    ("ended", "normal")], seen
    modem.deinit()


async def test_a_stranger_hung_up_while_ringing_does_not_end_ours():
    modem, stream, _, _ = make_modem([
        answer("ATD17;", OK + clcc(1, 0, 2), 10, b"\r\nVOICE CALL: BEGIN\r\n" + clcc(1, 0, 0)),
        ok("AT+CLVL=0"), ok("AT+VMUTE=1"),
    ])
    seen = call_log(modem)
    await modem.dial("17")
    await until(lambda: modem.call_state == "active" and stream.done(), what="active")
    stream.push(clcc(2, 1, 5, "+687999999") + clcc(2, 1, 6, "+687999999")
                + b"\r\nNO CARRIER\r\n")
    await asyncio.sleep_ms(30)
    assert modem.call_state == "active" and seen[-1] == ("active", None), seen
    modem.deinit()


async def test_an_adopted_call_is_followed_to_its_end():
    modem, stream, _, _ = make_modem([answer("AT+CLCC", clcc(3, 0, 0) + OK)])
    modem._at.start()
    seen = call_log(modem)
    [call] = await modem.call_list()
    modem.adopt(call)
    assert modem.call_state == "active"
    stream.push(clcc(3, 0, 6) + b"\r\nVOICE CALL: END: 000200\r\n")
    await until(lambda: modem.call_state == "ended", what="ended")
    assert seen == [("ended", "normal")], seen
    modem.deinit()


async def test_end_lines_of_a_call_hung_up_before_the_dial_are_not_the_dials():
    # AT+CHUP of a stale leg before the dial: its END may come after the OK
    modem, stream, _, _ = make_modem([
        answer("AT+CHUP", OK + clcc(1, 0, 6, "+687123456")),
        answer("ATD17;", b"\r\nVOICE CALL: END: 000003\r\n" + OK + clcc(1, 0, 2)),
    ])
    modem._at.start()
    seen = call_log(modem)
    await modem.hangup()
    await asyncio.sleep_ms(10)
    await modem.dial("17")
    await asyncio.sleep_ms(30)
    assert modem.call_state == "dialing", seen
    assert seen == [("dialing", None)], seen
    modem.deinit()
