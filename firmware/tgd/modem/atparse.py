# Pure parsers of SIM7600 response lines (reference: sim7600-at.md).
# Each takes one decoded line and returns a value, or None when the line is malformed:
# a parser never raises, so a corrupt line from the UART is skipped, never fatal.
# Conventions: an empty dict {} means "a valid line that says there is nothing"
# (no service, no fix); times are Unix seconds UTC; coordinates are computed in
# integer micro-degrees (an ESP32 float is single precision) and also given as floats.

from micropython import const

_ACC_PER_HDOP_M = const(5)
_MIN_ACC_M = const(5)
_CGPSINFO_ACC_M = const(25)  # CGPSINFO gives no HDOP: a conservative radius

_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _safe(parser):
    # Wraps a parser so that any surprise in a malformed line yields None.
    def wrapped(line):
        try:
            return parser(line)
        except Exception:  # noqa: BLE001 - malformed input must never stop the firmware
            return None

    return wrapped


def split_fields(text):
    """Split on commas outside double quotes; quotes are kept (see unquote)."""
    out = []
    start = 0
    quoted = False
    for i in range(len(text)):
        c = text[i]
        if c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


def unquote(field):
    if len(field) >= 2 and field[0] == '"' and field[-1] == '"':
        return field[1:-1]
    return field


def _body(line, prefix):
    # The text after "<prefix>" (e.g. "+CSQ:"), or None when the line is something else.
    if not line.startswith(prefix):
        raise ValueError(prefix)
    return line[len(prefix):].strip()


def _int(text, lo, hi):
    v = int(text)
    if v < lo or v > hi:
        raise ValueError(text)
    return v


def unix_seconds(year, month, day, hour, minute, second):
    """Civil UTC date and time to Unix seconds (integer arithmetic, any epoch-less port)."""
    if month < 1 or month > 12 or day < 1 or day > _DAYS_IN_MONTH[month - 1]:
        raise ValueError("date")
    if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        raise ValueError("date")
    if hour > 23 or minute > 59 or second > 59 or min(hour, minute, second) < 0:
        raise ValueError("time")
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


def _decimal_e6(text):
    # "41.475467" -> 41475467 (value times 10^6), without going through a float.
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    dot = text.find(".")
    if dot < 0:
        whole, frac = text, ""
    else:
        whole, frac = text[:dot], text[dot + 1:]
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(text)
    frac = (frac + "000000")[:6]
    v = int(whole) * 1000000 + int(frac)
    return -v if neg else v


def _nmea_deg_e6(text, hemi, max_deg):
    # "ddmm.mmmmmm" (lat) or "dddmm.mmmmmm" (lon) and N/S/E/W -> signed micro-degrees.
    dot = text.find(".")
    if dot < 3:
        raise ValueError(text)
    deg = _int(text[:dot - 2], 0, max_deg)
    minutes_e6 = _decimal_e6(text[dot - 2:])
    if minutes_e6 >= 60000000:
        raise ValueError(text)
    v = deg * 1000000 + (minutes_e6 + 30) // 60
    if v > max_deg * 1000000:
        raise ValueError(text)
    if hemi in ("S", "W"):
        return -v
    if hemi in ("N", "E"):
        return v
    raise ValueError(hemi)


def _date_time(date, utc):
    # GNSS "ddmmyy" and "hhmmss.s" -> Unix seconds UTC.
    if len(date) != 6 or not date.isdigit() or len(utc) < 6 or not utc[:6].isdigit():
        raise ValueError(date)
    return unix_seconds(2000 + int(date[4:6]), int(date[2:4]), int(date[0:2]),
                        int(utc[0:2]), int(utc[2:4]), int(utc[4:6]))


def _fix(lat_e6, lon_e6, t, alt, acc):
    return {"lat": lat_e6 / 1000000, "lon": lon_e6 / 1000000, "lat_e6": lat_e6,
            "lon_e6": lon_e6, "t": t, "alt": alt, "acc": acc}


