"""Scenario files: every bad file is refused with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgd_rig.errors import ScenarioError
from tgd_rig.scenario import load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

GOOD = """
name = "demo"
timing = "fast"
[handset]
device_id = "NC0042"
indoor = true
track = { lat = -22.27, lon = 166.45 }
[config]
trigger_hold_ms = 500
[police]
answer_after_s = 1.5
[[press]]
at_s = 1.0
hold_s = 0.8
[[press]]
at_s = 5.0
hold_s = 0.2
[[fault]]
at_s = 2.0
name = "call_busy"
params = { count = 2 }
[expect]
alarms = 1
within_s = { dial = 0.5, sms_delivered = 20 }
absent = ["gnss"]
fix_method = "C"
log_sequence = ["ALARM", "DIAL"]
"""


def test_a_good_scenario_parses(tmp_path):
    path = tmp_path / "demo.toml"
    path.write_text(GOOD)
    sc = load_scenario(path)
    assert sc.device_id == "NC0042" and sc.indoor and sc.track.is_fixed
    assert sc.trigger_hold_s() == 0.5
    assert [p.hold_s for p in sc.alarm_presses()] == [0.8]   # the 0.2 s press is not an alarm
    assert sc.faults[0].params == {"count": 2}
    assert sc.expect.within_s == {"dial": 0.5, "sms_delivered": 20.0}
    assert sc.expect.absent == ("gnss",)


@pytest.mark.parametrize("patch, words", [
    ({"timing": "slow"}, "timing"),
    ({"colour": "red"}, "colour"),
    ({"handset": {"colour": 1}}, "handset.colour"),
    ({"handset": {"track": {"lat": 95, "lon": 0}}}, "handset.track.lat"),
    ({"press": [{"at_s": 1}]}, "hold_s is required"),
    ({"press": [{"at_s": "soon", "hold_s": 1}]}, "at_s must be a number"),
    ({"fault": [{"at_s": 1}]}, "name is required"),
    ({"fault": [{"at_s": 1, "name": "meteor_strike"}]}, "unknown fault 'meteor_strike'"),
    ({"fault": [{"at_s": 1, "name": "call_busy", "params": {"count": 0}}]}, "count must be"),
    ({"fault": [{"at_s": 1, "name": "call_busy", "params": {"colour": 1}}]}, "fault call_busy"),
    ({"expect": {"within_s": {"fax": 1}}}, "unknown channel"),
    ({"expect": {"within_s": {"gnss": 1}, "absent": ["gnss"]}}, "both required and absent"),
    ({"expect": {"fix_method": "W"}}, "fix_method"),
    ({"expect": {"alarms": -1}}, "expect.alarms"),
    ({"handset": {"indoor": "yes"}}, "handset.indoor must be a bool"),
    ({"config": {"trigger_hold": 500}}, "[config] unknown setting(s) trigger_hold"),
])
def test_bad_scenarios_are_refused_with_the_key(patch, words):
    data = {"name": "x", **patch}
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, Path("bad.toml"))
    assert words in str(info.value) and "bad.toml" in str(info.value)


def test_bad_toml_and_missing_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = ")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="no such scenario"):
        load_scenario(tmp_path / "absent.toml")


def test_nmea_track_resolves_next_to_the_scenario(tmp_path):
    path = tmp_path / "walk.toml"
    path.write_text('name = "walk"\n[handset]\ntrack = { nmea = "walk.nmea" }\n'
                    '[[press]]\nat_s = 1\nhold_s = 3\n')
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(path)
    (tmp_path / "walk.nmea").write_text("")
    assert load_scenario(path).track.nmea == tmp_path / "walk.nmea"


def test_every_shipped_scenario_is_valid():
    files = sorted(SCENARIOS.glob("*.toml"))
    assert files, "hil_tests/scenarios/ holds no scenario"
    for path in files:
        load_scenario(path)


def test_cells_file_resolves_next_to_the_scenario(tmp_path):
    path = tmp_path / "rural.toml"
    path.write_text('name = "rural"\ncells = "lifou_cells.csv"\n[[press]]\nat_s = 1\nhold_s = 3\n')
    assert load_scenario(path).cells == tmp_path / "lifou_cells.csv"
    assert load_scenario(SCENARIOS / "alarm_outdoor.toml").cells is None


def test_presses_are_fitted_to_a_boards_hold():
    from tgd_rig.runner import fit_to_rig

    class Board:
        trigger_hold_ms = 2000

    sc = load_scenario(SCENARIOS / "short_presses.toml")          # hold 600 ms
    fitted = fit_to_rig(Board(), sc)
    assert fitted.trigger_hold_s() == 2.0
    # each press keeps its margin under the hold: 0.05 -> 1.45, 0.4 -> 1.8
    assert [round(p.hold_s, 2) for p in fitted.presses] == [1.45, 1.7, 1.8]
    assert fitted.alarm_presses() == []
    assert fit_to_rig(object(), sc) is sc                          # emulated: unchanged
