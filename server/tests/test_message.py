"""Validation of device messages against docs/protocol.md (pure, no database)."""

import json
import time

import pytest

from tgd_server.message import MessageRefused, parse_envelope, validate

NOW = 1795678200


def base(**changes):
    body = {"v": 1, "dev": "NC0001", "seq": 1201, "type": "alarm", "t": NOW, "aid": "3fa9c01b",
            "at": NOW - 1, "fix": {"m": "C"},
            "cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20513, "sig": -95},
            "bat": 3987, "csq": 21, "fw": "1.0.0", "ch": {"call": "dialing", "sms": "pending"}}
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


def check(body: dict):
    return validate(parse_envelope(json.dumps(body).encode()), now=NOW)


def test_protocol_example_is_valid():
    example = (b'{"v":1,"dev":"NC0001","seq":1201,"type":"alarm","t":1795678200,"aid":"3fa9c01b",'
               b'"at":1795678199,"fix":{"m":"C"},"cell":{"rat":"LTE","mcc":546,"mnc":1,"lac":4352,'
               b'"ci":20513,"sig":-95},"bat":3987,"csq":21,"fw":"1.0.0",'
               b'"ch":{"call":"dialing","sms":"pending"}}')
    message = validate(parse_envelope(example), now=NOW)
    assert message.aid == "3fa9c01b" and message.fix.method == "C"
    assert message.call_state == "dialing" and message.cell["ci"] == 20513


def test_gnss_fix_and_null_values():
    message = check(base(fix={"m": "G", "lat": -22.27, "lon": 166.45, "acc": 8, "t": NOW - 3},
                         t=None, at=None, bat=None, csq=None, cell=None))
    assert (message.fix.lat, message.fix.lon, message.fix.acc_m) == (-22.27, 166.45, 8)
    assert message.t is None and message.cell is None


@pytest.mark.parametrize("body, status, code", [
    (b"", 400, "malformed_json"),
    (b"{", 400, "malformed_json"),
    (b"[1,2]", 400, "malformed_json"),
    (b"\xff\xfe", 400, "malformed_json"),
    (b'"text"', 400, "malformed_json"),
])
def test_not_a_json_object(body, status, code):
    with pytest.raises(MessageRefused) as refused:
        parse_envelope(body)
    assert (refused.value.status, refused.value.code) == (status, code)


@pytest.mark.parametrize("changes, code", [
    ({"seq": ...}, "missing_field"),
    ({"fix": ...}, "missing_field"),
    ({"aid": ...}, "missing_field"),  # an alarm needs its aid
    ({"ch": ...}, "missing_field"),
    ({"at": ...}, "missing_field"),
    ({"extra": 1}, "unknown_field"),
    ({"fix": {"m": "G", "lat": 1.0, "lon": 2.0, "alt": 3}}, "unknown_field"),
    ({"cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 1, "ci": 1, "pci": 3}}, "unknown_field"),
    ({"ch": {"call": "idle", "sms": "sent", "mqtt": "up"}}, "unknown_field"),
    ({"fix": {"m": "G", "lon": 2.0}}, "missing_field"),
    ({"cell": {"rat": "LTE", "mcc": 546}}, "missing_field"),
    ({"v": 2}, "bad_value"),
    ({"v": True}, "bad_value"),
    ({"dev": "NC 0001"}, "bad_value"),
    ({"dev": "x" * 33}, "bad_value"),
    ({"dev": 7}, "bad_value"),
    ({"seq": 0}, "bad_value"),
    ({"seq": 2**31}, "bad_value"),
    ({"seq": "12"}, "bad_value"),
    ({"seq": 1.5}, "bad_value"),
    ({"type": "panic"}, "bad_value"),
    ({"t": 0}, "bad_value"),  # 1970
    ({"t": 1000000000}, "bad_value"),  # 2001: clock not set
    ({"t": NOW + 2 * 86400}, "bad_value"),
    ({"at": 12}, "bad_value"),
    ({"aid": "3FA9C01B"}, "bad_value"),
    ({"aid": "3fa9c01"}, "bad_value"),
    ({"fix": {"m": "G", "lat": 200, "lon": 166.0}}, "bad_value"),
    ({"fix": {"m": "G", "lat": -22.0, "lon": 181}}, "bad_value"),
    ({"fix": {"m": "G", "lat": "-22", "lon": 166.0}}, "bad_value"),
    ({"fix": {"m": "G", "lat": True, "lon": 166.0}}, "bad_value"),
    ({"fix": {"m": "X"}}, "bad_value"),
    ({"fix": {"m": "C", "lat": 1.0, "lon": 2.0}}, "bad_value"),
    ({"fix": {"m": "G", "lat": 1.0, "lon": 2.0, "acc": -1}}, "bad_value"),
    ({"fix": {"m": "G", "lat": 1.0, "lon": 2.0, "t": 5}}, "bad_value"),
    ({"fix": []}, "bad_value"),
    ({"cell": {"rat": "5G", "mcc": 546, "mnc": 1, "lac": 1, "ci": 1}}, "bad_value"),
    ({"cell": {"rat": "LTE", "mcc": 5460, "mnc": 1, "lac": 1, "ci": 1}}, "bad_value"),
    ({"cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": -1, "ci": 1}}, "bad_value"),
    ({"cell": "LTE"}, "bad_value"),
    ({"bat": -5}, "bad_value"),
    ({"bat": 3.9}, "bad_value"),
    ({"csq": 50}, "bad_value"),
    ({"fw": ""}, "bad_value"),
    ({"fw": "1.0\n"}, "bad_value"),
    ({"ch": {"call": "ringing"}}, "bad_value"),
    ({"ch": {"sms": "lost"}}, "bad_value"),
    ({"cmd": -1}, "bad_value"),
])
def test_each_bad_input_class_is_refused_with_its_code(changes, code):
    with pytest.raises(MessageRefused) as refused:
        check(base(**changes))
    assert refused.value.code == code
    assert refused.value.status == 400
    assert refused.value.detail


def test_now_defaults_to_the_clock():
    body = base(t=int(time.time()), at=int(time.time()))
    assert validate(parse_envelope(json.dumps(body).encode())).t == body["t"]


def test_heartbeat_needs_no_aid():
    message = check(base(type="heartbeat", aid=..., ch=..., at=...))
    assert message.aid is None and message.type == "heartbeat"
