"""The campaign's update invariants on synthetic event streams (pure: no rig).

boot_version, seq and update (campaign_invariants.py, docs/hil.md "Campaign"), and the
holds through an update's own reset: each shown passing on what a good handset does
and failing on what a broken one does (each test fails with its check removed).
"""

from __future__ import annotations

from test_campaign_invariants import Stream

from tgd_rig.campaign_invariants import GOOD, MODEM, OTHER_KEY, SELFTEST, TAMPERED

W = 45.0   # UPDATE_WITHIN_S


def found(s: Stream, now: float) -> list[str]:
    """Every violation so far (some are found as the line comes, not at a deadline)."""
    s.m.check(now)
    return [v.invariant for v in s.m.violations]


def updated(s: Stream, t: float, ver: str = "1.1.0", kind: str = GOOD) -> None:
    """What a good handset does with an offer of `ver` at t: take it, switch, reset,
    boot it, pass its self-test."""
    s.m.release_made(ver, kind)
    s.m.offered("H1", ver, t)
    s.log(t + 6.0, f"OTA res=downloading ver={ver}")
    s.log(t + 8.0, f"OTA step=switch slot=b ver={ver}")
    s.rig(t + 8.01, "reset")
    s.rig(t + 8.02, "power_on")
    s.log(t + 8.1, f"BOOT board=host fw={ver} reset=power_on")
    s.log(t + 8.3, f"OTA step=selftest res=ok ver={ver}")
    s.log(t + 8.5, "READY")


def booted(s: Stream, t: float, fw: str, cut: bool = False) -> None:
    s.rig(t, "power_cut" if cut else "reset")
    s.rig(t + 0.01, "power_on")
    s.log(t + 0.1, f"BOOT board=host fw={fw} reset=power_on")
    s.log(t + 0.5, "READY")


def factory(s: Stream) -> None:
    s.rig(0.0, "power_on")
    s.log(0.1, "BOOT board=host fw=1.0.0 reset=power_on")
    s.log(0.5, "READY")


# -- boot_version ------------------------------------------------------------------------

def test_an_update_that_completes_passes_every_invariant():
    s = Stream()
    factory(s)
    s.log(5.0, "HEARTBEAT seq=1 status=ok")
    updated(s, 10.0)
    s.log(20.0, "HEARTBEAT seq=101 status=ok")
    assert found(s, 100.0) == []
    assert s.m.passed["update"] == 1 and s.m.passed["boot_version"] == 2
    assert s.m.passed["seq"] == 2
    assert s.m.counts["update_completed"] == 1


def test_booting_a_version_it_never_switched_to_is_a_violation():
    s = Stream()
    factory(s)
    s.m.release_made("1.1.0", GOOD)            # made, never offered to it
    booted(s, 10.0, "1.1.0")
    assert "boot_version" in found(s, 11.0)
    s2 = Stream()
    factory(s2)
    booted(s2, 10.0, "9.9.9")                  # no release of that version at all
    assert "boot_version" in found(s2, 11.0)


def test_booting_a_release_of_another_key_or_tampered_with_is_a_violation():
    for kind in (OTHER_KEY, TAMPERED):
        s = Stream()
        factory(s)
        s.m.release_made("1.1.0", kind)
        s.m.offered("H1", "1.1.0", 5.0)
        s.log(8.0, "OTA step=switch slot=b ver=1.1.0")    # it must have refused it first
        booted(s, 8.1, "1.1.0")
        assert found(s, 9.0) == ["boot_version"], kind


def test_a_release_that_failed_its_self_test_never_boots_again():
    s = Stream()
    factory(s)
    s.m.release_made("1.1.0", SELFTEST)
    s.m.offered("H1", "1.1.0", 5.0)
    s.log(8.0, "OTA step=switch slot=b ver=1.1.0")
    booted(s, 8.1, "1.1.0")                                  # its trial: allowed
    s.log(8.5, "OTA step=selftest res=selftest_failed why=AmlError:broken")
    booted(s, 9.0, "1.0.0")                                  # rolled back: good
    assert found(s, 10.0) == []
    assert s.m.counts["update_selftest_failed"] == 1
    booted(s, 20.0, "1.1.0", cut=True)                       # ... and never again
    assert found(s, 21.0) == ["boot_version"]


