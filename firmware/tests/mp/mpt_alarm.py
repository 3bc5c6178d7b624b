# heapsize: 176k
# (this module and the scripted modem are compiled into the heap; on the PyPI port
# the firmware too: 160k was at the edge there once alarm.py grew with issue 12)
# The alarm state machine against the scripted modem: dial first, channels side by
# side, retries, acknowledgement -> one vibration, close, exactly-once across reboots.
import asyncio
import json

from tgd import config
from tgd.alarm import Alarm, IllegalTransition, OPEN, ENDED, ACKNOWLEDGED
from tgd.clock import Clock
from tgd.device import Device
from fake_modem import FakeModem, answer
from tgd.hmac256 import hmac_sha256_hex
from tgd.journal import Journal, FILE
from tgd.log import Log
from tgd.timing import Timing
from tgd.vibrate import Vibrator
from binascii import unhexlify
from scratch import empty_dir, unique_dir

DIR = unique_dir("alarm")
KEY = "ab" * 32
SMS_NUMBER = "+687700100"


def wipe():
    empty_dir(DIR)


def make_cfg(**over):
    cfg = config.defaults()
    cfg.update({"device_id": "NC0001", "key": KEY, "sms_number": SMS_NUMBER,
                "server_url": "http://127.0.0.1:9/api/v1/device/messages",
                "track_interval_s": 60, "call_retries": 5})
    cfg.update(over)
    return cfg


class Rig:
    """One boot of the handset's alarm layer over the flash directory DIR."""

    def __init__(self, modem=None, safe=None, **cfg):
        self.modem = modem or FakeModem()
        self.lines = []
        self.log = Log(sink=self._keep)
        self.motor = []
        journal = Journal(DIR, self.log)
        self.state = journal.open()
        clock = Clock()
        clock.set(1795678200)
        self.dev = Device(self.modem, journal, make_cfg(**cfg), safe, self.log, clock,
                          Vibrator(self.motor.append, self.log), Timing(0.001))
        self.dev.ready.set()
        self.dev.imei = "357365093474415"
        self.alarm = None
        self.task = None

    def _keep(self, line):
        if len(self.lines) < 250:  # a runaway loop must not fill the heap
            self.lines.append(line)

    def start(self, alarm):
        self.alarm = alarm
        self.modem.on_call = alarm.on_call
        self.modem.on_sms_report = alarm.on_sms_report
        self.task = asyncio.create_task(alarm.run())
        return alarm

    def trigger(self):
        return self.start(Alarm.trigger(self.dev))

    def resume(self):
        return self.start(Alarm.resume(self.dev, self.state.alarm))

    def events(self, name):
        return [ln for ln in self.lines if ln.split(" ")[1] == name]

    def power_cut(self):
        self.task.cancel()
        for t in self.alarm._tasks:
            t.cancel()

    async def until(self, cond, what, limit_ms=5000):
        waited = 0
        while not cond():
            if waited > limit_ms:
                raise AssertionError("timed out waiting for " + what + "\n" + "\n".join(self.lines[-15:]))
            await asyncio.sleep_ms(2)
            waited += 2


def bodies(modem):
    return [json.loads(b) for _, b, _ in modem.posts]


def journal_opens():
    n = 0
    with open(DIR + "/" + FILE) as f:
        for line in f:
            if '"open"' in line:
                n += 1
    return n


async def test_journal_first_then_dial_first():
    wipe()
    modem = FakeModem()
    seen = {}

    def hook(name):
        if name not in seen:
            seen[name] = journal_opens()
    modem.hook = hook
    modem.http_script = [answer("closed")]
    rig = Rig(modem)
    rig.trigger()
    await rig.until(lambda: not rig.alarm.is_open, "the alarm to close")
    # the modem's call list (a call already up is the alarm's, issue 12), then the dial,
    # before anything else
    assert modem.calls[:2] == ["call_list", "dial"], modem.calls[:5]
    assert seen["call_list"] == 1  # the alarm was on flash before the first command
    assert modem.dialled == "17"
    # the first data message went before any GNSS wait: alarm type, cell method
    first = bodies(modem)[0]
    assert first["type"] == "alarm" and first["aid"] == rig.alarm.aid
    assert first["fix"] == {"m": "C"} and first["cell"]["ci"] == 20513
    assert first["ch"]["call"] in ("dialing", "alerting", "active")
    assert rig.events("ALARM")[0].endswith("resumed=0") or "resumed=0" in rig.events("ALARM")[0]


