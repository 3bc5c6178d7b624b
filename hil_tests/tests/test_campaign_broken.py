"""Each campaign invariant fails on a handset that breaks it.

A deliberately broken copy of the firmware (firmware_variants.py) runs on the rig in
place of the real one, through a short step list that gives it the chance to break
the invariant; the campaign must report that invariant, write a replay file, and the
replay file must hold the steps that were run.
"""

from __future__ import annotations

import pytest
from firmware_variants import broken_firmware
from rig_testkit import needs_firmware

from tgd_rig.campaign import run_campaign
from tgd_rig.campaign_plan import Step, load_replay

HOLD = 1.0


def steps(*raw: tuple[str, dict]) -> list[Step]:
    plan = [Step(0, "second_call_mode", "H1", {"mode": "refuse"})]
    for kind, params in raw:
        plan.append(Step(len(plan), kind, "H1", params))
    return plan


CASES = {
    "late_dial": ("call", steps(("hold", {"hold_s": HOLD, "gap_s": 2.5})), {}),
    "eager_button": ("short_press", steps(("short_press", {"hold_s": 0.35, "gap_s": 2.0})), {}),
    "second_alarm_while_open": ("one_alarm", steps(
        ("hold", {"hold_s": HOLD, "gap_s": 2.0}),
        ("hold_while_open", {"hold_s": HOLD, "gap_s": 2.5})), {}),
    "late_position": ("position", steps(("hold", {"hold_s": HOLD, "gap_s": 4.5})), {}),
    "no_sms": ("sms", steps(("hold", {"hold_s": HOLD, "gap_s": 6.0})), {"sms_within_s": 4.0}),
    "resume_new_aid": ("lost_or_doubled", steps(
        ("hold", {"hold_s": HOLD, "gap_s": 1.5}),
        ("power_cut", {"delay_s": 0.0, "off_s": 0.3, "gap_s": 4.0})), {}),
    "memory_error_on_trigger": ("crash", steps(("hold", {"hold_s": HOLD, "gap_s": 2.0})), {}),
    "never_sleeps_after_close": ("idle_after_close", steps(
        ("hold", {"hold_s": HOLD, "gap_s": 2.0}),
        ("operator_close", {"route": "rest", "gap_s": 6.0})), {}),
    "ignores_close": ("idle_after_close", steps(
        ("hold", {"hold_s": HOLD, "gap_s": 2.0}),
        ("operator_close", {"route": "console", "gap_s": 6.0})), {}),
}


@pytest.mark.parametrize("variant", list(CASES))
def test_invariant_fails_on_a_broken_handset(variant, rig_workdir):
    needs_firmware()
    invariant, plan, options = CASES[variant]
    main = broken_firmware(rig_workdir / "firmware", variant)
    result = run_campaign(0, plan, rig_workdir / "campaign", firmware_main=main,
                          monitor_options=options, out=lambda *a: None)
    found = [v["invariant"] for v in result.violations]
    assert invariant in found, (variant, result.violations, result.outdir)
    assert result.replay is not None
    assert load_replay(result.replay)["steps"] == plan[:result.steps_run]
    if variant == "ignores_close":
        [v] = [v for v in result.violations if v["invariant"] == invariant]
        assert "did not end alarm" in v["message"], v
    if variant == "never_sleeps_after_close":
        [v] = [v for v in result.violations if v["invariant"] == invariant]
        assert "not asleep" in v["message"] and "did not end" not in v["message"], v
