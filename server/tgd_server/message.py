"""Parsing and validating a device message (docs/protocol.md), pure functions.

`parse_envelope` reads the JSON and checks which keys are there;
`validate` checks every value and returns a typed `DeviceMessage`.
Each failure is a `MessageRefused(status, code, detail)`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

MAX_BODY_BYTES = 2048
MIN_TIME = 1577836800  # 2020-01-01T00:00:00Z: a clock before this is not set
MAX_AHEAD_S = 86400
SEQ_MAX = 2**31 - 1

TYPES = ("alarm", "position", "heartbeat", "low_battery", "last_gasp", "test")
TYPES_WITH_ALARM = ("alarm", "position")
CALL_STATES = ("idle", "dialing", "alerting", "active", "ended", "failed")
SMS_STATES = ("pending", "sent", "delivered", "failed")
RATS = ("LTE", "WCDMA", "GSM")

ALWAYS_REQUIRED = ("v", "dev", "seq", "type", "t", "fix", "cell", "bat", "csq", "fw")
KNOWN_KEYS = frozenset(ALWAYS_REQUIRED + ("aid", "at", "ch", "cmd", "ota"))
FIX_KEYS = frozenset(("m", "lat", "lon", "acc", "t"))
CELL_KEYS = frozenset(("rat", "mcc", "mnc", "lac", "ci", "sig"))
CH_KEYS = frozenset(("call", "sms", "press"))
OTA_KEYS = frozenset(("slot", "res", "ver"))
OTA_SLOTS = ("a", "b")
OTA_RESULTS = ("ok", "rolled_back", "bad_sig", "bad_hash", "selftest_failed", "deferred",
               "downloading", "none")
PRESS_MAX = 1000  # holds of one alarm (ch.press), the trigger included

DEVICE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
AID_RE = re.compile(r"[0-9a-f]{8}")


class MessageRefused(Exception):
    """A refused message: the HTTP status, the protocol's error code, a clear detail."""

    def __init__(self, status: int, code: str, detail: str, **extra) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


def _bad(detail: str) -> MessageRefused:
    return MessageRefused(400, "bad_value", detail)


@dataclass(frozen=True)
class Fix:
    method: str  # G, C, N
    lat: float | None = None
    lon: float | None = None
    acc_m: int | None = None
    t: int | None = None


@dataclass(frozen=True)
class DeviceMessage:
    dev: str
    seq: int
    type: str
    t: int | None
    fix: Fix
    cell: dict | None
    bat: int | None
    csq: int | None
    fw: str
    aid: str | None = None
    at: int | None = None
    call_state: str | None = None
    sms_state: str | None = None
    cmd: int | None = None
    press: int | None = None  # ch.press: holds of the alarm so far, the trigger included
    ota: OtaReport | None = None  # the update state (issue 17), optional


@dataclass(frozen=True)
class OtaReport:
    slot: str | None
    res: str | None
    ver: str | None


