# heapsize: 256k
# (the tests import the sources, compiled inside the VM; the firmware runs .mpy)
# Police call-back (callback.py) through the app's +CLIP hook, the real AT engine and
# driver on a scripted modem: a police number is answered at once during an alarm and
# in the window after it, with the discreet audio; any other caller, a withheld number,
# and any call outside the window are hung up; a RING without caller id is left alone;
# the alarm's own call is never hung up. The window survives a reboot: a new App booted
# by App._setup on the same flash reads the end back from the journal (by the clock, or
# counted from the boot while a time is unknown), compaction included. Also the config
# keys it reads.
import asyncio
import json
import time

from tgd import config
from tgd.alarm import Alarm
from tgd.app import App
from tgd.clock import Clock
from tgd.device import Device
from tgd.journal import FILE, Journal
from scripted_modem import RecordingBoard, answer, events, make_modem, ok
from scripted_stream import line_log, until
from tgd.timing import Timing
from tgd.vibrate import Vibrator
from scratch import empty_dir, unique_dir

DIR = unique_dir("callback")
POLICE = "+687271234"
RING = b"\r\nRING\r\n"


def clip(number):
    return RING + b'\r\n+CLIP: "' + number.encode() + b'",145,,,"",0\r\n'


def wipe():
    empty_dir(DIR)


class Handset:
    """The app's call-back path: App (its +CLIP hook as App.run registers it), Device,
    the real Sim7600 driver and AT engine on a scripted stream, a real Alarm."""

    def __init__(self, script, alarm_open=False, ended_ago_ms=None, **over):
        wipe()
        self.modem, self.stream, self.board, self.lines = make_modem(script)
        self.modem.dtr_idle_ms = 100000  # no AT+CSCLK=1 in the middle of the script
        self.motor = []
        raw = {"device_id": "NC0001", "key": "ab" * 32, "server_url": "http://127.0.0.1:9/m",
               "police_numbers": ["+687 27 12 34", "0800"]}
        raw.update(over)
        cfg, problems, safe = config.validate(raw)
        assert problems == [], problems
        log = self.modem._log
        journal = Journal(DIR, log)
        journal.open()
        clock = Clock()
        clock.set(1795678200)
        timing = Timing(0.01)
        self.dev = Device(self.modem, journal, cfg, safe, log, clock,
                          Vibrator(self.motor.append, log), timing)
        self.app = App(None, log, timing)
        self.app.dev = self.dev
        self.modem.at.on_urc("+CLIP:", self.app._on_clip)
        self.modem.at.start()  # the reader (modem.start() starts it on the handset)
        self.alarm = None
        if alarm_open or ended_ago_ms is not None:
            self.alarm = Alarm.trigger(self.dev)
            self.app.alarm = self.alarm
            self.modem.call_state = "ended"  # the alarm's call is over
        if ended_ago_ms is not None:
            self.alarm.end("closed")
            self.app.alarm_end = (time.ticks_add(time.ticks_ms(), -ended_ago_ms), None)

    def callbacks(self):
        return [x.split(" ", 2)[2] for x in events(self.lines, "CALLBACK")]

    async def decided(self):
        await until(lambda: self.app.ringing is None and self.stream.done(),
                    what="the call-back task ends with the script consumed")

    def close(self):
        self.modem.deinit()


def answered_script():
    return [answer("ATA", b"\r\nOK\r\n", b"\r\nVOICE CALL: BEGIN\r\n"),
            ok("AT+CLVL=0"), ok("AT+VMUTE=1")]


async def test_police_number_answered_silently_during_an_alarm():
    h = Handset(answered_script(), alarm_open=True)
    h.stream.push(clip(POLICE))
    await until(lambda: h.stream.done(), what="ATA then CLVL=0, VMUTE=1")
    await until(lambda: "action=answered number=" + POLICE in h.callbacks(), what="logged")
    assert h.app.ringing is not None  # the call is on: further +CLIP are ignored
    h.stream.push(clip(POLICE))
    await asyncio.sleep_ms(20)
    assert h.stream.unexpected == [], h.stream.unexpected
    # on the alarm's timeline: the call channel is done, ch.call active, sent at once
    assert h.alarm.call_state == "active" and h.alarm.p.get("call") == "done"
    assert h.alarm._position_due.is_set()
    h.stream.push(b"\r\nVOICE CALL: END: 000012\r\n")
    await h.decided()
    assert h.callbacks()[-1] == "action=ended number=" + POLICE, h.callbacks()
    assert h.alarm.call_state == "ended"
    assert h.motor == []  # nothing vibrates
    cmds = h.stream.commands()
    assert cmds == ["ATA", "AT+CLVL=0", "AT+VMUTE=1"], cmds
    assert h.modem.at._waiters == []
    h.close()


