"""Strict parser (and builder) for Advanced Mobile Location v1 SMS payloads.

The rules are the strictest public parser's (GridGears aml-sms-parser), made
stricter where it was lenient (it tolerated missing keys and any double):

- at most 160 characters (one GSM 7-bit SMS);
- `key=value` pairs separated by `;`, the `A"ML` header first;
- exactly the 12 keys A"ML lt lg rd top lc pm si ei mcc mnc ml, each once;
- `ml` equal to the real length of the whole text;
- version 1 only; `top` is yyyyMMddHHmmss UTC; `lc` an integer percent;
  `pm` one of G W C N; coordinates signed decimals within range.

Pure functions, no I/O: `parse_aml(text) -> AmlMessage` or `AmlError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

HEADER_KEY = 'A"ML'
KEYS = (HEADER_KEY, "lt", "lg", "rd", "top", "lc", "pm", "si", "ei", "mcc", "mnc", "ml")
MAX_SMS_CHARS = 160
METHODS = {"G": "GNSS", "W": "Wi-Fi", "C": "cell", "N": "none"}

_DECIMAL = re.compile(r"[+-]?\d{1,3}(\.\d{1,10})?")
_UNSIGNED = re.compile(r"\d{1,9}")
_RADIUS = re.compile(r"\d{1,7}(\.\d{1,3})?")
_TOP = re.compile(r"\d{14}")
_IMSI = re.compile(r"\d{15}")
_IMEI = re.compile(r"\d{15,16}")
_MCC = re.compile(r"\d{3}")
_MNC = re.compile(r"\d{2,3}")


class AmlError(ValueError):
    """The text is not a valid AML v1 message. `code` is stable, `detail` is for people.

    Codes: not_aml, too_long, malformed, unknown_key, missing_key, duplicate_key,
    bad_version, bad_length, bad_value.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class AmlMessage:
    version: int
    lat: float
    lon: float
    radius_m: int
    time_of_positioning: datetime  # aware, UTC
    confidence_pct: int
    method: str  # G W C N
    imsi: str
    imei: str
    mcc: str
    mnc: str
    length: int

    @property
    def has_position(self) -> bool:
        """pm=N is Google's "no position" convention (lt/lg are zeros then)."""
        return self.method != "N"


def looks_like_aml(text: str) -> bool:
    """True when the text claims to be AML (starts with the header), valid or not."""
    return text.startswith(HEADER_KEY + "=")


def parse_aml(text: str) -> AmlMessage:
    """Parse one AML v1 SMS text, strictly. Raises AmlError with the first problem found."""
    if not looks_like_aml(text):
        raise AmlError("not_aml", "the text does not start with the A\"ML= header")
    if len(text) > MAX_SMS_CHARS:
        raise AmlError("too_long", f"{len(text)} characters, at most {MAX_SMS_CHARS}")
    fields = _split_pairs(text)
    _check_keys(fields)
    version = _match(fields, HEADER_KEY, _UNSIGNED)
    if int(version) != 1:
        raise AmlError("bad_version", f"version {version}, only 1 is supported")
    declared = int(_match(fields, "ml", _UNSIGNED))
    if declared != len(text):
        raise AmlError("bad_length", f"ml={declared} but the message has {len(text)} characters")

    lat = float(_match(fields, "lt", _DECIMAL))
    lon = float(_match(fields, "lg", _DECIMAL))
    if not -90.0 <= lat <= 90.0:
        raise AmlError("bad_value", f"lt={fields['lt']} is not a latitude")
    if not -180.0 <= lon <= 180.0:
        raise AmlError("bad_value", f"lg={fields['lg']} is not a longitude")
    confidence = int(_match(fields, "lc", _UNSIGNED))
    if confidence > 100:
        raise AmlError("bad_value", f"lc={confidence} is not a percentage")
    method = fields["pm"]
    if method not in METHODS:
        raise AmlError("bad_value", f"pm={method!r} is not one of G W C N")
    return AmlMessage(
        version=1,
        lat=lat,
        lon=lon,
        radius_m=_radius(fields, method),
        time_of_positioning=_parse_top(_match(fields, "top", _TOP)),
        confidence_pct=confidence,
        method=method,
        imsi=_match(fields, "si", _IMSI),
        imei=_match(fields, "ei", _IMEI),
        mcc=_match(fields, "mcc", _MCC),
        mnc=_match(fields, "mnc", _MNC),
        length=declared,
    )


def build_aml(
    *,
    lat: float,
    lon: float,
    radius_m: int,
    time_of_positioning: datetime,
    confidence_pct: int,
    method: str,
    imsi: str,
    imei: str,
    mcc: str,
    mnc: str,
) -> str:
    """Compose an AML v1 text with the right `ml` (the handset's format, for tests and tools)."""
    if method not in METHODS:
        raise AmlError("bad_value", f"pm={method!r} is not one of G W C N")
    body = (
        f'{HEADER_KEY}=1;lt={lat:+.5f};lg={lon:+.5f};rd={int(radius_m)};'
        f"top={time_of_positioning.astimezone(UTC):%Y%m%d%H%M%S};lc={int(confidence_pct)};"
        f"pm={method};si={imsi};ei={imei};mcc={mcc};mnc={mnc};ml="
    )
    # `ml` counts its own digits: the length settles after at most two rounds.
    length = len(body) + 3
    while len(body) + len(str(length)) != length:
        length = len(body) + len(str(length))
    text = body + str(length)
    parse_aml(text)  # never hand out a message our own parser refuses
    return text


def _radius(fields: dict[str, str], method: str) -> int:
    """`rd` in metres; Google's handsets write `rd=N` when they have no position (pm=N)."""
    if method == "N" and fields["rd"] == "N":
        return 0
    return round(float(_match(fields, "rd", _RADIUS)))


def _split_pairs(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for position, pair in enumerate(text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AmlError("malformed", f"field {position + 1} ({pair[:20]!r}) is not key=value")
        if position == 0 and key != HEADER_KEY:
            raise AmlError("malformed", "the A\"ML header must come first")
        if key not in KEYS:
            raise AmlError("unknown_key", f"unknown key {key[:20]!r}")
        if key in fields:
            raise AmlError("duplicate_key", f"key {key!r} appears twice")
        fields[key] = value
    return fields


def _check_keys(fields: dict[str, str]) -> None:
    missing = [key for key in KEYS if key not in fields]
    if missing:
        raise AmlError("missing_key", "missing " + ", ".join(missing))


def _match(fields: dict[str, str], key: str, pattern: re.Pattern[str]) -> str:
    value = fields[key]
    if not pattern.fullmatch(value):
        raise AmlError("bad_value", f"{key}={value[:20]!r} is not in the expected format")
    return value


def _parse_top(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise AmlError("bad_value", f"top={value} is not a valid yyyyMMddHHmmss time") from None
