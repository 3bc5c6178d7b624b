# heapsize: 192k
# (the tests import the sources, compiled inside the VM)
# Issue 12 at the alarm layer, scripted modem: before it dials, the call channel reads
# the modem's calls (AT+CLCC). The police already on the line (a call to 17, a police
# call-back) are the alarm's call: followed, never hung up; a stranger's call or a stale
# leg is hung up and the dial goes ahead; a dial the modem refuses (+CME ERROR) is
# looked at again and redialled at once, within call_retries. The alarm owns its call:
# it is hung up when the alarm ends, unless a newer alarm has the line.
import asyncio

from tgd.alarm import Alarm
from fake_modem import FakeModem, answer
from mpt_alarm import Rig, bodies, wipe

POLICE = "+687271234"


def line_cmds(modem):
    """The call channel's own commands, in order (the other channels' come in between)."""
    return [n for n in modem.calls if n in ("call_list", "hangup", "dial")]


def call_lines(rig):
    return [ln.split(" ", 2)[2] for ln in rig.lines if ln.split(" ")[1] in ("CALL", "HANGUP")]


async def test_police_call_already_up_is_followed_never_redialled():
    wipe()
    modem = FakeModem()
    modem.line = [[1, 0, 0, "17"]]  # a call to 17 is up (the police are listening)
    rig = Rig(modem)
    rig.trigger()
    await rig.until(lambda: rig.alarm.call_state == "active", "the call adopted")
    assert "dial" not in modem.calls and "hangup" not in modem.calls, modem.calls
    assert "reason=adopted state=active" in call_lines(rig), call_lines(rig)
    assert rig.alarm.p.get("call") == "active"
    await rig.until(lambda: any(b["ch"]["call"] == "active" for b in bodies(modem)),
                    "ch.call active at the server")
    modem.police_hang_up()
    await rig.until(lambda: rig.alarm.p.get("call") == "done", "the call done")
    await asyncio.sleep_ms(20)
    assert "dial" not in modem.calls  # answered and ended: no redial
    rig.power_cut()


async def test_police_call_back_up_counts_as_the_alarms_call():
    wipe()
    modem = FakeModem()
    modem.line = [[1, 1, 0, POLICE]]  # a police call-back, answered
    rig = Rig(modem, police_numbers=[POLICE])
    rig.trigger()
    await rig.until(lambda: rig.alarm.p.get("call") == "done", "the call-back taken as the call")
    await asyncio.sleep_ms(20)
    assert "dial" not in modem.calls and "hangup" not in modem.calls, modem.calls
    assert modem.line == [[1, 1, 0, POLICE]]
    rig.power_cut()


async def test_strangers_call_is_hung_up_then_the_dial_goes():
    wipe()
    modem = FakeModem()
    modem.line = [[1, 1, 4, "+687999999"]]  # someone else ringing
    rig = Rig(modem, police_numbers=[POLICE])
    rig.trigger()
    await rig.until(lambda: rig.alarm.call_state == "active", "the call answered")
    assert modem.calls[:3] == ["call_list", "hangup", "dial"], modem.calls[:6]
    assert "n=1 why=line_busy" in call_lines(rig), call_lines(rig)
    rig.power_cut()


async def test_stale_legs_are_hung_up_then_the_dial_goes():
    # a held call to 17 nobody hears, an unknown outgoing leg, a non-police caller on line
    for stale in ([1, 0, 1, "17"], [1, 0, 0, "+687123456"], [1, 1, 0, "+687999999"]):
        wipe()
        modem = FakeModem()
        modem.line = [list(stale)]
        rig = Rig(modem, police_numbers=[POLICE])
        rig.trigger()
        await rig.until(lambda: rig.alarm.call_state == "active", "the call answered")
        assert modem.calls[:3] == ["call_list", "hangup", "dial"], (stale, modem.calls[:6])
        assert modem.line == [[1, 0, 0, "17"]], modem.line
        rig.power_cut()


async def test_refused_dial_is_looked_at_and_redialled_at_once():
    # a call appears between AT+CLCC and ATD (a race): the modem refuses the dial
    wipe()
    modem = FakeModem()
    first = []

    def hook(name):
        if name == "dial" and not first:
            first.append(1)
            modem.line = [[1, 1, 0, "+687999999"]]
    modem.hook = hook
    rig = Rig(modem, police_numbers=[POLICE])
    rig.dev.timing.call_backoff_ms = (60000, 60000)  # a backoff would time the test out
    rig.trigger()
    await rig.until(lambda: rig.alarm.call_state == "active", "the second dial answered")
    assert line_cmds(modem)[:5] == ["call_list", "dial", "call_list", "hangup", "dial"], modem.calls
    steps = call_lines(rig)
    assert steps[:3] == ["reason=refused state=failed", "n=1 why=line_busy", "state=alerting"], steps
    # the answered call reaches the server at once (a message of its own)
    await rig.until(lambda: "active" in [b["ch"]["call"] for b in bodies(modem)], "active sent")
    rig.power_cut()


