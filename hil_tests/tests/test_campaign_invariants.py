"""The campaign's invariants on synthetic event streams (pure: no rig).

Each invariant is shown passing on what a good handset does and failing on what a
broken one does; test_campaign_broken.py shows the same on real broken firmware.
"""

from __future__ import annotations

from tgd_rig.campaign_invariants import (
    DATA,
    HandsetConfig,
    InvariantMonitor,
)
from tgd_rig.devicelog import LogLine, parse_log_line
from tgd_rig.rig import RigEvent

MSISDN = "+687750001"


class Stream:
    """Feeds a monitor the events a run would give it, at chosen times."""

    def __init__(self, **options):
        cfg = HandsetConfig(msisdn=MSISDN, trigger_hold_s=0.6, track_interval_s=1.5)
        self.m = InvariantMonitor({"H1": cfg}, **options)
        self.n = 0

    def rig(self, t, kind, **data):
        self.m.feed(RigEvent(t, "rig", kind, "H1", data))

    def log(self, t, text):
        raw = text if text.startswith("---") else f"{int(t * 1000)} {text}"   # rig notes: as is
        ticks, event, fields = parse_log_line(raw)
        self.n += 1
        self.m.feed(RigEvent(t, "device", "log", "H1",
                             {"line": LogLine(self.n, t, raw, ticks, event, fields)}))

    def net(self, t, kind, **data):
        self.m.feed(RigEvent(t, "network", kind, None, {"modem": MSISDN, **data}))

    def server(self, t, kind, **data):
        self.m.feed(RigEvent(t, "server", kind, "H1", data))

    def boot(self, t=0.0):
        self.rig(t, "power_on")
        self.log(t + 0.5, "READY")

    def press(self, t, held, seen=False):
        self.rig(t, "press")
        if seen:                       # the firmware's own BUTTON state=down line
            self.log(t + 0.03, "BUTTON state=down")
        self.rig(t + held, "release")

    def good_alarm(self, t, aid="a1", held=1.0):
        """What a good handset does for a hold at t."""
        self.press(t, held, seen=True)
        self.log(t + 0.61, f"ALARM aid={aid} seq=1 resumed=0")
        self.net(t + 0.65, "dial", number="17")
        self.server(t + 0.9, "server_alarm", aid=aid, alarm_id=aid)
        self.server(t + 1.0, "server_position", aid=aid, channel="http")
        self.net(t + 2.0, "sms_submitted", to="+687700100")

    def invariants(self, now):
        return [v.invariant for v in self.m.check(now)]


def test_a_good_alarm_passes_every_invariant():
    s = Stream()
    s.boot()
    s.good_alarm(10.0)
    assert s.invariants(40.0) == []
    assert s.m.finish(41.0) == []
    assert s.m.passed["call"] == 1 and s.m.passed["position"] == 1 and s.m.passed["sms"] == 1
    assert s.m.summary()["slowest_s"]["dial_s"] == 0.05


def test_call_fails_without_a_dial_within_one_second():
    s = Stream()
    s.boot()
    s.press(10.0, 1.0)
    s.log(10.61, "ALARM aid=a1 seq=1 resumed=0")
    s.net(11.7, "dial", number="17")            # 1.1 s after the end of the hold
    assert "call" in s.invariants(12.0)


def test_call_passes_when_a_police_call_is_already_up():
    s = Stream()
    s.boot()
    s.good_alarm(10.0)
    s.log(20.0, "BUTTON state=held alarm=already_open aid=a1")
    s.press(19.4, 1.0)
    assert s.invariants(40.0) == []


def test_a_refused_second_dial_is_a_violation_when_no_police_call_is_up():
    s = Stream()
    s.boot()
    s.good_alarm(10.0)
    s.net(15.0, "call_ended", number="17", by="remote")
    s.log(16.0, "ALARM_END aid=a1 reason=closed")
    s.press(20.0, 1.0)
    s.log(20.61, "ALARM aid=a2 seq=2 resumed=0")   # ... but the ATD was refused: no dial
    assert "call" in s.invariants(22.0)


def test_a_network_loss_excuses_the_call_it_overlaps():
    s = Stream()
    s.boot()
    s.m.disturb("H1", {"voice"}, 9.0, 12.0)
    s.press(10.0, 1.0)
    s.log(10.61, "ALARM aid=a1 seq=1 resumed=0")
    assert "call" not in s.invariants(12.0)
    assert s.m.excused["call"] == 1


def test_a_hold_during_boot_counts_from_ready():
    s = Stream()
    s.rig(0.0, "power_on")
    s.press(0.1, 1.0, seen=True)
    s.log(3.0, "READY")
    s.log(3.1, "ALARM aid=a1 seq=1 resumed=0")
    s.net(3.5, "dial", number="17")
    assert s.invariants(5.0) == []
    assert s.m.passed["call"] == 1


