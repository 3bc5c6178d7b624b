# The SIM7600 answers the firmware reads once per boot or seldom (identity,
# network clock, received SMS, delivery states), apart from atparse.py so that their
# code is in the heap only while used: callers import this module for the call and
# drop it after (sys.modules.pop). Same conventions as atparse.py: a parser never
# raises, a malformed line gives None. Also the AT engine's own rare paths (at.py):
# the quiet wait after a command timed out.
import asyncio
import time

from micropython import const

from atparse import _body, _int, _safe, split_fields, unix_seconds, unquote

_MIN_YEAR = const(2020)  # a modem clock before this was never set by the network
_MAX_YEAR = const(2079)


@_safe
def parse_cclk(line):
    """`+CCLK: "26/11/26,19:00:00+44"` (local time, zone in quarter hours) -> Unix seconds UTC.

    None also when the clock was never set by the network (a year before 2020).
    """
    s = unquote(_body(line, "+CCLK:"))
    if len(s) != 20 or s[2] != "/" or s[5] != "/" or s[8] != "," or s[17] not in "+-":
        return None
    year = 2000 + int(s[0:2])
    if year < _MIN_YEAR or year > _MAX_YEAR:
        return None
    local = unix_seconds(year, int(s[3:5]), int(s[6:8]), int(s[9:11]), int(s[12:14]),
                         int(s[15:17]))
    quarters = _int(s[18:20], 0, 96)
    offset = quarters * 900
    return local - offset if s[17] == "+" else local + offset


@_safe
def parse_cmti(line):
    """`+CMTI: "SM",3` -> ("SM", 3)."""
    f = split_fields(_body(line, "+CMTI:"))
    if len(f) != 2:
        return None
    return (unquote(f[0]), _int(f[1], 0, 65535))


def delivery_state(st):
    """TP-Status -> "delivered" (0..31), "pending" (32..63: still trying) or "failed"."""
    if st < 32:
        return "delivered"
    if st < 64:
        return "pending"
    return "failed"


@_safe
def parse_cmgr(line):
    """`+CMGR: "REC UNREAD","<oa>",,"<scts>"` -> (stat, oa, scts); the text is the next line."""
    f = split_fields(_body(line, "+CMGR:"))
    if len(f) < 2:
        return None
    return (unquote(f[0]), unquote(f[1]), unquote(f[3]) if len(f) > 3 else "")


@_safe
def parse_httpread(line):
    """`+HTTPREAD: DATA,15` -> ("DATA", 15); `+HTTPREAD: LEN,15` -> ("LEN", 15); `+HTTPREAD: 0` -> ("END", 0)."""
    f = split_fields(_body(line, "+HTTPREAD:"))
    if len(f) == 1:
        return ("END", _int(f[0], 0, 0x7FFFFFFF))
    if len(f) == 2 and f[0] in ("DATA", "LEN"):
        return (f[0], _int(f[1], 0, 0x7FFFFFFF))
    return None


@_safe
def parse_iccid(line):
    """`+ICCID: 898600700907A6019125` -> the ICCID (may hold hex letters)."""
    v = _body(line, "+ICCID:")
    if len(v) < 18 or len(v) > 22:
        return None
    for c in v:
        if not ("0" <= c <= "9" or "A" <= c <= "F" or "a" <= c <= "f"):
            return None
    return v


@_safe
def parse_imei(line):
    """A bare 15-digit line (answer of AT+CGSN) -> the IMEI."""
    v = line.strip()
    if len(v) != 15 or not v.isdigit():
        return None
    return v


# -- the AT engine's rare paths (at.py) --------------------------------------------
_QUIET_MS = const(300)  # after a timeout: the line must be this quiet before the next command
_QUIET_MAX_MS = const(2000)


async def wait_quiet(at):
    # The late answer of a timed-out command must not end the next one: wait until
    # nothing has come for _QUIET_MS (it is dropped as stale, nothing being pending).
    since = at._timed_out
    at._timed_out = None
    waited = 0
    while waited < _QUIET_MAX_MS:
        last = at.last_rx_ms
        if last is not None and time.ticks_diff(last, since) > 0:
            since = last
        if time.ticks_diff(time.ticks_ms(), since) >= _QUIET_MS:
            return
        await asyncio.sleep_ms(50)
        waited += 50

