"""The alert path end to end, on the emulated rig (and on a board with `-m serial`).

Each test runs one scenario file of hil_tests/scenarios/: the real firmware under
MicroPython (64 KiB heap), the SIM7600 emulator with fast timings, the real server.
A failure names what did not happen and where the device log is.
"""

from __future__ import annotations

import pytest
from conftest import assert_passed


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


def test_short_presses_never_alarm(run_named):
    report = run_named("short_presses")
    assert_passed(report)
    assert report["alarms"] == [] and report["server_alarms"] == 0


@pytest.mark.parametrize("name", [
    "registration_lost", "call_busy", "sms_error", "server_errors", "modem_reboot",
    "modem_silent", "line_garbage",
])
def test_alarm_survives_fault(run_named, name):
    report = run_named(name)
    assert_passed(report)
    assert report["server_alarms"] == 1, "retries must never make a second alarm"
