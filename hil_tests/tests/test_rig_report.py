"""The report's arithmetic and verdicts, on observations written by hand."""

from __future__ import annotations

import pytest

from tgd_rig.report import (
    AlarmTrigger,
    ChannelEvent,
    Observations,
    build_report,
    haversine_m,
    medians,
    missing_from_sequence,
)
from tgd_rig.scenario import parse_scenario


def test_haversine_known_distances():
    assert haversine_m(-22.27, 166.45, -22.27, 166.45) == 0
    # one degree of latitude is ~111.2 km on the mean sphere
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-3)
    # Nouméa to We (Lifou), about 174 km as the crow flies
    assert 165_000 < haversine_m(-22.2758, 166.4580, -20.9043, 167.2650) < 185_000


def scenario(**expect):
    return parse_scenario({"name": "t", "config": {"trigger_hold_ms": 1000},
                           "press": [{"at_s": 1, "hold_s": 1.5}], "expect": expect})


def observations(sc, events, server_alarms=1):
    obs = Observations(scenario=sc, backend="test", t0=100.0,
                       triggers=[AlarmTrigger("0badcafe", end_of_hold=102.0, press_start=101.0)],
                       events=events, log_events=["READY", "ALARM", "DIAL", "SMS"],
                       server_alarm_count=server_alarms, truth=lambda t: (-22.2758, 166.4580))
    return obs


EVENTS = [
    ChannelEvent(102.05, "dial"),
    ChannelEvent(102.9, "server_alarm", aid="0badcafe"),
    ChannelEvent(102.9, "server_position", aid="0badcafe",
                 fix={"method": "C", "lat": -22.2741, "lon": 166.4488, "acc": 900}),
    ChannelEvent(105.0, "call_answered"),
    ChannelEvent(106.5, "server_position", aid="0badcafe",
                 fix={"method": "G", "lat": -22.27581, "lon": 166.45801, "acc": 5}),
    ChannelEvent(107.0, "sms_delivered"),
    ChannelEvent(108.0, "server_position", aid="ffffffff",   # another alarm's position
                 fix={"method": "G", "lat": 0.0, "lon": 0.0, "acc": 5}),
]


def test_channel_times_count_from_the_end_of_the_hold():
    report = build_report(observations(scenario(), EVENTS))
    alarm = report["alarms"][0]
    assert alarm["channels_s"] == {"dial": 0.05, "call_answered": 3.0, "server_alarm": 0.9,
                                   "position": 0.9, "gnss": 4.5, "sms_delivered": 5.0}
    assert alarm["end_of_hold_s"] == 2.0
    assert alarm["fixes"]["first"]["method"] == "C"
    assert 900 < alarm["fixes"]["first"]["error_m"] < 1100
    assert alarm["fixes"]["first_gnss"]["error_m"] < 2
    assert alarm["fixes"]["last"]["method"] == "G"   # the other alarm's fix is not counted
    assert alarm["positions_at_server"] == 2
    assert report["passed"] and report["failures"] == []


def test_expectations_fail_with_readable_reasons():
    sc = scenario(alarms=1, within_s={"dial": 0.01, "gnss": 10}, absent=["sms_delivered"],
                  fix_error_max_m=1, fix_method="C", log_sequence=["ALARM", "CALL"],
                  log_absent=["DIAL"])
    report = build_report(observations(sc, EVENTS, server_alarms=2))
    text = "\n".join(report["failures"])
    assert not report["passed"]
    for words in ["dial after 0.050 s", "sms_delivered happened", "method G, expected C",
                  "holds 2 alarm(s)", "missing from 'CALL'", "DIAL appeared",
                  "1.5 m from the truth, expected within 1.0 m"]:
        assert words in text, words
    assert "gnss" not in text        # 4.5 s is within 10 s


def test_a_channel_that_never_happens_fails():
    sc = scenario(within_s={"call_answered": 30})
    report = build_report(observations(sc, [e for e in EVENTS if e.kind != "call_answered"]))
    assert report["failures"] == ["alarm 0badcafe: call_answered never happened (expected within 30.0 s)"]


def test_missing_alarm_is_a_failure():
    obs = observations(scenario(), EVENTS)
    obs.triggers = []
    report = build_report(obs)
    assert report["failures"] == ["the handset raised 0 alarm(s), expected 1"]


def test_sequence_and_medians():
    assert missing_from_sequence(["A", "B", "C"], ["A", "C"]) is None
    assert missing_from_sequence(["C", "A"], ["A", "C"]) == "C"
    reports = [build_report(observations(scenario(), EVENTS)) for _ in range(3)]
    assert medians(reports)["dial"] == 0.05


def test_bench_summary_judges_each_target():
    from tgd_rig.bench import format_table, summarise

    def report(dial, position, gnss, ttff):
        channels = {"dial": dial, "call_answered": 5.0, "server_alarm": position,
                    "position": position, "gnss": gnss, "sms_delivered": 20.0}
        return {"passed": True, "alarms": [{"channels_s": channels, "gnss_ttff_s": ttff}]}

    summary = summarise([report(0.01, 0.4, 32.0, 31.0), report(0.02, 0.5, 30.0, 29.5),
                         report(0.3, 4.0, 40.0, 35.0)])
    assert summary["medians_s"]["dial"] == 0.02 and summary["medians_s"]["position"] == 0.5
    assert summary["gnss_over_ttff_median_s"] == 1.0 and summary["gnss_over_ttff_max_s"] == 5.0
    assert summary["targets"]["dial"].startswith("ok")
    assert summary["targets"]["gnss"].startswith("ok")
    slow = summarise([report(0.2, 3.5, None, None)])
    assert slow["targets"]["dial"].startswith("MISSED") and slow["targets"]["position"].startswith("MISSED")
    assert "gnss" not in slow["targets"]
    assert "| x | 1 (1) |" in format_table({"x": slow})