async def test_police_number_answered_in_the_window_after_the_alarm():
    h = Handset(answered_script(), ended_ago_ms=500)
    h.stream.push(clip("0800"))
    await until(lambda: h.stream.done(), what="answered")
    h.stream.push(b"\r\nVOICE CALL: END: 000003\r\n")
    await h.decided()
    assert h.callbacks() == ["action=answered number=0800", "action=ended number=0800"]
    h.close()


async def test_other_number_rejected_during_an_alarm():
    h = Handset([ok("AT+CHUP")], alarm_open=True)
    h.stream.push(clip("+687999999"))
    await h.decided()
    assert h.callbacks() == ["action=rejected number=+687999999"], h.callbacks()
    assert h.stream.commands() == ["AT+CHUP"]
    assert h.alarm.call_state != "active"
    h.close()


async def test_national_form_of_a_police_number_is_not_guessed():
    h = Handset([ok("AT+CHUP")], alarm_open=True)
    h.stream.push(clip("271234"))  # POLICE without +687: another number
    await h.decided()
    assert h.callbacks() == ["action=rejected number=271234"]
    h.close()


async def test_safe_mode_handset_answers_17_and_hangs_up_anyone_else():
    # No config.json: safe mode, the defaults; 17 (the number dialled) calls back.
    safe_cfg = config.load(DIR + "/no-such-config.json")[0]
    h = Handset(answered_script(), alarm_open=True)
    h.dev.cfg = safe_cfg
    h.stream.push(clip("17"))
    await until(lambda: h.stream.done(), what="ATA then CLVL=0, VMUTE=1")
    h.stream.push(b"\r\nVOICE CALL: END: 000004\r\n")
    await h.decided()
    assert h.callbacks() == ["action=answered number=17", "action=ended number=17"]
    h.close()
    h = Handset([ok("AT+CHUP")], alarm_open=True)
    h.dev.cfg = safe_cfg
    h.stream.push(clip("+687999999"))
    await h.decided()
    assert h.callbacks() == ["action=rejected number=+687999999"], h.callbacks()
    h.close()


async def test_withheld_number_rejected_during_an_alarm():
    h = Handset([ok("AT+CHUP")], alarm_open=True)
    h.stream.push(RING + b'\r\n+CLIP: "",128,,,"",1\r\n')
    await h.decided()
    assert h.callbacks() == ["action=rejected number=none"]
    h.close()


async def test_police_number_rejected_outside_the_window():
    h = Handset([ok("AT+CHUP")], ended_ago_ms=2000, callback_window_s=1)  # 10 ms scaled
    h.stream.push(clip(POLICE))
    await h.decided()
    assert h.callbacks() == ["action=rejected number=" + POLICE]
    assert h.stream.commands() == ["AT+CHUP"]
    h.close()


async def test_police_number_rejected_when_there_was_no_alarm():
    h = Handset([ok("AT+CHUP")])
    h.stream.push(clip(POLICE))
    await h.decided()
    assert h.callbacks() == ["action=rejected number=" + POLICE]
    h.close()


async def test_ring_without_caller_id_is_not_answered():
    h = Handset([], alarm_open=True)
    h.stream.push(RING)
    h.stream.push(RING)
    await until(lambda: len(events(h.lines, "RING")) == 2, what="both RINGs seen")
    await asyncio.sleep_ms(30)
    assert h.app.ringing is None and h.callbacks() == []
    assert h.stream.commands() == [] and h.stream.unexpected == []
    h.close()


