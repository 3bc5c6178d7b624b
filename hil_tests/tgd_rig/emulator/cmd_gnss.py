"""GNSS: AT+CGPS, AT+CGPSINFO, AT+CGNSSINFO from the modem's true track."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from .atparse import EXEC, READ, SET, AtSyntaxError, Command
from .errors import Refused
from .formats import GnssFix, cgnssinfo_line, cgpsinfo_line

if TYPE_CHECKING:
    from .modem import Sim7600Emulator

FIX_ERROR_SIGMA_M = 3.0  # open-sky GNSS error per axis


def cgps(m: Sim7600Emulator, cmd: Command) -> list[str]:
    s = m.settings
    if cmd.kind == READ:
        return [f"+CGPS: {1 if s.gnss_on else 0},{s.gnss_mode}", "OK"]
    if cmd.kind != SET:
        raise AtSyntaxError("CGPS: only read and set forms")
    cmd.nargs(1, 2)
    on = cmd.arg_int(0, 0, 1)
    if on == 1:
        mode = cmd.arg_int(1, 1, 3, default=1)
        if s.gnss_on:
            raise Refused("CGPS=1 while GNSS is on")
        s.gnss_on = True
        s.gnss_mode = mode
        s.gnss_started = time.monotonic()
        hot = (
            m.last_fix_at is not None
            and time.monotonic() - m.last_fix_at < m.net.timing.hot_start_validity_s
        )
        s.gnss_ttff_s = m.draw("gnss_hot_s" if hot else "gnss_cold_s")
        s.gnss_fixed = False
        m.net.event("gnss_start", modem=m.msisdn, hot=hot, ttff_s=s.gnss_ttff_s)
        return ["OK"]
    if not s.gnss_on:
        # Not confirmed in the manual; the real module refuses a stop while already off.
        raise Refused("CGPS=0 while GNSS is off")
    s.gnss_on = False
    m.later(m.net.timing.gnss_stop_urc_s, m.urc, "+CGPS: 0")
    return ["OK"]


def _start_with(start: str):
    """AT+CGPSHOT / AT+CGPSCOLD: start GNSS with that start; GNSS must be off first."""

    def handler(m: Sim7600Emulator, cmd: Command) -> list[str]:
        if cmd.kind != EXEC:
            raise AtSyntaxError(f"{cmd.name} takes no argument")
        s = m.settings
        if s.gnss_on:
            raise Refused(f"{cmd.name} while GNSS is on")
        hot = start == "hot" and m.last_fix_at is not None
        s.gnss_on = True
        s.gnss_mode = 1
        s.gnss_started = time.monotonic()
        s.gnss_ttff_s = m.draw("gnss_hot_s" if hot else "gnss_cold_s")
        s.gnss_fixed = False
        m.net.event("gnss_start", modem=m.msisdn, hot=hot, ttff_s=s.gnss_ttff_s)
        return ["OK"]

    return handler


def current_fix(m: Sim7600Emulator) -> GnssFix | None:
    """The fix the receiver has now: None when off, before TTFF, or indoors."""
    s = m.settings
    if not s.gnss_on or m.indoor:
        return None
    if time.monotonic() - s.gnss_started < s.gnss_ttff_s:
        return None
    pos = m.true_position()
    rng = m.net.rng
    north, east = rng.gauss(0, FIX_ERROR_SIGMA_M), rng.gauss(0, FIX_ERROR_SIGMA_M)
    lat = pos.lat + north / 111320.0
    lon = pos.lon + east / (111320.0 * math.cos(math.radians(pos.lat)))
    m.last_fix_at = time.monotonic()
    if not s.gnss_fixed:
        s.gnss_fixed = True
        m.net.event("gnss_first_fix", modem=m.msisdn, lat=lat, lon=lon, true_lat=pos.lat,
                    true_lon=pos.lon, error_m=round(math.hypot(north, east), 1),
                    since_start_s=round(time.monotonic() - s.gnss_started, 3))
    return GnssFix(
        lat=lat,
        lon=lon,
        alt_m=pos.alt_m,
        speed_knots=pos.speed_knots,
        course_deg=pos.course_deg,
        utc_epoch=time.time(),
        hdop=round(rng.uniform(0.7, 1.4), 1),
        gps_svs=rng.randint(7, 11),
        glonass_svs=rng.randint(3, 6),
        beidou_svs=0,
    )


def cgpsinfo(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != EXEC:
        raise AtSyntaxError("CGPSINFO: periodic reports are not emulated")
    return [cgpsinfo_line(current_fix(m)), "OK"]


def cgnssinfo(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != EXEC:
        raise AtSyntaxError("CGNSSINFO: periodic reports are not emulated")
    return [cgnssinfo_line(current_fix(m)), "OK"]


COMMANDS = {
    "+CGPS": cgps,
    "+CGPSINFO": cgpsinfo,
    "+CGNSSINFO": cgnssinfo,
    "+CGPSHOT": _start_with("hot"),
    "+CGPSCOLD": _start_with("cold"),
}