def test_a_hold_whose_release_comes_after_ready_counts_from_ready():
    s = Stream()
    s.rig(0.0, "power_on")
    s.rig(0.1, "press")
    s.log(0.13, "BUTTON state=down")
    s.log(2.0, "READY")                # the modem booted while she held the button
    s.rig(2.1, "release")
    s.log(2.05, "BUTTON state=held alarm=already_open aid=a0")
    s.net(2.9, "dial", number="17")
    assert s.invariants(5.0) == []
    assert s.m.summary()["slowest_s"]["dial_s"] == 0.9


def test_a_hold_begun_before_the_firmware_read_the_button_is_excused_one_it_saw_is_not():
    s = Stream()
    s.rig(0.0, "power_on")
    s.press(0.05, 1.5)                     # closed at boot: no BUTTON state=down
    s.log(0.2, "BOOT board=host")
    s.log(1.6, "BUTTON state=up")
    s.log(2.0, "READY")
    assert s.invariants(6.0) == []
    assert s.m.counts["hold_closed_at_boot"] == 1 and s.m.excused["call"] == 1
    s2 = Stream()
    s2.rig(0.0, "power_on")
    s2.press(0.3, 1.5, seen=True)          # the firmware saw it: it must alarm
    s2.log(2.0, "READY")
    assert "call" in s2.invariants(6.0)


def test_short_press_that_starts_an_alarm_is_a_violation():
    s = Stream()
    s.boot()
    s.press(10.0, 0.3)
    s.log(10.2, "ALARM aid=a1 seq=1 resumed=0")
    assert "short_press" in s.invariants(12.0)


def test_one_alarm_per_hold():
    s = Stream()
    s.boot()
    s.press(10.0, 1.0)
    s.log(10.61, "ALARM aid=a1 seq=1 resumed=0")
    s.log(10.62, "ALARM aid=a2 seq=2 resumed=0")
    s.net(10.65, "dial", number="17")
    assert "one_alarm" in s.invariants(13.0)


def test_a_reassert_then_a_new_alarm_for_one_hold_needs_the_handover_line():
    # Campaign seed 14 (session 5): the re-asserted alarm was closed before the hold's
    # dial went; the handset opened a new alarm for the same hold. Fine with the
    # handset's BUTTON alarm=ended_before_dial line between them, a violation without.
    for handover in (True, False):
        s = Stream()
        s.boot()
        s.good_alarm(10.0)
        s.press(20.0, 1.0, seen=True)
        s.log(20.61, "BUTTON state=held alarm=already_open aid=a1 press=2 redial=1")
        s.log(20.80, "ALARM_END aid=a1 reason=closed")
        if handover:
            s.log(20.80, "BUTTON state=held alarm=ended_before_dial aid=a1")
        s.log(20.81, "ALARM aid=a2 seq=9 resumed=0")
        s.net(20.85, "dial", number="17")
        s.server(20.9, "server_alarm", aid="a2", alarm_id="a2")
        s.server(21.0, "server_position", aid="a2", channel="http")
        s.net(22.0, "sms_submitted", to="+687700100")
        found = s.invariants(30.0)
        assert ("one_alarm" in found) is not handover, (handover, found)


def test_a_second_alarm_while_one_is_open_is_a_violation():
    s = Stream()
    s.boot()
    s.good_alarm(10.0)
    s.press(20.0, 1.0)
    s.log(20.61, "ALARM aid=a2 seq=2 resumed=0")
    assert "one_alarm" in s.invariants(23.0)


def test_a_hold_with_neither_alarm_nor_reassert_is_a_violation():
    s = Stream()
    s.boot()
    s.press(10.0, 1.0)
    s.net(10.65, "dial", number="17")
    assert "one_alarm" in s.invariants(13.0)


def test_position_late_with_data_up_and_excused_with_data_down():
    s = Stream()
    s.boot()
    s.press(10.0, 1.0)
    s.log(10.61, "ALARM aid=a1 seq=1 resumed=0")
    s.net(10.65, "dial", number="17")
    s.server(12.0, "server_position", aid=None, channel="sms")   # the AML SMS: not data
    s.server(14.0, "server_position", aid="a1", channel="http")
    assert "position" in s.invariants(14.0)
    s2 = Stream()
    s2.boot()
    s2.m.disturb("H1", {DATA}, 10.5, 12.0)
    s2.press(10.0, 1.0)
    s2.log(10.61, "ALARM aid=a1 seq=1 resumed=0")
    s2.net(10.65, "dial", number="17")
    assert "position" not in s2.invariants(14.0)


def test_sms_not_sent_in_time():
    s = Stream(sms_within_s=5.0)
    s.boot()
    s.press(10.0, 1.0)
    s.log(10.61, "ALARM aid=a1 seq=1 resumed=0")
    s.net(10.65, "dial", number="17")
    s.server(11.0, "server_position", aid="a1", channel="http")
    assert "sms" in s.invariants(20.0)


def test_alarm_not_resumed_after_a_power_cut():
    s = Stream()
    s.boot()
    s.good_alarm(10.0)
    s.rig(12.0, "power_cut")
    s.rig(13.0, "power_on")
    s.log(13.5, "ALARM aid=zz seq=1 resumed=1")     # another aid: the alarm doubled
    assert [v.invariant for v in s.m.violations] == ["lost_or_doubled"]
    s2 = Stream()
    s2.boot()
    s2.good_alarm(10.0)
    s2.rig(12.0, "power_cut")
    s2.rig(13.0, "power_on")                         # ... and nothing resumed
    assert "lost_or_doubled" in s2.invariants(40.0)