async def test_complete_alarm_acknowledged_then_closed():
    wipe()
    modem = FakeModem()
    modem.gnss_fix_after = 3
    modem.http_script = [answer("received")]
    modem.http_default = answer("acknowledged")
    rig = Rig(modem, track_interval_s=20)
    alarm = rig.trigger()
    await rig.until(lambda: any(b["fix"]["m"] == "G" for b in bodies(modem)), "a GNSS position")
    modem.http_default = answer("closed")
    await rig.until(lambda: not alarm.is_open, "close")
    await rig.task  # run() stops GNSS after the channels
    assert alarm.end_reason == "closed"
    assert alarm.state == ENDED
    # signed, unique, increasing sequence numbers; one aid
    seqs = []
    for url, body, header in modem.posts:
        assert header == "X-TGD-Signature: " + hmac_sha256_hex(unhexlify(KEY), body)
        obj = json.loads(body)
        assert obj["aid"] == alarm.aid and obj["dev"] == "NC0001"
        seqs.append(obj["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    types = [b["type"] for b in bodies(modem)]
    assert types[0] == "alarm" and set(types[1:]) == {"position"}, types
    # a GNSS fix reached the server
    assert any(b["fix"]["m"] == "G" for b in bodies(modem))
    # "help is coming" exactly once
    assert len([ln for ln in rig.events("VIBRATE") if "pattern=help" in ln]) == 1
    assert "reason=closed" in rig.events("ALARM_END")[0]
    assert modem.gnss_stops == 1
    # after the close, the journal has no open alarm
    assert Journal(DIR, Log(sink=lambda s: None)).open().alarm is None


async def test_call_busy_then_answered_and_police_hang_up():
    wipe()
    modem = FakeModem()
    modem.dial_outcomes = ["busy", "no_carrier", "answer"]
    modem.http_default = answer("received")
    rig = Rig(modem)
    alarm = rig.trigger()
    await rig.until(lambda: alarm.call_state == "active", "the call to be answered")
    assert len(rig.events("DIAL")) == 3
    modem.police_hang_up()
    await rig.until(lambda: alarm.call_state == "ended", "call end")
    await asyncio.sleep_ms(30)
    assert len(rig.events("DIAL")) == 3  # an answered call that ends is not redialled
    alarm.end("closed")
    await rig.task


async def test_call_retries_are_bounded():
    wipe()
    modem = FakeModem()
    modem.dial_outcomes = ["busy"] * 10
    modem.http_default = answer("received")
    rig = Rig(modem, call_retries=2)
    alarm = rig.trigger()
    await rig.until(lambda: any("retries_exhausted" in ln for ln in rig.lines), "give up")
    assert len(rig.events("DIAL")) == 3
    assert alarm.is_open  # the alarm stays open: data and SMS go on
    alarm.end("closed")
    await rig.task


async def test_data_retries_until_ok_and_409_jumps_seq():
    wipe()
    modem = FakeModem()
    modem.http_script = [(500, b"oops"), "timeout", (200, b'{"ok":false}'),
                         (409, b'{"ok":false,"error":"replay","seq_floor":5000}'),
                         answer("closed")]
    rig = Rig(modem)
    alarm = rig.trigger()
    await rig.until(lambda: not alarm.is_open, "close")
    seqs = [b["seq"] for b in bodies(modem)]
    assert len(seqs) == 5 and len(set(seqs)) == 5
    assert seqs[-1] == 5001, seqs
    assert all(b["type"] == "alarm" for b in bodies(modem))
    statuses = [ln.split("status=")[1].split(" ")[0] for ln in rig.events("DATA")]
    assert statuses == ["500", "timeout", "200", "409", "200"], statuses


async def test_sms_retried_until_delivered_with_gnss_fix():
    wipe()
    modem = FakeModem()
    modem.gnss_fix_after = 2
    modem.sms_script = ["cms", "fail", "ok"]
    modem.http_default = answer("received")
    rig = Rig(modem)
    alarm = rig.trigger()
    await rig.until(lambda: alarm.sms_state == "delivered", "SMS delivered")
    assert len(modem.sms) == 2  # the CMS error never reached the network
    number, text = modem.sms[-1]
    assert number == SMS_NUMBER
    import aml_check
    fields = aml_check.decode(text)
    assert fields["pm"] == "G" and fields["ei"] == "357365093474415"
    states = [ln.split("state=")[1].split(" ")[0] for ln in rig.events("SMS")]
    assert states == ["failed", "sent", "failed", "sent", "delivered"], states
    alarm.end("closed")
    await rig.task


async def test_sms_without_gnss_goes_at_the_deadline_with_no_position():
    wipe()
    modem = FakeModem()
    modem.http_default = answer("received")
    rig = Rig(modem)
    alarm = rig.trigger()
    await rig.until(lambda: alarm.sms_state == "delivered", "SMS delivered")
    import aml_check
    assert aml_check.decode(modem.sms[0][1])["pm"] == "N"
    assert len(modem.sms) == 1
    # GNSS finds her later: one follow-up AML with the position, and only one
    modem.gnss_fix_after = 0
    await rig.until(lambda: len(modem.sms) == 2 and alarm.p.get("smsg"), "follow-up AML")
    assert aml_check.decode(modem.sms[1][1])["pm"] == "G"
    # the GNSS position went to the server before the follow-up SMS took the UART
    order = modem.order
    assert order.index(("post", "G")) < order.index(("sms", "G")), order
    await asyncio.sleep_ms(50)
    assert len(modem.sms) == 2
    alarm.end("closed")
    await rig.task


async def test_timeout_ends_the_alarm():
    wipe()
    modem = FakeModem()
    modem.http_default = answer("received")
    rig = Rig(modem, alarm_timeout_s=60)  # 60 ms at this test's time scale
    alarm = rig.trigger()
    await rig.until(lambda: not alarm.is_open, "timeout")
    assert alarm.end_reason == "timeout"
    assert "reason=timeout" in rig.events("ALARM_END")[0]


async def test_safe_mode_calls_and_texts_but_sends_no_data():
    wipe()
    modem = FakeModem()
    rig = Rig(modem, safe="no_config_file", device_id=None, key=None, server_url=None)
    alarm = rig.trigger()
    await rig.until(lambda: alarm.sms_state == "delivered" and alarm.call_state == "active",
                    "call and SMS")
    assert modem.posts == []
    alarm.end("timeout")
    await rig.task


def test_transitions_refuse_illegal_moves():
    wipe()
    rig = Rig()
    alarm = Alarm.trigger(rig.dev)
    assert alarm.state == OPEN
    for bad in (OPEN, "idle"):
        try:
            alarm.transition(bad)
        except IllegalTransition:
            continue
        raise AssertionError("accepted open -> " + bad)
    alarm.transition(ACKNOWLEDGED)
    try:
        alarm.transition(OPEN)
        raise AssertionError("accepted acknowledged -> open")
    except IllegalTransition:
        pass
    alarm.end("closed")
    alarm.end("closed")  # a second end is a no-op, not a second journal record
    assert alarm.state == ENDED


async def test_reboot_mid_alarm_resumes_the_same_alarm_once():
    wipe()
    modem = FakeModem()
    modem.http_default = answer("acknowledged")
    rig = Rig(modem)
    alarm = rig.trigger()
    aid = alarm.aid
    await rig.until(lambda: alarm.call_state == "active" and alarm.p.get("help"), "ack")
    assert len([ln for ln in rig.events("VIBRATE") if "help" in ln]) == 1
    rig.power_cut()
    await asyncio.sleep_ms(5)
    # reboot: same flash, new everything else
    modem2 = FakeModem()
    modem2.http_script = [answer("acknowledged"), answer("closed")]
    rig2 = Rig(modem2)
    assert rig2.state.alarm["aid"] == aid
    alarm2 = rig2.resume()
    assert alarm2.state == ACKNOWLEDGED
    await rig2.until(lambda: not alarm2.is_open, "close after resume")
    assert "resumed=1" in rig2.events("ALARM")[0]
    assert all(b["aid"] == aid for b in bodies(modem2))
    assert rig2.events("VIBRATE") == []  # "help is coming" was given once, before the reboot
    assert journal_opens() == 1
    seqs1 = set(b["seq"] for b in bodies(modem))
    assert not seqs1 & set(b["seq"] for b in bodies(modem2))
    # a third boot finds nothing to resume
    assert Rig(FakeModem()).state.alarm is None


async def test_power_cuts_at_many_instants_give_one_alarm():
    wipe()
    rig = Rig(FakeModem())
    aid = rig.trigger().aid
    seqs = []
    delays = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55]
    for i, d in enumerate(delays):
        await asyncio.sleep_ms(d)
        rig.power_cut()
        seqs.extend(b["seq"] for b in bodies(rig.modem))
        rig = None
        await asyncio.sleep_ms(3)  # let the cancelled tasks unwind
        modem = FakeModem()
        modem.dial_outcomes = ["busy"] if i % 3 == 0 else []
        modem.sms_script = ["none"] if i % 2 else []
        rig = Rig(modem)
        assert rig.state.alarm is not None and rig.state.alarm["aid"] == aid, i
        rig.resume()
    rig.modem.http_default = answer("closed")
    await rig.until(lambda: not rig.alarm.is_open, "final close")
    seqs.extend(b["seq"] for b in bodies(rig.modem))
    assert len(seqs) == len(set(seqs)), "a sequence number was reused"
    assert journal_opens() <= 1  # compaction may have rewritten it, never a second one
    assert Rig(FakeModem()).state.alarm is None


async def test_server_commands_locate_and_config():
    wipe()
    modem = FakeModem()
    modem.http_script = [answer("received", cmds=[{"id": 7, "type": "locate"}]),
                         answer("received", cmds=[{"id": 8, "type": "config",
                                                   "set": {"track_interval_s": 120,
                                                           "key": "00" * 32,
                                                           "call_retries": "x"}}]),
                         answer("closed")]
    rig = Rig(modem, track_interval_s=3600)  # only `locate` can bring the second message soon
    alarm = rig.trigger()
    await rig.until(lambda: not alarm.is_open, "close")
    sent = bodies(modem)
    assert len(sent) == 3
    assert "cmd" not in sent[0] and sent[1]["cmd"] == 7 and sent[2]["cmd"] == 8
    assert rig.dev.cfg["track_interval_s"] == 120
    assert rig.dev.cfg["key"] == KEY and rig.dev.cfg["call_retries"] == 5
    assert any("CONFIG_SET" in ln for ln in rig.lines)


async def test_silent_modem_is_power_cycled_and_the_alarm_goes_out():
    wipe()
    modem = FakeModem()
    modem.silent = True
    modem.http_default = answer("received")
    rig = Rig(modem)
    alarm = rig.trigger()
    await rig.until(lambda: alarm.call_state == "active", "the call after the power cycle")
    assert modem.power_cycles == 1
    assert any("silent_power_cycle" in ln for ln in rig.lines)
    await rig.until(lambda: any(b["type"] == "alarm" for b in bodies(modem)), "alarm message")
    alarm.end("closed")
    await rig.task
