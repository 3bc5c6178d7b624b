"""The alert path end to end, on the emulated rig (and on a board with `-m serial`).

Each test runs one scenario file of hil_tests/scenarios/: the real firmware on the
ESP32-faithful VM at 48 KB (32-bit, the firmware frozen as in an ESP32 image; the PyPI
port where it is not built), the SIM7600 emulator with fast timings, the real server.
A failure names what did not happen and where the device log is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rig_testkit import assert_passed

from tgd_rig.devicelog import parse_log_line


def test_alarm_delivered_on_all_channels_gnss_outdoors(run_named):
    report = run_named("alarm_outdoor")
    assert_passed(report)
    alarm = report["alarms"][0]
    # the call never waits for a position
    assert alarm["channels_s"]["dial"] < alarm["channels_s"]["gnss"]
    assert alarm["fixes"]["first_gnss"]["method"] == "G"
    assert report["server_alarms"] == 1


def test_cell_position_indoors_without_gnss(run_named):
    report = run_named("alarm_indoor")
    assert_passed(report)
    assert report["alarms"][0]["fixes"]["first"]["method"] == "C"


def test_gnss_positions_follow_her_while_walking(run_named):
    report = run_named("alarm_walking")
    assert_passed(report)
    assert report["alarms"][0]["fixes"]["first_gnss"]["error_m"] <= 50


def test_short_presses_never_alarm(run_named):
    report = run_named("short_presses")
    assert_passed(report)
    assert report["alarms"] == [] and report["server_alarms"] == 0


# The device-log lines that prove the fault really hit the alarm (a fault consumed by
# something else would make the test pass for nothing).
EVIDENCE = {
    "registration_lost": [("REGISTERED", {})],
    "call_busy": [("CALL", {"state": "failed", "reason": "busy"})],
    "sms_error": [("SMS", {"state": "failed"})],
    "server_errors": [("DATA", {"type": "alarm", "status": "500"}),
                      ("DATA", {"type": "alarm", "status": "705"})],
    "modem_reboot": [("MODEM_REBOOT", {})],
    "modem_silent": [("MODEM_POWER", {"action": "cycle"})],
    "line_garbage": [],
}


# Faults that act on the line rather than on a command leave no log line: check that
# the emulator applied them.
FAULTS_APPLIED = {"line_garbage": ["split_writes", "urc_in_response", "garbage"],
                  "registration_lost": ["no_service"], "modem_silent": ["silence"]}


def logged(report: dict) -> list[tuple[str, dict[str, str]]]:
    lines = []
    for raw in Path(report["log"]).read_text().splitlines():
        _, event, fields = parse_log_line(raw.split(" ", 1)[1] if " " in raw else raw)
        if event:
            lines.append((event, fields))
    return lines


@pytest.mark.parametrize("name", list(EVIDENCE))
def test_alarm_survives_fault(run_named, name):
    report = run_named(name)
    assert_passed(report)
    assert report["server_alarms"] == 1, "retries must never make a second alarm"
    if report["backend"] == "emulated":
        applied = [f["name"] for f in report["faults_applied"]]
        for fault in FAULTS_APPLIED.get(name, []):
            assert fault in applied, f"the emulator never applied {fault} (applied: {applied})"
        lines = logged(report)
        for event, fields in EVIDENCE[name]:
            assert any(e == event and all(f.get(k) == v for k, v in fields.items())
                       for e, f in lines), f"the fault left no {event} {fields} in {report['log']}"
