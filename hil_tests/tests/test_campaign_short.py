"""A short campaign on fixed seeds (CI), and the broken cases' steps on the real firmware.

The long run is a documented command (docs/hil.md "Campaign", docs/benchmarks.md);
this keeps the campaign itself working on every change, within about two minutes.
"""

from __future__ import annotations

import pytest
from rig_testkit import needs_firmware
from test_campaign_broken import CASES

from tgd_rig.campaign import format_result, plan_for, run_campaign
from tgd_rig.campaign_plan import Step

CI_SEEDS = (11,)   # with the broken cases' plan below: two fixed plans in CI
CI_STEPS = 12


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_short_campaign_on_a_fixed_seed_has_no_violation(seed, rig_workdir):
    needs_firmware()
    plan = plan_for(seed, CI_STEPS, 1, None)
    result = run_campaign(seed, plan, rig_workdir / "campaign", out=lambda *a: None)
    print(format_result(result))
    assert result.passed, (result.violations, result.rig_error, result.replay)
    assert result.steps_run == CI_STEPS
    assert sum(result.summary["passed"].values()) > 0


def test_the_broken_cases_steps_pass_on_the_real_firmware(rig_workdir):
    """The step lists that catch each broken variant are no violation by themselves."""
    needs_firmware()
    plan: list[Step] = [Step(0, "second_call_mode", "H1", {"mode": "refuse"})]
    for _invariant, steps, _options in CASES.values():
        for step in steps[1:]:
            # shorter gaps: the deadlines left are judged after the run's final recovery wait
            # (not after a close: the handset must get the time to go idle before her
            # next press, or that check is not judged)
            gap = step.params["gap_s"] if step.kind == "operator_close" else 1.5
            params = dict(step.params, gap_s=min(step.params["gap_s"], gap))
            plan.append(Step(len(plan), step.kind, "H1", params))
    result = run_campaign(0, plan, rig_workdir / "campaign", out=lambda *a: None,
                          monitor_options={"sms_within_s": 4.0})
    assert result.passed, (result.violations, result.rig_error, result.replay)
    for invariant in ("call", "short_press", "one_alarm", "position", "sms", "lost_or_doubled",
                      "idle_after_close"):
        assert result.summary["passed"][invariant] >= 1, (invariant, result.summary["passed"])