# -- seq ---------------------------------------------------------------------------------

def test_sequence_numbers_going_back_after_a_boot_are_a_violation():
    s = Stream()
    factory(s)
    s.log(2.0, "HEARTBEAT seq=5 status=ok")
    s.log(3.0, "ALARM aid=a1 seq=6 resumed=0")
    booted(s, 10.0, "1.0.0", cut=True)
    s.log(11.0, "ALARM aid=a1 seq=6 resumed=1")    # the resumed alarm's own seq: not a new one
    s.log(12.0, "HEARTBEAT seq=101 status=ok")
    assert "seq" not in found(s, 13.0)
    booted(s, 20.0, "1.0.0")
    s.log(22.0, "HEARTBEAT seq=3 status=ok")       # the journal's blocks lost
    assert "seq" in found(s, 23.0)


# -- update ------------------------------------------------------------------------------

def test_a_good_release_offered_and_never_taken_is_a_violation():
    s = Stream()
    factory(s)
    s.m.release_made("1.1.0", GOOD)
    s.m.offered("H1", "1.1.0", 10.0)
    assert found(s, 10.0 + W - 1) == []
    assert found(s, 10.0 + W + 1) == ["update"]


def test_an_update_the_run_ends_before_is_not_judged():
    s = Stream()
    factory(s)
    s.m.release_made("1.1.0", GOOD)
    s.m.offered("H1", "1.1.0", 10.0)
    assert [v.invariant for v in s.m.finish(20.0)] == []
    assert s.m.excused["update"] == 1


def test_an_open_alarm_or_a_low_battery_holds_the_update_up():
    s = Stream()
    factory(s)
    s.m.release_made("1.1.0", GOOD)
    s.m.offered("H1", "1.1.0", 10.0)
    s.good_alarm(12.0)                                   # open until 100
    assert "update" not in found(s, 90.0)
    s.log(100.0, "ALARM_END aid=a1 reason=closed")
    s.m.battery("H1", 3400, 101.0)                       # below ota_min_bat_mv until 200
    assert "update" not in found(s, 190.0)
    s.m.battery("H1", 3987, 200.0)
    assert "update" not in found(s, 200.0 + W - 1)
    assert "update" in found(s, 200.0 + W + 1)       # then it must come


def test_a_paused_rollout_is_a_violation_unless_a_power_cut_came_since_the_offer():
    for alarm in (False, True):       # an alarm defers an update, it never loses the offer
        s = Stream()
        factory(s)
        s.m.release_made("1.1.0", GOOD)
        s.m.offered("H1", "1.1.0", 10.0)
        if alarm:
            s.good_alarm(11.0)
            s.log(15.0, "ALARM_END aid=a1 reason=closed")
        s.m.rollout_ended("1.1.0", "paused", "canary came back and runs 1.0.0", 17.0)
        assert found(s, 10.0 + W + 1) == ["update"], alarm
    s2 = Stream()
    factory(s2)
    s2.m.release_made("1.1.0", GOOD)
    s2.m.offered("H1", "1.1.0", 10.0)
    booted(s2, 12.0, "1.0.0", cut=True)                  # power cut before it was checked
    s2.m.rollout_ended("1.1.0", "paused", "canary came back and runs 1.0.0", 17.0)
    assert found(s2, 10.0 + W + 1) == []
    assert s2.m.excused["update"] == 1


