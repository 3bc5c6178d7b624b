"""The roll-out state machine (tgd_server/rollout.py), pure: no database, no clock."""

import pytest

from tgd_server import rollout as rm

T0 = 1_800_000_000.0


def started(stages=(34, 100), timeout=3600, canary="NC0001"):
    return rm.new_rollout("1.1.0", "1.0.0", canary, stages, timeout, T0)


def offered_canary(state=None):
    state = state or started()
    assert rm.should_offer(state, "NC0001", "1.0.0", False)
    return rm.offered(state, "NC0001", T0 + 10)


def test_only_the_canary_is_offered_first():
    state = started()
    assert state.phase == rm.CANARY
    assert rm.should_offer(state, "NC0001", "1.0.0", False)
    assert not any(rm.should_offer(state, f"NC{n:04d}", "1.0.0", False) for n in range(2, 300))


def test_canary_back_on_the_new_version_ok_starts_the_first_stage():
    state = offered_canary()
    state = rm.observe(state, rm.Report("NC0001", "1.1.0", "ok", "1.1.0"), True, T0 + 100)
    assert state.phase == rm.STAGED and state.stage == 0
    fleet = [f"NC{n:04d}" for n in range(2, 2002)]
    chosen = [d for d in fleet if rm.should_offer(state, d, "1.0.0", False)]
    assert 0.28 < len(chosen) / len(fleet) < 0.40  # about 34 %
    assert chosen == [d for d in fleet if rm.bucket("1.1.0", d) < 34]  # by the hash, every time


def test_stages_follow_each_other_after_the_stage_time_then_everyone():
    state = rm.observe(offered_canary(), rm.Report("NC0001", "1.1.0", "ok", "1.1.0"), True, T0 + 100)
    assert rm.tick(state, T0 + 100 + 3599).phase == rm.STAGED
    state = rm.tick(state, T0 + 100 + 3600)
    assert state.phase == rm.COMPLETE
    assert all(rm.should_offer(state, f"NC{n:04d}", "1.0.0", False) for n in range(2, 200))


def test_three_stages():
    state = started(stages=(10, 50, 100))
    state = rm.observe(offered_canary(state), rm.Report("NC0001", "1.1.0", "ok", "1.1.0"), True, T0)
    state = rm.tick(state, T0 + 3600)
    assert state.phase == rm.STAGED and state.stage == 1 and state.stages[state.stage] == 50
    assert rm.tick(state, T0 + 7200).phase == rm.COMPLETE


@pytest.mark.parametrize("res", ["rolled_back", "selftest_failed", "bad_sig", "bad_hash"])
def test_canary_failure_pauses(res):
    state = rm.observe(offered_canary(), rm.Report("NC0001", "1.0.0", res, "1.1.0"), True, T0 + 100)
    assert state.phase == rm.PAUSED and res in state.reason
    assert not rm.should_offer(state, "NC0001", "1.0.0", False)


@pytest.mark.parametrize("res", ["none", "ok"])
def test_canary_back_on_the_old_version_saying_so_about_the_new_one_pauses(res):
    state = rm.observe(offered_canary(), rm.Report("NC0001", "1.0.0", res, "1.1.0"), True, T0 + 100)
    assert state.phase == rm.PAUSED and "runs 1.0.0" in state.reason


@pytest.mark.parametrize("report", [rm.Report("NC0001", "1.0.0", None, None),
                                    rm.Report("NC0001", "1.0.0", "ok", "0.9.0")])
def test_canary_that_has_not_taken_the_offer_yet_gets_its_time_limit(report):
    # its report is still about an earlier version (campaign seed 43: out of heap at that
    # heartbeat, before it could say `downloading`): waiting, judged by its time limit
    state = rm.observe(offered_canary(), report, True, T0 + 100)
    assert state.phase == rm.CANARY
    assert rm.tick(state, T0 + 10 + 3601).phase == rm.PAUSED


@pytest.mark.parametrize("res", ["downloading", "deferred"])
def test_canary_still_at_work_does_not_pause(res):
    state = rm.observe(offered_canary(), rm.Report("NC0001", "1.0.0", res, "1.1.0"), True, T0 + 100)
    assert state.phase == rm.CANARY


def test_a_report_before_the_offer_is_not_judged():
    state = started()
    assert rm.observe(state, rm.Report("NC0001", "1.0.0"), False, T0 + 5) == state


def test_silent_canary_pauses_after_its_time_limit():
    state = offered_canary()
    assert rm.tick(state, T0 + 10 + 3600).phase == rm.CANARY
    paused = rm.tick(state, T0 + 10 + 3601)
    assert paused.phase == rm.PAUSED and "within 3600 s" in paused.reason


def test_the_canary_clock_starts_at_its_first_offer_only():
    state = started()
    assert rm.tick(state, T0 + 99_999).phase == rm.CANARY  # never offered: not late
    state = rm.offered(state, "NC0001", T0 + 50)
    assert rm.offered(state, "NC0001", T0 + 500).canary_offered_at == T0 + 50


def test_a_failure_in_a_stage_pauses_and_resume_continues_the_stage():
    state = rm.observe(offered_canary(), rm.Report("NC0001", "1.1.0", "ok", "1.1.0"), True, T0)
    state = rm.observe(state, rm.Report("NC0077", "1.0.0", "rolled_back", "1.1.0"), True, T0 + 9)
    assert state.phase == rm.PAUSED and "NC0077" in state.reason
    resumed = rm.resume(state, T0 + 20)
    assert resumed.phase == rm.STAGED and resumed.stage == 0 and resumed.reason == ""


def test_resume_of_a_canary_pause_offers_the_canary_again_with_a_new_clock():
    paused = rm.tick(offered_canary(), T0 + 5000)
    resumed = rm.resume(paused, T0 + 6000)
    assert resumed.phase == rm.CANARY and resumed.canary_offered_at is None
    assert rm.should_offer(resumed, "NC0001", "1.0.0", False)
    with pytest.raises(rm.RolloutError):
        rm.resume(resumed, T0 + 6001)


def test_no_offer_to_a_device_already_on_it_newer_below_min_or_that_failed_it():
    state = rm.tick(rm.observe(offered_canary(), rm.Report("NC0001", "1.1.0", "ok", "1.1.0"), True, T0),
                    T0 + 3600)
    assert rm.should_offer(state, "NC0005", "1.0.0", False)
    assert not rm.should_offer(state, "NC0005", "1.1.0", False)
    assert not rm.should_offer(state, "NC0005", "1.2.0", False)
    assert not rm.should_offer(state, "NC0005", "0.9.0", False)  # min 1.0.0
    assert not rm.should_offer(state, "NC0005", "1.0.0", True)
    assert not rm.should_offer(state, "NC0005", "dev-build", False)


def test_pause_stops_every_offer():
    state = rm.pause(offered_canary(), "by hand")
    assert not rm.should_offer(state, "NC0001", "1.0.0", False)


@pytest.mark.parametrize("stages, timeout, message", [
    ((), 3600, "stages"), ((50,), 3600, "ending with 100"), ((50, 40, 100), 3600, "increasing"),
    ((0, 100), 3600, "1 to 100"), ((34, 100), 10, "canary_timeout_s"), ((True, 100), 3600, "integer"),
])
def test_bad_roll_outs_are_refused(stages, timeout, message):
    with pytest.raises(rm.RolloutError, match=message):
        rm.new_rollout("1.1.0", "1.0.0", "NC0001", stages, timeout, T0)
