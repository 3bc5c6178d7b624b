# heapsize: 192k
# (192k: these tests import the sources, compiled inside the VM, as mpt_app does)
# Issue 12 through the app's button loop, scripted board and modem: two alarms in a row
# (the second calls 17 again, whatever the module does with a second call), and a hold
# while an alarm is open re-asserts it: no second alarm, the server hears of the press
# (ch.press), and a call that has dropped is dialled again at once.
import asyncio
import json

from fake_modem import answer
from mpt_app import Handset, wipe

HOLD_MS = 500  # the smallest trigger_hold_ms config allows


def bodies(h):
    """The alarms' messages (heartbeats carry no aid)."""
    out = [json.loads(b) for _, b, _ in h.modem.posts]
    return [b for b in out if "aid" in b]


def event(h, name):
    return [ln.split(" ", 2)[2] for ln in h.lines if ln.split(" ")[1] == name]


async def _hold(h):
    await h.hold(HOLD_MS + 150)


async def _alarm_answered(second_call="refuse"):
    """A booted handset (the server answers "received") whose alarm's call is answered."""
    wipe(trigger_hold_ms=HOLD_MS)
    h = Handset()
    h.modem.second_call = second_call
    h.modem.http_default = answer("received")
    await h.until(lambda: "READY" in h.names(), "READY")
    await _hold(h)
    await h.until(lambda: "state=active" in event(h, "CALL"), "the alarm's call answered")
    return h


async def _two_alarms_in_a_row(mode):
    h = await _alarm_answered(mode)
    # the police never hang up; the operator closes the alarm
    h.modem.http_default = answer("closed")
    await h.until(lambda: "ALARM_END" in h.names(), "the first alarm closed")
    await h.until(lambda: h.modem.line == [], "its call hung up")
    h.modem.http_default = answer("received")
    await _hold(h)
    await h.until(lambda: h.count("ALARM") == 2, "a second alarm")
    await h.until(lambda: event(h, "CALL").count("state=active") == 2, "the second call answered")
    assert h.count("DIAL") == 2, event(h, "DIAL")
    assert h.modem.line == [[1, 0, 0, "17"]], h.modem.line  # one call: the police
    assert not [x for x in event(h, "CALL") if "failed" in x], event(h, "CALL")
    aids = set(b["aid"] for b in bodies(h))
    assert len(aids) == 2, aids  # two alarms at the server
    h.stop()


async def test_two_alarms_in_a_row_module_refuses_a_second_call():
    await _two_alarms_in_a_row("refuse")


async def test_two_alarms_in_a_row_module_holds_the_first_call():
    await _two_alarms_in_a_row("hold")


async def test_hold_during_an_open_alarm_redials_a_dropped_call_at_once():
    h = await _alarm_answered()
    h.modem.police_hang_up()  # the call drops; the alarm stays open, its call channel done
    await h.until(lambda: any("ended" in x for x in event(h, "CALL")), "ended")
    await asyncio.sleep_ms(300)
    assert h.count("DIAL") == 1
    await _hold(h)
    await h.until(lambda: h.count("DIAL") == 2, "dialled again")
    assert h.count("ALARM") == 1  # the same alarm
    held = [x for x in event(h, "BUTTON") if "already_open" in x]
    assert len(held) == 1 and "press=2" in held[0] and "redial=1" in held[0], held
    await h.until(lambda: event(h, "CALL").count("state=active") == 2, "answered again")
    # the server heard of the press: ch.press 2, on the same aid
    await h.until(lambda: any(b["ch"].get("press") == 2 for b in bodies(h)), "ch.press 2")
    assert len(set(b["aid"] for b in bodies(h))) == 1
    h.stop()


async def test_hold_while_the_police_are_on_the_line_dials_nothing():
    h = await _alarm_answered()
    sent = len(bodies(h))
    await _hold(h)
    await h.until(lambda: any("already_open" in x for x in event(h, "BUTTON")), "held again")
    held = [x for x in event(h, "BUTTON") if "already_open" in x][0]
    assert "press=2" in held and "redial=0" in held, held
    # a message goes at once (the track interval is 600 ms here) with ch.press 2
    await h.until(lambda: any(b["ch"].get("press") == 2 for b in bodies(h)[sent:]), "ch.press",
                  limit_ms=400)
    await asyncio.sleep_ms(100)
    assert h.count("DIAL") == 1 and h.modem.line == [[1, 0, 0, "17"]], h.modem.line
    h.stop()


async def test_hold_redials_when_the_call_ended_unheard():
    # Campaign replay silent_modem_hid_the_police_hangup: the police hung up while the
    # modem was silent, its end line was lost, and the driver still said "active"; the
    # re-press trusted it and never dialled. It now looks at the line (AT+CLCC) first.
    h = await _alarm_answered()
    h.modem.police_hang_up_unheard()
    await asyncio.sleep_ms(300)
    assert h.modem.call_state == "active" and h.count("DIAL") == 1
    await _hold(h)
    await h.until(lambda: h.count("DIAL") == 2, "dialled again")
    assert any("reason=lost" in x for x in event(h, "CALL")), event(h, "CALL")
    await h.until(lambda: event(h, "CALL").count("state=active") == 2, "answered again")
    assert h.count("ALARM") == 1
    h.stop()



async def test_a_hold_the_close_overtook_opens_a_new_alarm():
    # Campaign seed 13: the police hung up; the operator closed the alarm while she held
    # the button again. The close reached the handset before the hold's redial went (here
    # its AT+CLCC is slow): the alarm ended, and nothing dialled 17 for her hold.
    h = await _alarm_answered()
    h.modem.police_hang_up()
    await h.until(lambda: any("ended" in x for x in event(h, "CALL")), "ended")
    await asyncio.sleep_ms(300)
    assert h.count("DIAL") == 1
    h.modem.slow_ms["call_list"] = 400

    def close_now(name):  # the operator closes as the hold's redial begins
        if name == "call_list":
            h.modem.http_default = answer("closed")
    h.modem.hook = close_now
    await _hold(h)
    await h.until(lambda: "ALARM_END" in h.names(), "the alarm closed")
    h.modem.hook = None
    h.modem.http_default = answer("received")
    await h.until(lambda: h.count("ALARM") == 2, "a new alarm for her hold")
    await h.until(lambda: h.count("DIAL") == 2, "17 dialled for it")
    assert [x for x in event(h, "BUTTON") if "ended_before_dial" in x]
    await h.until(lambda: len(set(b["aid"] for b in bodies(h))) == 2, "two alarms at the server")
    h.stop()
