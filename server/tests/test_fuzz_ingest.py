"""Fuzz the ingest endpoint (hypothesis): thousands of malformed requests, no 5xx,
and no rows anywhere except the security log.

The requests are built around a real device so that many of them get past the
signature (correctly signed garbage reaches the validation steps). SQLite only:
the pipeline is the same on PostgreSQL and the fuzzing budget is better spent on
cases than on a second backend.
"""

import json
import string

import pytest
from dbcheck import message_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tgd_server import db
from tgd_server.models import Device

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=False), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
KEYS = ["v", "dev", "seq", "type", "t", "aid", "at", "fix", "cell", "bat", "csq", "fw", "ch",
        "cmd"]


def valid_message(dev: str) -> dict:
    return {"v": 1, "dev": dev, "seq": 5, "type": "alarm", "t": 1795678200, "aid": "3fa9c01b",
            "at": 1795678199, "fix": {"m": "G", "lat": -22.2, "lon": 166.4, "acc": 8},
            "cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20513},
            "bat": 3987, "csq": 21, "fw": "1.0.0", "ch": {"call": "dialing", "sms": "pending"}}


@st.composite
def broken_message(draw, dev: str) -> dict:
    """A valid message with one to three fields broken (wrong value, dropped, or added)."""
    message = valid_message(dev)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add", "nested"]))
        key = draw(st.sampled_from(KEYS))
        if action == "replace":
            message[key] = draw(json_value)
        elif action == "drop":
            message.pop(key, None)
        elif action == "add":
            message[draw(st.text(string.ascii_letters, min_size=1, max_size=6))] = draw(json_value)
        else:
            sub = draw(st.sampled_from(["fix", "cell", "ch"]))
            if isinstance(message.get(sub), dict):
                message[sub][draw(st.sampled_from(["m", "lat", "lon", "acc", "t", "rat", "mcc",
                                                   "lac", "ci", "call", "sms", "x"]))] = \
                    draw(json_value)
    return message


def is_acceptable(message: dict, dev: str) -> bool:
    """Whether the ingest core may accept it (then it is not a malformed request)."""
    from tgd_server.message import MessageRefused, parse_envelope, validate
    try:
        validate(parse_envelope(json.dumps(message).encode()))
    except MessageRefused:
        return False
    return message.get("dev") == dev


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_fuzz_ingest_endpoint(app, client, handset):
    statuses = {}

    @settings(max_examples=2200, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def fuzz(data):
        kind = data.draw(st.sampled_from(["signed_broken", "signed_bytes", "unsigned", "headers"]))
        headers = {"X-TGD-Signature": ""}
        content_type = "application/json"
        if kind == "signed_broken":
            message = data.draw(broken_message(handset.device_id))
            if is_acceptable(message, handset.device_id):
                return  # still valid: not a malformed request
            body = json.dumps(message, separators=(",", ":")).encode()
            headers["X-TGD-Signature"] = handset.sign(body)
        elif kind == "signed_bytes":
            body = data.draw(st.binary(max_size=300))
            headers["X-TGD-Signature"] = handset.sign(body)
        elif kind == "unsigned":
            body = json.dumps(data.draw(json_value)).encode()
            headers["X-TGD-Signature"] = data.draw(st.text(
                alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=70))
        else:
            body = data.draw(st.binary(max_size=3000))
            headers["X-TGD-Signature"] = data.draw(
                st.text(alphabet=string.hexdigits, min_size=0, max_size=64))
            content_type = data.draw(st.sampled_from(
                ["application/json", "text/plain", "", "application/json; charset=utf-8",
                 "multipart/form-data"]))
        if not headers["X-TGD-Signature"]:
            del headers["X-TGD-Signature"]
        response = client.post("/api/v1/device/messages", data=body, headers=headers,
                               content_type=content_type or None)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.get_data(as_text=True)
        assert 400 <= response.status_code < 500
        answer = response.get_json()
        assert answer["ok"] is False and answer["error"]

    fuzz()
    assert sum(statuses.values()) > 2000
    assert set(message_rows(app).values()) == {0}, message_rows(app)
    with app.app_context():
        assert db.get_session().scalar(select(Device.seq_high)) == 0
    print("fuzz statuses", statuses)
