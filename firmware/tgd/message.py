# Device message bodies (docs/protocol.md): compact JSON in a fixed key order,
# signed with HMAC-SHA256 over the exact bytes.
from binascii import unhexlify
import json

from micropython import const

from tgd.hmac256 import hmac_sha256_hex

PROTOCOL_VERSION = 1
MAX_BODY = const(2048)
TYPES = ("alarm", "position", "heartbeat", "low_battery", "last_gasp", "test")
CALL_STATES = ("idle", "dialing", "alerting", "active", "ended", "failed")
SMS_STATES = ("pending", "sent", "delivered", "failed")


class MessageError(Exception):
    pass


def _str(s):
    return json.dumps(s)


def _num(v):
    if v is None:
        return "null"
    return str(int(v))


def _deg(v):
    s = "%.6f" % v
    return s


def fix_json(fix):
    """A fix dict ({"m":"G","lat","lon","acc","t"} or {"m":"C"} / None) as protocol JSON."""
    if not fix or fix.get("m") not in ("G", "C"):
        return '{"m":"N"}'
    if fix["m"] == "C":
        return '{"m":"C"}'
    parts = ['"m":"G"', '"lat":' + _deg(fix["lat"]), '"lon":' + _deg(fix["lon"])]
    if fix.get("acc") is not None:
        parts.append('"acc":%d' % max(5, int(fix["acc"])))
    if fix.get("t") is not None:
        parts.append('"t":%d' % int(fix["t"]))
    return "{" + ",".join(parts) + "}"


def cell_json(cell):
    if not cell or cell.get("rat") not in ("LTE", "WCDMA", "GSM"):
        return "null"
    parts = ['"rat":' + _str(cell["rat"])]
    for k in ("mcc", "mnc", "lac", "ci", "sig"):
        v = cell.get(k)
        if v is not None:
            parts.append('"%s":%d' % (k, int(v)))
    return "{" + ",".join(parts) + "}"


def build(mtype, dev, seq, t, fw, fix, cell, bat, csq, aid=None, at=None,
          call=None, sms=None, cmd=None, press=None, ota=None):
    """Return the body (bytes). Raises MessageError on a value the protocol refuses."""
    if mtype not in TYPES:
        raise MessageError("bad type " + str(mtype))
    if not isinstance(seq, int) or not 1 <= seq <= 0x7FFFFFFF:
        raise MessageError("bad seq")
    parts = ['{"v":1', '"dev":' + _str(dev), '"seq":%d' % seq, '"type":' + _str(mtype),
             '"t":' + _num(t)]
    if aid is not None:
        parts.append('"aid":' + _str(aid))
    if mtype == "alarm":
        parts.append('"at":' + _num(at))
    parts.append('"fix":' + fix_json(fix))
    parts.append('"cell":' + cell_json(cell))
    parts.append('"bat":' + _num(bat))
    parts.append('"csq":' + _num(csq))
    parts.append('"fw":' + _str(fw))
    if ota is not None:  # heartbeats of a handset that was offered an update (ota.report)
        parts.append('"ota":{"slot":%s,"res":%s,"ver":%s}' % (_str(ota["slot"]), _str(ota["res"]),
                                                            _str(ota["ver"])))
    if aid is not None:
        if call not in CALL_STATES or sms not in SMS_STATES:
            raise MessageError("bad channel state")
        ch = '"ch":{"call":%s,"sms":%s' % (_str(call), _str(sms))
        if press is not None and press > 1:
            ch += ',"press":%d' % press  # holds of this alarm, the trigger included
        parts.append(ch + "}")
    if cmd is not None:
        parts.append('"cmd":%d' % cmd)
    body = (",".join(parts) + "}").encode()
    if len(body) > MAX_BODY:
        raise MessageError("body over 2048 bytes")
    return body


def sign(key_hex, body):
    return hmac_sha256_hex(unhexlify(key_hex), body)


def parse_answer(data):
    """The server's answer as a dict, or None when it is not a JSON object."""
    try:
        obj = json.loads(data)
    except (ValueError, TypeError):
        return None
    return obj if isinstance(obj, dict) else None


def answer_ok(status, answer):
    """Delivered: any 2xx whose body says ok:true (docs/protocol.md)."""
    return 200 <= status < 300 and answer is not None and answer.get("ok") is True
