"""The SMS channel end to end: data is down for the whole alarm, the alarm still
reaches the server by AML SMS, through the server's own gateway loop reading an
emulated SIM7600, with a position the console can show.

The real firmware (MicroPython VM), the SIM7600 emulator (fast timings), the real
server. Emulated backend only: it needs the network to refuse the handset's data.
"""

from __future__ import annotations

from conftest import assert_passed, needs_firmware

from tgd_rig.emulated import EmulatedRig
from tgd_rig.runner import run_scenario
from tgd_rig.scenario import load_scenario

SCENARIO = """
name = "sms_only"
description = "Data down for the whole alarm: the AML SMS alone opens it at the server"
timing = "fast"
observe_s = 45

[handset]
device_id = "NC0077"
msisdn = "+687751077"
track = { lat = -22.2758, lon = 166.4580 }

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
params = { status = 601, count = 1000 }

[expect]
alarms = 1
within_s = { dial = 1.0, call_answered = 15, sms_delivered = 30, server_alarm = 30, position = 30 }
log_sequence = ["ALARM", "DIAL"]
log_absent = ["ACKED"]
"""


def test_alarm_reaches_the_server_by_sms_alone_with_a_position(tmp_path):
    needs_firmware()
    path = tmp_path / "sms_only.toml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    rig = EmulatedRig(tmp_path / "rig", timing=scenario.timing,
                      police_answer_after_s=scenario.police_answer_after_s)
    rig.start()
    try:
        report = run_scenario(scenario, rig=rig)
        assert_passed(report)
        alarms = rig.server.alarms("NC0077")
        assert len(alarms) == 1, alarms
        detail = rig.server.alarm(alarms[0]["id"])
        assert detail["first_channel"] == "sms"
        assert detail["aid"] is None, "no data message ever arrived to give it an aid"
        sms_positions = [p for p in detail["positions"] if p["channel"] == "sms"]
        assert sms_positions, detail["positions"]
        assert sms_positions[0]["method"] in ("G", "C") and sms_positions[0]["acc_m"] > 0
        assert any(step["channel"] == "sms" and step["kind"] == "aml"
                   for step in detail["timeline"]), detail["timeline"]
        assert not [p for p in detail["positions"] if p["channel"] == "http"]
    finally:
        rig.stop()
