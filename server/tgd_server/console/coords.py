"""Coordinates as an operator copies or reads them out: decimal, and degrees-minutes."""

from __future__ import annotations

from . import strings_fr as t


def decimal(lat: float, lon: float) -> str:
    """'-22.27631, 166.45772': what map software and phones paste (point, comma, space)."""
    return f"{lat:.5f}, {lon:.5f}"


def _degrees_minutes(value: float, positive: str, negative: str) -> str:
    hemisphere = positive if value >= 0 else negative
    thousandths = round(abs(value) * 60_000)  # minutes to three decimals, rounded once
    degrees, rest = divmod(thousandths, 60_000)
    minutes = f"{rest / 1000:06.3f}".replace(".", ",")
    return f"{hemisphere} {degrees}° {minutes}′"


def degrees_minutes(lat: float, lon: float) -> str:
    """'S 22° 16,579′ E 166° 27,463′': as police radios read positions out."""
    return (f"{_degrees_minutes(lat, t.NORTH, t.SOUTH)} "
            f"{_degrees_minutes(lon, t.EAST, t.WEST)}")