async def test_the_alarms_own_call_is_never_hung_up():
    h = Handset([], alarm_open=True)
    h.modem.call_state = "active"
    h.stream.push(clip("+687999999"))
    await h.decided()
    assert h.stream.commands() == [] and h.callbacks() == []
    h.close()


async def test_a_call_back_leaves_the_driver_idle_so_the_modem_sleeps_again():
    # A resumed alarm whose call was done before the power cut: the driver follows no
    # call ("idle"). The police call back and hang up; the driver must not keep the
    # call-back's "active": nothing would end it, the modem would never sleep again and
    # every later call-back would be ignored (campaign seed 8).
    h = Handset([], alarm_open=True)
    h.modem.call_state = "idle"
    for n in (1, 2):
        for step in answered_script():
            h.stream.add(*step)
        h.stream.push(b'\r\n+CLCC: 1,1,4,0,0,"' + POLICE.encode() + b'",145\r\n' + clip(POLICE))
        await until(lambda: h.callbacks().count("action=answered number=" + POLICE) == n,
                    what="call-back %d answered" % n)
        h.stream.push(b'\r\n+CLCC: 1,1,0,0,0,"' + POLICE.encode() + b'",145\r\n')
        await asyncio.sleep_ms(20)
        assert h.modem.call_state == "idle", h.modem.call_state
        h.stream.push(b'\r\n+CLCC: 1,1,6,0,0,"' + POLICE.encode() + b'",145\r\n'
                      b"\r\nVOICE CALL: END: 000004\r\n")
        await h.decided()
        assert h.modem.call_state == "idle", h.modem.call_state
        assert h.modem._may_sleep()
    assert h.callbacks().count("action=ended number=" + POLICE) == 2, h.callbacks()
    h.close()


async def test_answered_call_whose_end_urc_is_lost_ends_on_clcc():
    from tgd import callback
    saved = callback._CHECK_MS
    callback._CHECK_MS = 30
    try:
        h = Handset(answered_script() + [ok("AT+CLCC")], alarm_open=True)
        await callback.handle(h.app, '+CLIP: "%s",145,,,"",0' % POLICE)
    finally:
        callback._CHECK_MS = saved
    assert h.stream.done(), (h.stream.script, h.stream.unexpected)
    assert h.callbacks()[-1] == "action=ended number=" + POLICE
    assert h.modem.at._waiters == []
    h.close()


def test_caller_id_parsing():
    from tgd import callback
    assert callback.caller('+CLIP: "02152063113",128,,,"",0') == "02152063113"
    assert callback.caller('+CLIP: "+687 27 12 34",145,,,"",0') == "+687271234"
    assert callback.caller('+CLIP: "",128,,,"",1') == ""
    assert callback.caller("+CLIP:") == ""


def test_config_police_numbers_and_window():
    base = {"device_id": "NC0001", "key": "ab" * 32, "server_url": "http://x/m"}
    cfg, problems, _ = config.validate(dict(base, emergency_number="112"))
    assert cfg["police_numbers"] == ["112"] and cfg["callback_window_s"] == 3600
    cfg, problems, _ = config.validate(dict(base, police_numbers=["+687 27 12 34"],
                                            callback_window_s=0))
    assert problems == [] and cfg["police_numbers"] == ["+687271234"]
    assert cfg["callback_window_s"] == 0
    cfg, problems, _ = config.validate(dict(base, police_numbers=[]))
    assert problems == [] and cfg["police_numbers"] == []  # nobody is answered
    for bad in ("17", ["17", "x1"], [""], [17], ["1"] * 9):
        cfg, problems, _ = config.validate(dict(base, police_numbers=bad))
        assert [k for k, _ in problems] == ["police_numbers"], (bad, problems)
        assert cfg["police_numbers"] == ["17"]
    for bad in (-1, 86401, "60", True):
        cfg, problems, _ = config.validate(dict(base, callback_window_s=bad))
        assert [k for k, _ in problems] == ["callback_window_s"], (bad, problems)
        assert cfg["callback_window_s"] == 3600


# -- the window across a reboot ------------------------------------------------------

