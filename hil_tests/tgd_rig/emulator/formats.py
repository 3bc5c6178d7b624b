"""Pure formatting of the SIM7600's information lines (shared/reference/sim7600-at.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .cells import Cell

# New Caledonia is UTC+11: +44 quarter-hours in +CCLK and SMS time stamps.
NC_ZONE_QUARTERS = 44

CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    30: "no network service",
    50: "Incorrect parameters",
    100: "unknown",
}

CMS_TEXT = {
    300: "ME failure",
    302: "operation not allowed",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    500: "Unknown error",
}


class Continuation(str):
    """A line that follows the previous one directly (the text of +CMGR / +CMGL)."""


def frame(line: str | bytes) -> bytes:
    """One response line, URC or result code as the modem frames it with ATV1."""
    if isinstance(line, Continuation):
        return line.encode("latin-1") + b"\r\n"
    if isinstance(line, str):
        line = line.encode("latin-1")
    return b"\r\n" + line + b"\r\n"


def cme_error(code: int, cmee: int) -> str:
    if cmee == 0:
        return "ERROR"
    if cmee == 2:
        return f"+CME ERROR: {CME_TEXT.get(code, 'unknown')}"
    return f"+CME ERROR: {code}"


def cms_error(code: int, cmee: int) -> str:
    if cmee == 2:
        return f"+CMS ERROR: {CMS_TEXT.get(code, 'Unknown error')}"
    return f"+CMS ERROR: {code}"


def number_type(number: str) -> int:
    """Type of address: 145 international (leading +), 129 otherwise."""
    return 145 if number.startswith("+") else 129


def local_stamp(epoch: float, zone_quarters: int = NC_ZONE_QUARTERS) -> str:
    """`yy/MM/dd,hh:mm:ss±zz` in local time, as +CCLK and SMS time stamps print it."""
    t = time.gmtime(epoch + zone_quarters * 900)
    sign = "+" if zone_quarters >= 0 else "-"
    return time.strftime("%y/%m/%d,%H:%M:%S", t) + f"{sign}{abs(zone_quarters):02d}"


def csq_from_dbm(dbm: float | None) -> int:
    """AT+CSQ rssi: 0 = -113 dBm or less, 2..30 = -109..-53 dBm, 31 = -51 or more, 99 unknown."""
    if dbm is None:
        return 99
    return int(max(0, min(31, (dbm + 113) // 2)))


@dataclass(frozen=True)
class Radio:
    """What the modem measures on its serving cell."""

    cell: Cell
    rsrp_dbm: float

    @property
    def rssi_dbm(self) -> float:
        # Total received power is ~25 dB above the RSRP of one resource element (10 MHz).
        return self.rsrp_dbm + 25.0 if self.cell.rat == "LTE" else self.rsrp_dbm


def cpsi_line(radio: Radio | None) -> str:
    """+CPSI: the serving cell, formats exactly as the reference's real lines."""
    if radio is None:
        return "+CPSI: NO SERVICE,Online"
    c = radio.cell
    plmn = f"{c.mcc}-{c.mnc:02d}"
    if c.rat == "LTE":
        rsrp = round(radio.rsrp_dbm * 10)
        rssi = round(radio.rssi_dbm * 10)
        rsrq = -90 if radio.rsrp_dbm > -100 else -140
        snr = max(-5, min(25, round((radio.rsrp_dbm + 120) / 2)))
        return (
            f"+CPSI: LTE,Online,{plmn},0x{c.area:04X},{c.ci},{c.ci % 504},"
            f"EUTRAN-BAND3,1675,5,5,{rsrq},{rsrp},{rssi},{snr}"
        )
    if c.rat == "WCDMA":
        return (
            f"+CPSI: WCDMA,Online,{plmn},0X{c.area:04x},{c.ci},WCDMA IMT 2000,"
            f"{c.ci % 512},10663,0,1.5,{round(-radio.rsrp_dbm - 20)},33,52,500"
        )
    return (
        f"+CPSI: GSM,Online,{plmn},0x{c.area:04x},{c.ci},27 EGSM 900,"
        f"{round(radio.rsrp_dbm)},2110,42-42"
    )


@dataclass(frozen=True)
class GnssFix:
    lat: float
    lon: float
    alt_m: float
    speed_knots: float
    course_deg: float | None
    utc_epoch: float
    hdop: float
    gps_svs: int
    glonass_svs: int
    beidou_svs: int


def _ddmm(value: float, degree_digits: int) -> str:
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees:0{degree_digits}d}{minutes:09.6f}"


def _date_time(epoch: float) -> tuple[str, str]:
    t = time.gmtime(epoch)
    tenths = int((epoch % 1) * 10)
    return time.strftime("%d%m%y", t), time.strftime("%H%M%S", t) + f".{tenths}"


def cgpsinfo_line(fix: GnssFix | None) -> str:
    if fix is None:
        return "+CGPSINFO: ,,,,,,,,"
    date, utc = _date_time(fix.utc_epoch)
    course = "0" if fix.course_deg is None else f"{fix.course_deg:.1f}"
    return (
        f"+CGPSINFO: {_ddmm(fix.lat, 2)},{'N' if fix.lat >= 0 else 'S'},"
        f"{_ddmm(fix.lon, 3)},{'E' if fix.lon >= 0 else 'W'},{date},{utc},"
        f"{fix.alt_m:.1f},{fix.speed_knots:.1f},{course}"
    )


def cgnssinfo_line(fix: GnssFix | None) -> str:
    if fix is None:
        return "+CGNSSINFO: ,,,,,,,,,,,,,,,"
    date, utc = _date_time(fix.utc_epoch)
    course = "" if fix.course_deg is None else f"{fix.course_deg:.1f}"
    pdop = fix.hdop * 1.3
    vdop = fix.hdop * 0.8
    return (
        f"+CGNSSINFO: 3,{fix.gps_svs:02d},{fix.glonass_svs:02d},{fix.beidou_svs:02d},"
        f"{_ddmm(fix.lat, 2)},{'N' if fix.lat >= 0 else 'S'},"
        f"{_ddmm(fix.lon, 3)},{'E' if fix.lon >= 0 else 'W'},{date},{utc},"
        f"{fix.alt_m:.1f},{fix.speed_knots:.1f},{course},{pdop:.1f},{fix.hdop:.1f},{vdop:.1f}"
    )
