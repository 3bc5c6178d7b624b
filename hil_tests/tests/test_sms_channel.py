"""The SMS channel end to end: data is down for the whole alarm, the alarm still
reaches the server by AML SMS, through the server's own gateway loop reading an
emulated SIM7600 (tgd_server.sms.gateway, wired in by the emulated rig).

The real firmware (MicroPython VM), the SIM7600 emulator (fast timings), the real
server. Emulated backend only: it needs the network to refuse the handset's data.
One scenario run (about a minute) feeds the tests of this module.
"""

from __future__ import annotations

import pytest
from rig_testkit import assert_passed, needs_firmware

from tgd_rig.emulated import EmulatedRig
from tgd_rig.runner import run_scenario
from tgd_rig.scenario import load_scenario

DEVICE = "NC0077"
SCENARIO = f"""
name = "sms_only"
description = "Data down for the whole alarm: the AML SMS alone opens it at the server"
timing = "fast"
observe_s = 40

[handset]
device_id = "{DEVICE}"
msisdn = "+687751077"
track = {{ lat = -22.2758, lon = 166.4580 }}

[config]
trigger_hold_ms = 600
track_interval_s = 5

[police]
answer_after_s = 1.0

[[press]]
at_s = 0.5
hold_s = 0.8

[[fault]]
at_s = 0.0
name = "http_error"
params = {{ status = 601, count = 1000 }}

[expect]
alarms = 1
within_s = {{ dial = 1.0, call_answered = 15, sms_delivered = 30, server_alarm = 30, gnss = 30 }}
log_sequence = ["ALARM", "DIAL"]
log_absent = ["ACKED"]
"""


@pytest.fixture(scope="module")
def sms_only_run(tmp_path_factory):
    needs_firmware()
    workdir = tmp_path_factory.mktemp("sms_only")
    path = workdir / "sms_only.toml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    rig = EmulatedRig(workdir / "rig", timing=scenario.timing,
                      police_answer_after_s=scenario.police_answer_after_s)
    rig.start()
    try:
        report = run_scenario(scenario, rig=rig)
        alarms = rig.server.alarms(DEVICE)
        details = [rig.server.alarm(a["id"]) for a in alarms]
    finally:
        rig.stop()
    return report, details


def test_alarm_reaches_the_server_by_sms_alone(sms_only_run):
    report, details = sms_only_run
    assert_passed(report)
    assert len(details) == 1, "the SMS must open exactly one alarm"
    detail = details[0]
    assert detail["first_channel"] == "sms"
    assert detail["aid"] is None, "no data message ever arrived to give it an aid"
    assert any(step["channel"] == "sms" and step["kind"] == "aml"
               for step in detail["timeline"]), detail["timeline"]
    assert not [p for p in detail["positions"] if p["channel"] == "http"]


def test_sms_alone_brings_a_position(sms_only_run):
    _report, details = sms_only_run
    positions = [p for d in details for p in d["positions"] if p["channel"] == "sms"]
    assert positions, "no position reached the server by SMS"
    assert positions[0]["method"] in ("G", "C") and positions[0]["acc_m"] > 0