def test_alarm_lost_or_unknown_at_the_server():
    s = Stream()
    s.boot()
    s.press(10.0, 1.0)
    s.log(10.61, "ALARM aid=a1 seq=1 resumed=0")
    s.net(10.65, "dial", number="17")
    s.server(11.0, "server_position", aid="a1", channel="http")
    s.server(11.0, "server_alarm", aid="b7", alarm_id=1)        # never opened by the handset
    assert [v.invariant for v in s.m.violations] == ["lost_or_doubled"]
    assert any("a1 opened by the handset never reached" in v.message for v in s.m.finish(40.0))


def test_an_alarm_twice_at_the_server_is_a_violation():
    s = Stream()
    s.boot()
    s.good_alarm(10.0)                                  # alarm_id "a1" holds aid a1
    s.server(12.0, "server_alarm", aid=None, alarm_id=7)   # created by the AML SMS...
    s.server(12.5, "alarm_updated", aid="a1", alarm_id=7)  # ... and it is a1 again
    assert [v.invariant for v in s.m.violations] == ["lost_or_doubled"]


def test_crash_memory_error_and_app_restart():
    for line in ("--- rig: firmware ended: exit code 1", "ERROR where=main what=ValueError:x",
                 "ERROR where=main what=MemoryError:x", "Traceback (most recent call last):"):
        s = Stream()
        s.boot()
        s.log(5.0, line)
        assert [v.invariant for v in s.m.violations] == ["crash"], line
    s = Stream()
    s.boot()
    s.log(5.0, "ERROR where=data what=MemoryError:allocating_303_bytes")   # guarded: counted
    assert s.m.violations == [] and s.m.logged_errors == {"data:MemoryError": 1}


def test_idle_after_close():
    s = Stream()
    s.boot()
    s.good_alarm(10.0)
    s.m.operator_closed("H1", "a1", 20.0)
    s.log(21.0, "ALARM_END aid=a1 reason=closed")
    s.m.idle_probe("H1", 21.5, calls_up=1, modem_asleep=False)
    assert "idle_after_close" in s.invariants(30.0)      # the call stayed up
    s2 = Stream()
    s2.boot()
    s2.good_alarm(10.0)
    s2.m.operator_closed("H1", "a1", 20.0)
    s2.log(21.0, "ALARM_END aid=a1 reason=closed")
    s2.m.idle_probe("H1", 21.5, calls_up=0, modem_asleep=False)   # awake: not yet idle
    s2.m.idle_probe("H1", 22.0, calls_up=0, modem_asleep=True)
    assert s2.invariants(30.0) == []
    assert s2.m.summary()["slowest_s"]["idle_after_close_s"] == 2.0


def test_idle_after_close_cut_short_by_her_next_press_is_not_judged():
    s = Stream()
    s.boot()
    s.good_alarm(10.0)
    s.m.operator_closed("H1", "a1", 20.0)
    s.log(21.0, "ALARM_END aid=a1 reason=closed")
    s.m.idle_probe("H1", 21.1, calls_up=0, modem_asleep=False)
    s.good_alarm(21.5, aid="a2")              # a new alarm before the modem could sleep
    assert "idle_after_close" not in s.invariants(40.0)
    assert s.m.excused["idle_after_close"] == 1 and s.m.passed["idle_after_close"] == 0


def test_idle_reached_after_the_deadline_is_too_late():
    s = Stream()
    s.boot()
    s.good_alarm(10.0)
    s.m.operator_closed("H1", "a1", 20.0)       # deadline 20 + 1.5 + 3 = 24.5
    s.log(21.0, "ALARM_END aid=a1 reason=closed")
    s.m.idle_probe("H1", 24.0, calls_up=0, modem_asleep=False)
    s.m.idle_probe("H1", 26.0, calls_up=0, modem_asleep=True)    # asleep, but late
    assert "idle_after_close" in s.invariants(27.0)


def test_a_short_press_window_ends_at_the_next_press():
    s = Stream()
    s.boot()
    s.press(10.0, 0.2)                       # short: its window would run to 11.2
    s.good_alarm(10.4, aid="a1")             # ... but she holds at 10.4: that alarm is the hold's
    assert s.invariants(40.0) == []


def test_an_alarm_ended_during_the_hold_lets_the_hold_open_a_new_one():
    s = Stream()
    s.boot()
    s.good_alarm(10.0, aid="a1")
    s.rig(20.0, "press")
    s.log(20.03, "BUTTON state=down")
    s.log(20.2, "ALARM_END aid=a1 reason=closed")   # closed while she holds
    s.rig(21.0, "release")
    s.log(20.6, "ALARM aid=a2 seq=2 resumed=0")
    s.net(20.62, "dial", number="17")
    assert "one_alarm" not in s.invariants(40.0)
