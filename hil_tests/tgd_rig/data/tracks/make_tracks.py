"""Generate the NMEA truth tracks around Nouméa shipped next to this script.

    python hil_tests/tgd_rig/data/tracks/make_tracks.py [OUT_DIR]

Deterministic (fixed seed): RMC + GGA at 1 Hz with valid checksums, walking or
driving along waypoints at a constant speed. Re-run after changing a waypoint.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
START_EPOCH = 1795651200  # 2026-11-26 00:00:00 UTC (11:00 in Nouméa)

# (lat, lon) waypoints, WGS84.
WALK_QUARTIER_LATIN = [
    (-22.27180, 166.44190),  # Rue de Sébastopol
    (-22.27290, 166.44320),
    (-22.27420, 166.44260),  # Avenue Foch
    (-22.27540, 166.44410),
    (-22.27460, 166.44580),  # Place des Cocotiers (north-west corner)
    (-22.27330, 166.44500),
    (-22.27180, 166.44190),
]
CAR_NOUMEA_MONT_DORE = [
    (-22.27580, 166.44800),  # Nouméa centre
    (-22.26940, 166.45860),  # Vallée du Génie
    (-22.26310, 166.47190),  # Magenta
    (-22.26720, 166.49300),  # Tina
    (-22.27860, 166.51010),  # Pont des Français
    (-22.27300, 166.53800),  # Vallon Dore
    (-22.26880, 166.57060),  # Mont-Dore, Boulari
]
INDOOR_MAGENTA = [(-22.26350, 166.47230)]


def checksum(body: str) -> str:
    value = 0
    for ch in body:
        value ^= ord(ch)
    return f"{value:02X}"


def sentence(body: str) -> str:
    return f"${body}*{checksum(body)}"


def ddmm(value: float, degree_digits: int) -> str:
    value = abs(value)
    degrees = int(value)
    return f"{degrees:0{degree_digits}d}{(value - degrees) * 60:07.4f}"


def epoch_fields(epoch: int) -> tuple[str, str]:
    import time

    t = time.gmtime(epoch)
    return time.strftime("%H%M%S.00", t), time.strftime("%d%m%y", t)


def leg_points(waypoints, speed_mps: float, jitter_m: float, rng: random.Random):
    """One position per second along the waypoints at speed_mps (with a little jitter)."""
    if len(waypoints) == 1:
        lat, lon = waypoints[0]
        for _ in range(300):
            yield (
                lat + rng.gauss(0, jitter_m) / 111320,
                lon + rng.gauss(0, jitter_m) / 103000,
                0.0,
                0.0,
            )
        return
    for (lat1, lon1), (lat2, lon2) in zip(waypoints, waypoints[1:], strict=False):
        north = (lat2 - lat1) * 111320
        east = (lon2 - lon1) * 111320 * math.cos(math.radians(lat1))
        length = math.hypot(north, east)
        course = math.degrees(math.atan2(east, north)) % 360
        steps = max(1, int(length / speed_mps))
        for i in range(steps):
            f = i / steps
            yield (
                lat1 + (lat2 - lat1) * f + rng.gauss(0, jitter_m) / 111320,
                lon1 + (lon2 - lon1) * f + rng.gauss(0, jitter_m) / 103000,
                speed_mps,
                course,
            )


def write_track(
    out: Path, name: str, waypoints, speed_mps: float, jitter_m: float, seed: int
) -> None:
    rng = random.Random(seed)
    lines = []
    for second, (lat, lon, speed, course) in enumerate(
        leg_points(waypoints, speed_mps, jitter_m, rng)
    ):
        utc, date = epoch_fields(START_EPOCH + second)
        ns, ew = ("S" if lat < 0 else "N"), ("W" if lon < 0 else "E")
        knots = speed * 1.943844
        lines.append(sentence(
            f"GPRMC,{utc},A,{ddmm(lat, 2)},{ns},{ddmm(lon, 3)},{ew},"
            f"{knots:.1f},{course:.1f},{date},,,A"
        ))
        lines.append(sentence(
            f"GPGGA,{utc},{ddmm(lat, 2)},{ns},{ddmm(lon, 3)},{ew},1,09,0.9,"
            f"{12.0 + rng.uniform(-1, 1):.1f},M,38.0,M,,"
        ))
    (out / f"{name}.nmea").write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))


def main(out: Path = HERE) -> None:
    write_track(out, "walk_quartier_latin", WALK_QUARTIER_LATIN, 1.3, 0.2, seed=1)
    write_track(out, "car_noumea_mont_dore", CAR_NOUMEA_MONT_DORE, 13.9, 0.3, seed=2)
    write_track(out, "indoor_magenta", INDOOR_MAGENTA, 0.0, 0.0, seed=3)


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
