"""The rig's server harness against the real server: registration, signed ingest, events."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request

import pytest

from tgd_rig.provision import HandsetIdentity
from tgd_rig.rig import EventBus
from tgd_rig.server_harness import ServerHarness


@pytest.fixture
def server(tmp_path):
    bus = EventBus()
    harness = ServerHarness(tmp_path, bus=bus)
    harness.start()
    yield harness, bus
    harness.stop()


def post_signed(url: str, key_hex: str, message: dict) -> tuple[int, dict]:
    body = json.dumps(message, separators=(",", ":")).encode()
    signature = hmac.new(bytes.fromhex(key_hex), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-TGD-Signature": signature})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def alarm_message(dev: str, seq: int, aid: str) -> dict:
    now = int(time.time())
    return {"v": 1, "dev": dev, "seq": seq, "type": "alarm", "t": now, "aid": aid, "at": now - 1,
            "fix": {"m": "C"}, "cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352,
                                        "ci": 20481, "sig": -95},
            "bat": 3987, "csq": 21, "fw": "1.0.0", "ch": {"call": "dialing", "sms": "pending"}}


def test_alarm_reaches_the_server_once_and_the_rig_sees_it(server):
    harness, bus = server
    ident = HandsetIdentity.generate("NC0900", 90)
    harness.register_device(ident)
    mark = bus.mark()
    status, answer = post_signed(harness.ingest_url, ident.key, alarm_message("NC0900", 1, "0badcafe"))
    assert status == 200 and answer["ok"] and answer["alarm"]["aid"] == "0badcafe"
    created = bus.wait_for(lambda e: e.kind == "server_alarm", 10, mark)
    assert created.device == "NC0900" and created.data["aid"] == "0badcafe"
    position = bus.wait_for(lambda e: e.kind == "server_position", 10, mark)
    assert position.data["aid"] == "0badcafe" and position.data["fix"]["method"] == "C"
    assert position.data["fix"]["lat"] == pytest.approx(-22.2741, abs=0.01)
    # a retry (new seq, same aid) joins the same alarm
    status, _ = post_signed(harness.ingest_url, ident.key, alarm_message("NC0900", 2, "0badcafe"))
    assert status == 200
    alarms = harness.alarms("NC0900")
    assert len(alarms) == 1


def test_a_wrong_key_is_refused_and_creates_nothing(server):
    harness, bus = server
    ident = HandsetIdentity.generate("NC0901", 91)
    harness.register_device(ident)
    status, answer = post_signed(harness.ingest_url, "00" * 32, alarm_message("NC0901", 1, "12345678"))
    assert status == 401 and answer["error"] == "bad_signature"
    assert harness.alarms("NC0901") == []
    assert not [e for e in bus.snapshot() if e.kind == "server_alarm"]


def test_an_aml_sms_goes_through_the_servers_gateway_to_an_alarm(tmp_path):
    """The emulated rig's SMS path: handset modem -> network -> gateway modem -> the
    server's own SMS gateway loop -> ingest -> an alarm for the handset."""
    from datetime import UTC, datetime

    from tgd_rig.emulated import EmulatedRig
    from tgd_rig.emulator.client import boot
    from tgd_server.sms.aml import build_aml

    with EmulatedRig(tmp_path, timing="fast") as rig:
        handset = rig.add_handset("NC0950")        # registered; its firmware is not started
        at = boot(handset.modem)                   # the test plays the firmware with AT commands
        try:
            text = build_aml(lat=-22.2758, lon=166.458, radius_m=8,
                             time_of_positioning=datetime.now(UTC), confidence_pct=68,
                             method="G", imsi=handset.identity.imsi, imei=handset.identity.imei,
                             mcc="546", mnc="01")
            at.command("AT+CMGF=1")
            at.send(f'AT+CMGS="{rig.sms_number}"')
            at.expect(b">", 5)
            at.write(text.encode() + b"\x1a")
            at.expect(b"OK\r\n", 10)
            rig.wait_sms(timeout=15, sender=handset.identity.special_number)
            stored = rig.events.wait_for(lambda e: e.kind == "server_sms", 20,
                                         what="the SMS stored by the server's gateway")
            assert stored.device == "NC0950"
            rig.wait_server_alarm("NC0950", timeout=10)
            assert len(rig.server_alarms("NC0950")) == 1
        finally:
            at.close()