T0 = 1795678200  # the clock when the alarm ends
JLOG = line_log([])  # the journal's own log in the tests that use it alone
CONFIG = {"device_id": "NC0001", "key": "ab" * 32, "server_url": "http://127.0.0.1:9/m",
          "police_numbers": [POLICE]}


class Board(RecordingBoard):
    """What App._setup asks of a board; the flash is DIR, the RTC says `rtc` (None: unset)."""
    name = "test"

    def __init__(self, rtc):
        RecordingBoard.__init__(self)
        self.rtc = rtc

    def reset_cause(self):
        return "test"

    def mount_flash(self):
        return DIR

    def rtc_unix(self):
        return self.rtc

    def motor(self, on):
        pass


class Booted:
    """A handset booted on the flash in DIR as App.run boots it: App._setup (config,
    the journal read back, the clock from the RTC), then the +CLIP hook; the modem is the
    real driver on a scripted stream (no start-up: the call-back needs none)."""

    def __init__(self, script, rtc):
        self.modem, self.stream, _, self.lines = make_modem(script)
        self.app = App(Board(rtc), self.modem._log, Timing(0.01),
                       make_modem=lambda board, log: self.modem)
        self.app._setup()
        self.modem.dtr_idle_ms = 100000  # no AT+CSCLK=1 in the middle of the script
        self.modem.at.on_urc("+CLIP:", self.app._on_clip)
        self.modem.at.start()

    def callbacks(self):
        return [x.split(" ", 2)[2] for x in events(self.lines, "CALLBACK")]

    async def call(self, number):
        """A call from `number` is decided; -> the commands sent for it."""
        before = len(self.stream.commands())
        self.stream.push(clip(number))
        await until(lambda: self.app.ringing is None and self.stream.done(),
                    what="the call-back task ends with the script consumed")
        return self.stream.commands()[before:]

    def close(self):
        self.app.deinit()
        self.modem.deinit()


def flash(**over):
    """An empty flash with the handset's config.json."""
    wipe()
    with open(DIR + "/config.json", "w") as f:
        f.write(json.dumps(dict(CONFIG, **over)))


async def alarm_ended_then_power_cut(**over):
    """First life: an alarm, closed by the console at T0, then the power goes."""
    flash(**over)
    h = Booted([], T0)
    alarm = Alarm.trigger(h.app.dev)
    h.app.alarm = alarm
    alarm.end("closed")
    await h.app._run_alarm(alarm)  # what follows an alarm's end in the app
    assert h.app.alarm_end[1] == T0
    h.close()
    return alarm.aid


async def police_answered(h):
    """The first call of a boot from POLICE is answered silently."""
    h.stream.add(*answer("ATA", b"\r\nOK\r\n", b"\r\nVOICE CALL: BEGIN\r\n"))
    # The speaker set once, by callback.py after ATA: the call-back is not the driver's
    # call (its VOICE CALL: BEGIN does not make the driver follow it).
    for cmd in ("AT+CLVL=0", "AT+VMUTE=1"):
        h.stream.add(*ok(cmd))
    h.stream.push(clip(POLICE))
    await until(lambda: "action=answered number=" + POLICE in h.callbacks(), what="answered")
    await until(lambda: h.stream.done(), what="the discreet audio")
    h.stream.push(b"\r\nVOICE CALL: END: 000007\r\n")
    await until(lambda: h.app.ringing is None, what="the call ended")
    assert h.callbacks()[-1] == "action=ended number=" + POLICE
    assert h.stream.unexpected == [], h.stream.unexpected


async def police_rejected(h, number=POLICE):
    h.stream.add(*ok("AT+CHUP"))
    assert await h.call(number) == ["AT+CHUP"]
    assert h.callbacks()[-1] == "action=rejected number=" + number


async def test_window_survives_a_reboot():
    await alarm_ended_then_power_cut()
    h = Booted([], T0 + 600)  # back on 10 min later
    await police_answered(h)
    h.close()


async def test_window_after_a_reboot_ends_by_the_clock():
    await alarm_ended_then_power_cut()
    h = Booted([], T0 + 3700)  # callback_window_s is 3600
    await police_rejected(h)
    h.close()