def _alt(text):
    # Altitude in whole metres, or None when absent.
    if not text:
        return None
    return _round_div(_decimal_e6(text), 1000000)


def _round_div(value, divisor):
    # Integer division rounding half away from zero (-1006 / 10 -> -101).
    if value < 0:
        return -((-value + divisor // 2) // divisor)
    return (value + divisor // 2) // divisor


def _cell_number(text, hex_default):
    # TAC/LAC "0x19C9", "0X19c9" or bare hex.
    t = text
    if t[:2] in ("0x", "0X"):
        t = t[2:]
    return int(t, 16) if hex_default else int(t)


@_safe
def parse_cpsi(line):
    """`+CPSI:` -> {"rat","mcc","mnc","lac","ci"[,"sig"]}; {} for NO SERVICE."""
    f = split_fields(_body(line, "+CPSI:"))
    rat = f[0]
    if rat == "NO SERVICE":
        return {}
    if rat not in ("LTE", "GSM", "WCDMA") or len(f) < 5:
        return None
    mcc_mnc = f[2].split("-")
    if len(mcc_mnc) != 2:
        return None
    cell = {
        "rat": rat,
        "mcc": _int(mcc_mnc[0], 1, 999),
        "mnc": _int(mcc_mnc[1], 0, 999),
        "lac": _cell_number(f[3], True),
        "ci": int(f[4]),
    }
    if cell["lac"] < 0 or cell["lac"] > 0xFFFF or cell["ci"] < 0 or cell["ci"] > 0xFFFFFFF:
        return None
    if rat == "LTE" and len(f) >= 12:
        # RSRP in tenths of dBm: -1006 is -100.6 dBm.
        rsrp = int(f[11])
        cell["sig"] = _round_div(rsrp, 10)
    elif rat == "GSM" and len(f) >= 7:
        cell["sig"] = int(f[6])  # RxLev in dBm
    # WCDMA: the units of RSCP/RxLev are not confirmed; the signal is left out.
    return cell


@_safe
def parse_cgnssinfo(line):
    """`+CGNSSINFO:` -> fix dict (lat, lon, lat_e6, lon_e6, t, alt, acc); {} without fix."""
    f = split_fields(_body(line, "+CGNSSINFO:"))
    if not any(f):
        return {}
    # Locate the N/S field: firmware versions differ in how many satellite counts precede it.
    i = 0
    while i + 2 < len(f) and not (f[i] in ("N", "S") and f[i + 2] in ("E", "W")):
        i += 1
    if i < 1 or i + 9 >= len(f):
        return None
    lat = _nmea_deg_e6(f[i - 1], f[i], 90)
    lon = _nmea_deg_e6(f[i + 1], f[i + 2], 180)
    t = _date_time(f[i + 3], f[i + 4])
    hdop_e6 = _decimal_e6(f[i + 9]) if f[i + 9] else None
    acc = _CGPSINFO_ACC_M
    if hdop_e6 is not None:
        acc = max(_MIN_ACC_M, (hdop_e6 * _ACC_PER_HDOP_M + 500000) // 1000000)
    return _fix(lat, lon, t, _alt(f[i + 5]), acc)


@_safe
def parse_cgpsinfo(line):
    """`+CGPSINFO:` -> fix dict like parse_cgnssinfo (acc is a default: no HDOP); {} without fix."""
    f = split_fields(_body(line, "+CGPSINFO:"))
    if not any(f):
        return {}
    if len(f) < 7:
        return None
    lat = _nmea_deg_e6(f[0], f[1], 90)
    lon = _nmea_deg_e6(f[2], f[3], 180)
    t = _date_time(f[4], f[5])
    return _fix(lat, lon, t, _alt(f[6]), _CGPSINFO_ACC_M)


@_safe
def parse_clcc(line):
    """`+CLCC: id,dir,stat,mode,mpty[,"number",type]` -> (id, dir, stat, number or "")."""
    f = split_fields(_body(line, "+CLCC:"))
    if len(f) < 5:
        return None
    number = unquote(f[5]) if len(f) > 5 else ""
    return (_int(f[0], 0, 99), _int(f[1], 0, 1), _int(f[2], 0, 7), number)


@_safe
def parse_registration(line):
    """+CREG/+CGREG/+CEREG, query answer or URC -> (stat, lac, ci, act); None where absent.

    The query answer starts with <n> (`+CREG: 2,1,"00C3","B2A1"`); the URC does not
    (`+CREG: 1,"00C3","B2A1"` or `+CREG: 1`). The second field tells them apart.
    """
    colon = line.find(":")
    if line[:colon] not in ("+CREG", "+CGREG", "+CEREG"):
        return None
    f = split_fields(line[colon + 1:].strip())
    if len(f) == 1 or (len(f) >= 3 and f[1].startswith('"')):
        rest = f  # URC: stat first
    else:
        _int(f[0], 0, 2)  # <n>
        rest = f[1:]
    stat = _int(rest[0], 0, 11)
    lac = ci = act = None
    if len(rest) >= 3:
        lac = int(unquote(rest[1]), 16)
        ci = int(unquote(rest[2]), 16)
    if len(rest) >= 4 and rest[3]:
        act = _int(rest[3], 0, 15)  # 0 GSM, 2 UTRAN, 7 E-UTRAN ...
    return (stat, lac, ci, act)


def act_rat(act, domain):
    """AcT (or, without one, the +CEREG domain) -> "LTE", "WCDMA", "GSM" or "unknown"."""
    if act == 7 or (act is None and domain == "+CEREG"):
        return "LTE"
    if act in (2, 4, 5, 6):
        return "WCDMA"
    if act in (0, 1, 3):
        return "GSM"
    return "unknown"


def is_registered(stat):
    """1 home, 5 roaming; 8 (emergency only) is not registered for SMS or data."""
    return stat in (1, 5)


@_safe
def parse_csq(line):
    """`+CSQ: 27,99` -> (rssi, ber)."""
    f = split_fields(_body(line, "+CSQ:"))
    rssi = _int(f[0], 0, 99)
    if 31 < rssi < 99:
        return None
    return (rssi, _int(f[1], 0, 99))


@_safe
def parse_cbc(line):
    """`+CBC: 3.591V` -> 3591 (millivolts)."""
    f = split_fields(_body(line, "+CBC:"))
    v = f[-1]
    if not v.endswith("V"):
        return None
    mv = _decimal_e6(v[:-1]) // 1000
    if mv < 0 or mv > 10000:
        return None
    return mv


@_safe
def parse_cmgs(line):
    """`+CMGS: 12` -> message reference 12."""
    return _int(_body(line, "+CMGS:"), 0, 255)


@_safe
def parse_cds(line):
    """`+CDS: fo,mr,"ra",tora,"scts","dt",st` -> (mr, st); st 0 delivered."""
    f = split_fields(_body(line, "+CDS:"))
    if len(f) < 7:
        return None
    return (_int(f[1], 0, 255), _int(f[6], 0, 255))


@_safe
def parse_httpaction(line):
    """`+HTTPACTION: 1,200,57` -> (method, status, length)."""
    f = split_fields(_body(line, "+HTTPACTION:"))
    if len(f) != 3:
        return None
    return (_int(f[0], 0, 4), _int(f[1], 100, 999), _int(f[2], 0, 0x7FFFFFFF))


@_safe
def parse_cgps(line):
    """`+CGPS: 1,1` -> True (GNSS on); `+CGPS: 0` -> False."""
    f = split_fields(_body(line, "+CGPS:"))
    return _int(f[0], 0, 1) == 1


# -- identity, network clock, received SMS, delivery states, HTTP reads ---------------
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


@_safe
def parse_cpin(line):
    """`+CPIN: READY` -> "READY"; also "SIM PIN", "SIM PUK", ... as the modem says it."""
    v = _body(line, "+CPIN:")
    return v if v else None