def parse_envelope(body: bytes) -> dict:
    """The JSON object with its required keys present and no unknown key."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageRefused(400, "malformed_json", f"body is not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageRefused(400, "malformed_json", "body is not a JSON object")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise MessageRefused(400, "unknown_field", f"unknown keys: {', '.join(unknown)[:200]}")
    missing = [k for k in ALWAYS_REQUIRED if k not in data]
    if data.get("type") in TYPES_WITH_ALARM:
        missing += [k for k in ("aid", "ch") if k not in data]
    if data.get("type") == "alarm" and "at" not in data:
        missing.append("at")
    if missing:
        raise MessageRefused(400, "missing_field", f"missing keys: {', '.join(missing)}")
    dev = data["dev"]
    if not isinstance(dev, str) or not DEVICE_ID_RE.fullmatch(dev):
        raise _bad("dev must match [A-Za-z0-9_-]{1,32}")
    return data


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and value == value  # not NaN


def _int_in(data: dict, key: str, low: int, high: int, nullable: bool = False,
            where: str = "") -> int | None:
    value = data.get(key)
    if value is None and nullable:
        return None
    if not _is_int(value) or not low <= value <= high:
        raise _bad(f"{where}{key} must be an integer in {low}..{high}"
                   + (" or null" if nullable else ""))
    return value


def _time(data: dict, key: str, now: float, nullable: bool, where: str = "") -> int | None:
    value = data.get(key)
    if value is None and nullable:
        return None
    if not _is_int(value):
        raise _bad(f"{where}{key} must be Unix seconds (integer)" + (" or null" if nullable else ""))
    if value < MIN_TIME:
        raise _bad(f"{where}{key}={value} is before 2020: the clock is not set")
    if value > now + MAX_AHEAD_S:
        raise _bad(f"{where}{key}={value} is more than a day in the future")
    return value


def _fix(raw, now: float) -> Fix:
    if not isinstance(raw, dict):
        raise _bad("fix must be an object")
    unknown = sorted(set(raw) - FIX_KEYS)
    if unknown:
        raise MessageRefused(400, "unknown_field", f"unknown keys in fix: {', '.join(unknown)[:200]}")
    method = raw.get("m")
    if method not in ("G", "C", "N"):
        raise _bad("fix.m must be G, C or N")
    if method == "G":
        for key in ("lat", "lon"):
            if key not in raw:
                raise MessageRefused(400, "missing_field", f"fix.{key} is required for a GNSS fix")
        lat, lon = raw["lat"], raw["lon"]
        if not _is_number(lat) or not -90 <= lat <= 90:
            raise _bad("fix.lat must be a number in -90..90")
        if not _is_number(lon) or not -180 <= lon <= 180:
            raise _bad("fix.lon must be a number in -180..180")
    else:
        if "lat" in raw or "lon" in raw:
            raise _bad(f"fix.lat/lon are only for m=G (m={method})")
        lat = lon = None
    acc = _int_in(raw, "acc", 0, 1_000_000, nullable=True, where="fix.")
    fix_t = _time(raw, "t", now, nullable=True, where="fix.")
    return Fix(method, float(lat) if lat is not None else None,
               float(lon) if lon is not None else None, acc, fix_t)


def _cell(raw) -> dict | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("cell must be an object or null")
    unknown = sorted(set(raw) - CELL_KEYS)
    if unknown:
        raise MessageRefused(400, "unknown_field", f"unknown keys in cell: {', '.join(unknown)[:200]}")
    for key in ("rat", "mcc", "mnc", "lac", "ci"):
        if key not in raw:
            raise MessageRefused(400, "missing_field", f"cell.{key} is required")
    if raw["rat"] not in RATS:
        raise _bad("cell.rat must be LTE, WCDMA or GSM")
    cell = {
        "rat": raw["rat"],
        "mcc": _int_in(raw, "mcc", 0, 999, where="cell."),
        "mnc": _int_in(raw, "mnc", 0, 999, where="cell."),
        "lac": _int_in(raw, "lac", 0, 0xFFFFFF, where="cell."),
        "ci": _int_in(raw, "ci", 0, 0xFFFFFFF, where="cell."),
    }
    if "sig" in raw:
        cell["sig"] = _int_in(raw, "sig", -200, 0, nullable=True, where="cell.")
    return cell


def _channels(data: dict) -> tuple[str | None, str | None, int | None]:
    raw = data.get("ch")
    if raw is None:
        return None, None, None
    if not isinstance(raw, dict):
        raise _bad("ch must be an object")
    unknown = sorted(set(raw) - CH_KEYS)
    if unknown:
        raise MessageRefused(400, "unknown_field", f"unknown keys in ch: {', '.join(unknown)[:200]}")
    call, sms = raw.get("call"), raw.get("sms")
    if call is not None and call not in CALL_STATES:
        raise _bad(f"ch.call must be one of {', '.join(CALL_STATES)}")
    if sms is not None and sms not in SMS_STATES:
        raise _bad(f"ch.sms must be one of {', '.join(SMS_STATES)}")
    press = raw.get("press")
    if press is not None and (not _is_int(press) or not 1 <= press <= PRESS_MAX):
        raise _bad(f"ch.press must be an integer 1..{PRESS_MAX}")
    return call, sms, press


def _ota(raw) -> OtaReport | None:
    """The optional `ota` field: {"slot": "a"|"b", "res": ..., "ver": "<version tried>"}."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("ota must be an object")
    unknown = sorted(set(raw) - OTA_KEYS)
    if unknown:
        raise MessageRefused(400, "unknown_field", f"unknown keys in ota: {', '.join(unknown)[:200]}")
    slot, res, ver = raw.get("slot"), raw.get("res"), raw.get("ver")
    if slot is not None and slot not in OTA_SLOTS:
        raise _bad("ota.slot must be a or b")
    if res is not None and res not in OTA_RESULTS:
        raise _bad(f"ota.res must be one of {', '.join(OTA_RESULTS)}")
    if ver is not None and (not isinstance(ver, str) or not 1 <= len(ver) <= 32 or not ver.isprintable()):
        raise _bad("ota.ver must be a printable string of 1 to 32 characters")
    return OtaReport(slot, res, ver)


def validate(data: dict, now: float | None = None) -> DeviceMessage:
    """Every value of an envelope from `parse_envelope`, checked against protocol.md."""
    now = time.time() if now is None else now
    if data["v"] != 1 or not _is_int(data["v"]):
        raise _bad("v must be 1")
    seq = _int_in(data, "seq", 1, SEQ_MAX)
    if data["type"] not in TYPES:
        raise _bad(f"type must be one of {', '.join(TYPES)}")
    aid = data.get("aid")
    if aid is not None and (not isinstance(aid, str) or not AID_RE.fullmatch(aid)):
        raise _bad("aid must be 8 lowercase hex digits")
    if data["type"] in TYPES_WITH_ALARM and aid is None:
        raise _bad(f"aid is required for type {data['type']}")
    fw = data["fw"]
    if not isinstance(fw, str) or not 1 <= len(fw) <= 32 or not fw.isprintable():
        raise _bad("fw must be a printable string of 1 to 32 characters")
    csq = data["csq"]
    if csq is not None and (not _is_int(csq) or not (0 <= csq <= 31 or csq == 99)):
        raise _bad("csq must be 0..31, 99 or null")
    cmd = data.get("cmd")
    if cmd is not None and (not _is_int(cmd) or not 0 <= cmd <= SEQ_MAX):
        raise _bad("cmd must be a command id (integer)")
    call_state, sms_state, press = _channels(data)
    return DeviceMessage(
        dev=data["dev"],
        seq=seq,
        type=data["type"],
        t=_time(data, "t", now, nullable=True),
        fix=_fix(data["fix"], now),
        cell=_cell(data["cell"]),
        bat=_int_in(data, "bat", 0, 10_000, nullable=True),
        csq=csq,
        fw=fw,
        aid=aid,
        at=_time(data, "at", now, nullable=True) if "at" in data else None,
        call_state=call_state,
        sms_state=sms_state,
        press=press,
        cmd=cmd,
        ota=_ota(data.get("ota")),
    )