async def test_other_number_rejected_after_a_reboot_in_the_window():
    await alarm_ended_then_power_cut()
    h = Booted([], T0 + 600)
    await police_rejected(h, "+687999999")
    h.stream.add(*ok("AT+CHUP"))
    h.stream.push(RING + b'\r\n+CLIP: "",128,,,"",1\r\n')  # withheld
    await until(lambda: h.app.ringing is None and h.stream.done(), what="withheld hung up")
    assert h.callbacks()[-1] == "action=rejected number=none"
    h.close()


async def test_reboot_without_a_clock_answers_then_the_clock_decides():
    # No time yet after the reboot (an ESP32's RTC after a power cut, before the
    # network's): counted from the boot, so the police are answered...
    await alarm_ended_then_power_cut()
    h = Booted([], None)
    await police_answered(h)
    # ... until the clock is known: then the journal's end time decides.
    h.app.dev.clock.set(T0 + 3700)
    await police_rejected(h)
    h.close()


async def test_reboot_without_a_clock_counts_the_window_from_the_boot():
    await alarm_ended_then_power_cut(callback_window_s=30)  # 300 ms at the tests' scale
    h = Booted([], None)
    await police_answered(h)
    await asyncio.sleep_ms(350)  # the boot is longer ago than the window
    await police_rejected(h)
    h.close()


async def test_end_without_its_time_counts_the_window_from_the_boot():
    # The handset did not know the time when the alarm ended (no network time yet): the
    # end may be recent, the window runs from the boot.
    flash(callback_window_s=30)
    j = Journal(DIR, JLOG)
    j.open()
    j.open_alarm("0badc0de", None)
    j.end_alarm("0badc0de", "closed")
    h = Booted([], T0 + 30 * 86400)  # the clock is known now, the end's time is not
    assert h.app.alarm_end[1] is None
    await police_answered(h)
    await asyncio.sleep_ms(350)
    await police_rejected(h)
    h.close()


async def test_no_window_after_a_reboot_without_any_alarm():
    flash()
    h = Booted([], T0)
    assert h.app.alarm_end is None
    await police_rejected(h)
    h.close()


def journal_lines():
    with open(DIR + "/" + FILE) as f:
        return [x for x in f.read().split("\n") if x]


def test_the_end_time_in_the_journal():
    wipe()
    j = Journal(DIR, JLOG)
    j.open()
    j.open_alarm("000000aa", T0 - 100)
    j.end_alarm("000000aa", "closed", T0)
    assert Journal(DIR, JLOG).open().end_t == T0
    # a later alarm's end without its time: not the older alarm's time
    j.open_alarm("000000bb", T0 + 10)
    assert Journal(DIR, JLOG).open().end_t == T0  # (open: the alarm resumes anyway)
    j.end_alarm("000000bb", "timeout")
    assert Journal(DIR, JLOG).open().end_t is None
    j.open_alarm("000000cc", T0 + 20)
    j.end_alarm("000000cc", "closed", T0 + 99)
    assert Journal(DIR, JLOG).open().end_t == T0 + 99
    wipe()
    st = Journal(DIR, JLOG).open()
    assert st.last_end is None and st.end_t is None  # no alarm ever ended


def test_compaction_keeps_the_end_and_its_time():
    wipe()
    j = Journal(DIR, JLOG, max_bytes=150)
    j.open()
    j.open_alarm("000000cc", T0 - 100)
    j.progress("000000cc", "call", "done")
    j.end_alarm("000000cc", "closed", T0)  # > 150 bytes: compacted here (the end gets kept)
    kinds = [json.loads(x[9:])["r"] for x in journal_lines()]
    assert kinds == ["seq", "end"], kinds
    st = Journal(DIR, JLOG).open()
    assert st.end_t == T0 and st.last_end == ("000000cc", "closed") and st.alarm is None
    # a new alarm opens: its compaction keeps the previous end before it
    j.open_alarm("000000dd", T0 + 50)
    j.compact()
    kinds = [json.loads(x[9:])["r"] for x in journal_lines()]
    assert kinds == ["seq", "end", "open"], kinds
    st = Journal(DIR, JLOG).open()
    assert st.alarm["aid"] == "000000dd" and st.end_t == T0