def test_a_good_release_refused_is_a_violation_a_bad_one_is_not():
    s = Stream()
    factory(s)
    s.m.release_made("1.1.0", GOOD)
    s.m.offered("H1", "1.1.0", 10.0)
    s.log(16.0, "OTA res=bad_hash ver=1.1.0 why=sha256")
    assert found(s, 17.0) == ["update"]
    s2 = Stream()
    factory(s2)
    s2.m.release_made("1.1.0", TAMPERED)
    s2.m.offered("H1", "1.1.0", 10.0)
    s2.log(16.0, "OTA res=bad_hash ver=1.1.0 why=sha256")
    assert found(s2, 100.0) == []
    assert s2.m.counts["update_refused_bad_hash"] == 1


def test_a_good_release_failing_its_self_test_needs_the_modem_or_power_down():
    def run(disturbed: bool):
        s = Stream()
        factory(s)
        s.m.release_made("1.1.0", GOOD)
        s.m.offered("H1", "1.1.0", 10.0)
        s.log(16.0, "OTA res=downloading ver=1.1.0")
        s.log(18.0, "OTA step=switch slot=b ver=1.1.0")
        booted(s, 18.1, "1.1.0")
        if disturbed:
            s.m.disturb("H1", {MODEM}, 18.2, 19.0)      # a modem reboot during the self-test
        s.log(19.0, "OTA step=selftest res=selftest_failed why=OSError:timeout")
        booted(s, 19.5, "1.0.0")
        return found(s, 100.0)
    assert run(False) == ["update"]
    assert run(True) == []


def test_a_trial_rolled_back_by_the_next_boot_needs_a_power_cut():
    def run(cut: bool):
        s = Stream()
        factory(s)
        s.m.release_made("1.1.0", GOOD)
        s.m.offered("H1", "1.1.0", 10.0)
        s.log(18.0, "OTA step=switch slot=b ver=1.1.0")
        booted(s, 18.1, "1.1.0")                          # its trial boot ...
        booted(s, 18.5, "1.0.0", cut=cut)                 # ... and no self-test line
        return s, found(s, 100.0)
    s, seen = run(True)
    assert seen == [] and s.m.counts["update_rolled_back"] == 1
    assert run(False)[1] == ["update"]


# -- holds through an update's reset -----------------------------------------------------

def test_a_hold_after_an_update_reset_is_never_excused_as_closed_at_boot():
    s = Stream()
    factory(s)
    s.rig(10.0, "reset")                        # the firmware's own reset (an update's)
    s.rig(10.01, "power_on")
    s.press(10.05, 1.5)                         # no BUTTON state=down, no alarm
    s.log(10.1, "BOOT board=host fw=1.0.0 reset=power_on")
    s.log(10.5, "READY")
    assert "call" in found(s, 14.0)
    assert "hold_closed_at_boot" not in s.m.counts


def test_a_hold_through_an_update_reset_is_timed_from_the_firmwares_first_sample():
    s = Stream()
    factory(s)
    s.rig(10.0, "reset")
    s.rig(10.01, "power_on")
    s.rig(10.02, "press")                       # during the reboot
    s.log(10.3, "BUTTON state=down")            # the firmware's first sample
    s.log(10.35, "READY")
    s.rig(10.72, "release")                     # 0.42 s after it: too short to trigger
    assert found(s, 14.0) == []
    assert s.m.counts["hold_mostly_before_the_boot"] == 1
    s.rig(20.0, "reset")
    s.rig(20.01, "power_on")
    s.rig(20.02, "press")
    s.log(20.3, "BUTTON state=down")
    s.log(20.35, "READY")
    s.log(20.9, "ALARM aid=a1 seq=7 resumed=0")  # triggered at 20.3 + 0.6
    s.net(21.8, "dial", number="17")            # within 1 s of the firmware's trigger
    s.server(21.9, "server_alarm", aid="a1", alarm_id="a1")
    s.server(22.0, "server_position", aid="a1", channel="http")
    s.net(23.0, "sms_submitted", to="+687700100")
    s.rig(21.5, "release")
    assert found(s, 30.0) == []
    assert s.m.counts["hold_through_an_update_reset"] == 1
