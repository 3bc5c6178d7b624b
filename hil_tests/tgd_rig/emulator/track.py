"""The true position of a handset over time: a fixed point or an NMEA track.

NMEA files are read with adafruit-circuitpython-gps (its `GPS` class is fed a small
object with `readline()`); RMC and GGA sentences with a valid checksum and a fix
give the points. Time 0 of a track is its first point; positions between points are
interpolated linearly and the last point holds after the end.
"""

from __future__ import annotations

import bisect
import calendar
import math
from dataclasses import dataclass
from pathlib import Path

import adafruit_gps

KNOTS_PER_MPS = 1.943844


class TrackError(ValueError):
    """An NMEA track that cannot be read or holds no position."""


@dataclass(frozen=True)
class TruePosition:
    lat: float
    lon: float
    alt_m: float
    speed_knots: float
    course_deg: float | None  # None when standing still


@dataclass(frozen=True)
class _Point:
    t: float
    lat: float
    lon: float
    alt_m: float


class _LineFeed:
    """What adafruit_gps.GPS expects of a UART: `readline()` and `in_waiting`."""

    def __init__(self, lines: list[bytes]):
        self._lines = lines
        self._next = 0

    @property
    def in_waiting(self) -> int:
        # GPS only reads when at least 11 bytes wait: say "plenty" while lines remain, so
        # that a short junk line is read (and refused) rather than waited on forever.
        return 4096 if self._next < len(self._lines) else 0

    def readline(self) -> bytes | None:
        if self._next >= len(self._lines):
            return None
        line = self._lines[self._next]
        self._next += 1
        return line

    @property
    def exhausted(self) -> bool:
        return self._next >= len(self._lines)


class Track:
    def __init__(self, points: list[_Point], name: str = "track"):
        if not points:
            raise TrackError(f"{name}: no position")
        self._points = points
        self._times = [p.t for p in points]
        self.name = name

    @classmethod
    def fixed(cls, lat: float, lon: float, alt_m: float = 10.0) -> Track:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise TrackError(f"position out of range: {lat}, {lon}")
        return cls([_Point(0.0, lat, lon, alt_m)], name=f"fixed {lat:.5f},{lon:.5f}")

    @classmethod
    def from_nmea(cls, path: str | Path) -> Track:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise TrackError(f"{path}: {exc}") from exc
        lines = [line.strip() + b"\r\n" for line in raw.splitlines() if line.strip()]
        feed = _LineFeed(lines)
        gps = adafruit_gps.GPS(feed)
        points: list[_Point] = []
        first_epoch: float | None = None
        while not feed.exhausted:
            gps.update()
            stamp = gps.timestamp_utc
            if not gps.has_fix or stamp is None or gps.latitude is None:
                continue
            epoch = float(calendar.timegm(stamp))
            if first_epoch is None:
                first_epoch = epoch
            t = epoch - first_epoch
            alt = gps.altitude_m if gps.altitude_m is not None else 10.0
            point = _Point(t, float(gps.latitude), float(gps.longitude), float(alt))
            if points and points[-1].t == t:
                points[-1] = point  # RMC and GGA of the same epoch: keep the later
            elif not points or t > points[-1].t:
                points.append(point)
        if not points:
            raise TrackError(f"{path}: no valid fix sentence")
        return cls(points, name=path.stem)

    @property
    def duration_s(self) -> float:
        return self._times[-1]

    def at(self, t: float) -> TruePosition:
        """True position `t` seconds after the start of the track."""
        pts = self._points
        if t <= 0 or len(pts) == 1:
            return TruePosition(pts[0].lat, pts[0].lon, pts[0].alt_m, 0.0, None)
        if t >= self._times[-1]:
            p = pts[-1]
            return TruePosition(p.lat, p.lon, p.alt_m, 0.0, None)
        i = bisect.bisect_right(self._times, t)
        a, b = pts[i - 1], pts[i]
        f = (t - a.t) / (b.t - a.t)
        lat = a.lat + (b.lat - a.lat) * f
        lon = a.lon + (b.lon - a.lon) * f
        alt = a.alt_m + (b.alt_m - a.alt_m) * f
        north = (b.lat - a.lat) * 111320.0
        east = (b.lon - a.lon) * 111320.0 * math.cos(math.radians(a.lat))
        speed_mps = math.hypot(north, east) / (b.t - a.t)
        course = math.degrees(math.atan2(east, north)) % 360 if speed_mps > 0.2 else None
        return TruePosition(lat, lon, alt, speed_mps * KNOTS_PER_MPS, course)
