"""The APN on the emulated rig: a network that needs one (OPT-NC: "mobilis").

The emulated network's `required_apn` makes packet data (HTTP, MQTT, NETOPEN) fail as
a modem without a data connection does (HTTP status 601, CMQTTSTART 7) until PDP
context 1 names it. The firmware sets it at start-up from config "apn"
(AT+CGDCONT=1,"IP","<apn>"): the alarm's position reaches the server. A handset
provisioned with a wrong APN still calls 17 and sends its AML SMS, but no data goes.
"""

from __future__ import annotations

from rig_testkit import needs_firmware, wait_until

from tgd_rig.emulated import EmulatedRig
from tgd_rig.emulator.network import HTTP_NETWORK_ERROR

HOLD_MS = 600
NETWORK_APN = "mobilis"


def _alarm(rig, device_id: str, apn: str):
    rig.net.required_apn = NETWORK_APN
    handset = rig.add_handset(device_id, config={"trigger_hold_ms": HOLD_MS, "apn": apn})
    handset.power_on()
    handset.expect("READY", timeout=30)
    msisdn = handset.identity.special_number
    mark = rig.events.mark()
    handset.press(HOLD_MS / 1000 + 0.4)
    handset.expect("ALARM", timeout=10)
    rig.wait_call(30, since=mark, caller=msisdn)
    return handset, msisdn, mark


def _messages(rig, alarm_id) -> int:
    timeline = rig.server.alarm(alarm_id)["timeline"]
    return sum(1 for e in timeline if e["kind"] == "message")


def test_the_networks_apn_brings_the_alarm_position_to_the_server(rig_workdir):
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        handset, msisdn, mark = _alarm(rig, "AP0001", NETWORK_APN)
        alarm = rig.wait_server_alarm(handset.device_id, timeout=30, since=mark)
        alarm_id = alarm.data["alarm_id"]
        assert wait_until(lambda: _messages(rig, alarm_id) > 0
                          and rig.server.alarm(alarm_id)["positions"], 30)
        statuses = [e["status"] for e in rig.net.events_of("http_response", modem=msisdn)]
        assert 200 in statuses and HTTP_NETWORK_ERROR not in statuses, statuses
        assert handset.modem.settings.apn.get(1) == ("IP", NETWORK_APN)


def test_a_wrong_apn_still_calls_and_sends_the_sms_but_no_data_goes(rig_workdir):
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        handset, msisdn, mark = _alarm(rig, "AP0002", "internet")
        rig.wait_sms(30, since=mark, sender=msisdn)
        assert wait_until(lambda: rig.net.events_of("http_response", modem=msisdn), 30)
        statuses = [e["status"] for e in rig.net.events_of("http_response", modem=msisdn)]
        assert set(statuses) == {HTTP_NETWORK_ERROR}, statuses
        # the server knows the alarm from the AML SMS only: no data message came
        for alarm in rig.server_alarms(handset.device_id):
            assert _messages(rig, alarm["id"]) == 0
        assert handset.modem.settings.apn.get(1) == ("IP", "internet")  # it did set its APN
