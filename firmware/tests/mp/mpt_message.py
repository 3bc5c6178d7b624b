# Device message bodies and their signature (docs/protocol.md).
import json

from tgd import message
from tgd.hmac256 import hmac_sha256_hex
from binascii import unhexlify

KEY = "00112233445566778899aabbccddeeff" * 2
CELL = {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20513, "sig": -95}
EXAMPLE = (b'{"v":1,"dev":"NC0001","seq":1201,"type":"alarm","t":1795678200,"aid":"3fa9c01b",'
           b'"at":1795678199,"fix":{"m":"C"},"cell":{"rat":"LTE","mcc":546,"mnc":1,"lac":4352,'
           b'"ci":20513,"sig":-95},"bat":3987,"csq":21,"fw":"1.0.0","ch":{"call":"dialing",'
           b'"sms":"pending"}}')


def test_protocol_example_byte_for_byte():
    body = message.build("alarm", "NC0001", 1201, 1795678200, "1.0.0", {"m": "C"}, CELL, 3987, 21,
                         aid="3fa9c01b", at=1795678199, call="dialing", sms="pending")
    assert body == EXAMPLE, body


def test_gnss_fix_and_nulls():
    fix = {"m": "G", "lat": -22.276312, "lon": 166.457181, "acc": 3, "t": 1795678190}
    body = message.build("position", "NC0001", 7, None, "1.0.0", fix, None, None, None,
                         aid="3fa9c01b", call="active", sms="sent")
    obj = json.loads(body)
    assert obj["fix"] == {"m": "G", "lat": -22.276312, "lon": 166.457181, "acc": 5,
                          "t": 1795678190}
    assert obj["t"] is None and obj["cell"] is None and obj["bat"] is None
    assert "at" not in obj  # only alarm messages carry the trigger time
    assert b" " not in body


def test_heartbeat_has_no_alarm_keys():
    body = message.build("heartbeat", "NC0001", 8, 1795678200, "1.0.0", None, CELL, 4000, 20)
    obj = json.loads(body)
    assert obj["fix"] == {"m": "N"}
    assert "aid" not in obj and "ch" not in obj and "at" not in obj
    assert sorted(obj) == ["bat", "cell", "csq", "dev", "fix", "fw", "seq", "t", "type", "v"]


def test_refuses_bad_values():
    for kw in ({"mtype": "panic"}, {"seq": 0}, {"seq": 2 ** 31}):
        args = {"mtype": "heartbeat", "seq": 5}
        args.update(kw)
        try:
            message.build(args["mtype"], "NC0001", args["seq"], 1, "1", None, None, 1, 1)
        except message.MessageError:
            continue
        raise AssertionError("accepted %r" % kw)
    try:
        message.build("alarm", "NC0001", 1, 1, "1", None, None, 1, 1, aid="00000000",
                      call="ringing", sms="pending")
    except message.MessageError:
        pass
    else:
        raise AssertionError("accepted a bad call state")


def test_signature_is_hmac_of_exact_body():
    sig = message.sign(KEY, EXAMPLE)
    assert sig == hmac_sha256_hex(unhexlify(KEY), EXAMPLE)
    assert len(sig) == 64 and sig == sig.lower()
    assert message.sign(KEY, EXAMPLE + b" ") != sig


def test_answers():
    ok = message.parse_answer(b'{"ok":true,"seq":1,"alarm":{"aid":"3fa9c01b","state":"received"}}')
    assert message.answer_ok(200, ok)
    assert not message.answer_ok(500, ok)
    assert not message.answer_ok(200, message.parse_answer(b'{"ok":false}'))
    assert not message.answer_ok(200, message.parse_answer(b"<html>"))
    assert message.parse_answer(b"[1]") is None
