# AML v1 SMS text (ETSI TS 103 625; shared/reference/aml.md): exactly 12 keys,
# `ml` = the length of the whole text, one SMS (< 160 characters). The strict decoder
# the tests check it with is tests/mp/aml_check.py (not on the handset).
from micropython import const
from tgd.unixtime import stamp

_MAX_LEN = const(159)


class AmlError(Exception):
    pass


def _signed(value, int_digits):
    sign = "-" if value < 0 else "+"
    return sign + "%.5f" % abs(value)


def _digits(s, low, high):
    s = str(s)
    return s.isdigit() and low <= len(s) <= high


def imsi_placeholder(mcc, mnc):
    """15 digits: the network part, the subscriber part zeroed (as Google's AML does)."""
    s = "%03d%02d" % (mcc or 0, mnc or 0)
    return s + "0" * (15 - len(s))


def encode(fix, imei, mcc, mnc, now, imsi=None, confidence=68):
    """Return the AML text for `fix` ({"m":"G","lat","lon","acc","t"} or None).

    `now` (Unix s) stands in for `top` when the fix has no time. A fix without a
    position (cell only, none) is sent as method N, as the handset does not locate
    cells itself.
    """
    if not _digits(imei, 15, 16):
        raise AmlError("imei must be 15 or 16 digits")
    si = imsi if imsi is not None else imsi_placeholder(mcc, mnc)
    if not _digits(si, 15, 15):
        raise AmlError("imsi must be 15 digits")
    if fix and fix.get("m") == "G" and fix.get("lat") is not None:
        lat, lon = fix["lat"], fix["lon"]
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise AmlError("position out of range")
        pos = "lt=%s;lg=%s;rd=%d" % (_signed(lat, 2), _signed(lon, 3),
                                      max(5, int(fix.get("acc") or 5)))
        lc, pm = confidence, "G"
        top = fix.get("t") or now
    else:
        pos = "lt=+00.00000;lg=+000.00000;rd=0"
        lc, pm, top = 0, "N", now
    if top is None:
        top = 0
    text = 'A"ML=1;%s;top=%s;lc=%d;pm=%s;si=%s;ei=%s;mcc=%03d;mnc=%02d;ml=' % (
        pos, stamp(top), lc, pm, si, imei, mcc or 0, mnc or 0)
    # ml counts itself: find the length whose digits make the text that long.
    n = len(text) + 1
    while len(text) + len(str(n)) != n:
        n += 1
    text += str(n)
    if len(text) > _MAX_LEN:
        raise AmlError("AML text over one SMS")
    return text