async def test_refusals_with_nothing_up_back_off_within_call_retries():
    wipe()
    modem = FakeModem()
    modem.dial_outcomes = ["refused"] * 10
    rig = Rig(modem, call_retries=2)
    rig.trigger()
    await rig.until(lambda: any("retries_exhausted" in x for x in call_lines(rig)), "given up")
    assert modem.calls.count("dial") == 3
    # every refusal was looked at (AT+CLCC) before the next dial
    cmds = line_cmds(modem)
    dials = [i for i, n in enumerate(cmds) if n == "dial"]
    assert all(cmds[i - 1] == "call_list" for i in dials), cmds
    rig.power_cut()


async def test_the_alarms_end_hangs_up_its_call():
    for mode in ("refuse", "hold"):
        wipe()
        modem = FakeModem()
        modem.second_call = mode
        modem.http_default = answer("received")
        rig = Rig(modem)
        rig.trigger()
        await rig.until(lambda: rig.alarm.call_state == "active", "answered")
        # the police never hang up; the operator closes the alarm
        modem.http_default = answer("closed")
        await rig.until(lambda: rig.task.done(), "the alarm ended and cleaned up")
        assert modem.line == [], (mode, modem.line)
        assert "why=alarm_end" in call_lines(rig), call_lines(rig)
        # the next alarm calls 17 at once
        modem.http_default = answer("received")
        rig.trigger()
        await rig.until(lambda: rig.alarm.call_state == "active", "the second alarm answered")
        assert modem.line == [[1, 0, 0, "17"]], (mode, modem.line)
        assert modem.calls.count("dial") == 2, modem.calls
        rig.power_cut()


async def test_an_alarm_without_a_call_up_sends_no_hangup():
    wipe()
    modem = FakeModem()
    rig = Rig(modem)
    rig.trigger()
    await rig.until(lambda: rig.alarm.call_state == "active", "answered")
    modem.police_hang_up()
    await rig.until(lambda: rig.alarm.p.get("call") == "done", "done")
    modem.http_default = answer("closed")
    await rig.until(lambda: rig.task.done(), "ended")
    assert "hangup" not in modem.calls, modem.calls


async def test_a_newer_alarm_keeps_the_line():
    wipe()
    modem = FakeModem()
    rig = Rig(modem)
    old = rig.trigger()
    await rig.until(lambda: old.call_state == "active", "answered")
    old_task = rig.task
    newer = Alarm.trigger(rig.dev)  # e.g. a reboot of the app: a newer alarm owns the line
    old.end("closed")
    await rig.until(lambda: old_task.done(), "the old alarm cleaned up")
    assert "hangup" not in modem.calls and modem.line == [[1, 0, 0, "17"]], modem.calls
    rig.start(newer)
    await rig.until(lambda: newer.call_state == "active", "the newer alarm follows the call")
    assert modem.calls.count("dial") == 1, modem.calls
    rig.power_cut()


async def test_safe_mode_without_a_config_knows_the_emergency_number_as_police():
    # no config.json: police_numbers is its default [emergency_number]; the emergency number calling back
    # is still the police, a stranger is still hung up
    for caller, dials in (("17", 0), ("+687999999", 1)):
        wipe()
        modem = FakeModem()
        modem.line = [[1, 1, 0, caller]]
        rig = Rig(modem, safe="no_config_file", device_id=None, key=None, server_url=None)
        assert rig.dev.cfg["police_numbers"] == ["17"]
        rig.trigger()
        if dials:
            await rig.until(lambda: rig.alarm.call_state == "active", "dialled and answered")
        else:
            await rig.until(lambda: rig.alarm.p.get("call") == "done", "the call-back taken")
        await asyncio.sleep_ms(20)
        assert modem.calls.count("dial") == dials, (caller, modem.calls)
        assert not [x for x in rig.lines if "ERROR" in x], rig.lines
        rig.power_cut()


async def test_a_slow_call_list_still_lets_the_dial_go_before_anything_else():
    # A silent modem: AT+CLCC takes its whole time-out. Found on the rig (modem_silent):
    # the SMS channel's AT+CMGS (60 s time-out) went in ahead of the ATD.
    wipe()
    modem = FakeModem()
    modem.slow_ms = {"call_list": 100}  # longer than the AML deadline at this time scale
    rig = Rig(modem)
    rig.trigger()
    await rig.until(lambda: "dial" in modem.calls, "the dial")
    assert modem.calls[:2] == ["call_list", "dial"], modem.calls[:6]
    rig.power_cut()


async def test_resumed_alarm_whose_call_was_done_reports_ended_and_waits_for_a_hold():
    wipe()
    modem = FakeModem()
    rig = Rig(modem)
    rig.trigger()
    await rig.until(lambda: rig.alarm.call_state == "active", "answered")
    modem.police_hang_up()
    await rig.until(lambda: rig.alarm.p.get("call") == "done", "done")
    rig.power_cut()
    modem2 = FakeModem()
    rig2 = Rig(modem2)
    alarm = rig2.resume()
    await rig2.until(lambda: len(bodies(modem2)) > 0, "a message from the resumed alarm")
    assert bodies(modem2)[0]["ch"]["call"] == "ended", bodies(modem2)[0]
    assert "dial" not in modem2.calls
    alarm.repress()  # a hold after the reboot: dialled again at once
    await rig2.until(lambda: alarm.call_state == "active", "dialled and answered")
    assert alarm.p.get("press") == 2
    rig2.power_cut()
