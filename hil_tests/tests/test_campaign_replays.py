"""Every bug the campaign found has a test of its own: its replay file, run on the real firmware.

hil_tests/campaign_replays/*.json are the failing step lists (trimmed to what matters;
the `note` says which seed found what). Each must now run without a violation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rig_testkit import needs_firmware

from tgd_rig.campaign import run_campaign
from tgd_rig.campaign_plan import load_replay

REPLAYS = Path(__file__).resolve().parents[1] / "campaign_replays"


# Bugs found and not fixed yet: strict xfail, so the fix shows (XPASS fails: drop the mark).
NOT_FIXED: dict[str, str] = {
    "second_update_ignored_until_a_reboot.json":
        "after an update's self-test passes, tgd.ota.Updates.trial stays True for the rest of "
        "that boot and Updates.offer drops every later offer (firmware/tgd/ota/__init__.py, "
        "tgd/ota/run.py boot_check): the next release is never taken until a reboot",
}


def _cases():
    for path in sorted(REPLAYS.glob("*.json")):
        reason = NOT_FIXED.get(path.name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(path.name, marks=marks)


@pytest.mark.parametrize("replay", list(_cases()))
def test_replay_of_a_bug_the_campaign_found_passes(replay, rig_workdir):
    needs_firmware()
    plan = load_replay(REPLAYS / replay)
    result = run_campaign(plan["seed"], plan["steps"], rig_workdir / "campaign",
                          handsets=plan["handsets"], timing=plan["timing"], out=lambda *a: None)
    assert result.passed, (plan["note"], result.violations, result.rig_error, result.outdir)
    assert result.steps_run == len(plan["steps"])
