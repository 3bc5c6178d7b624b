"""The offline basemap: map tiles from one local PMTiles file, for a police network
without internet (`TGD_BASEMAP=/var/lib/tgd/basemap/nc.pmtiles`, see docs/operator.md).

The console serves the file's tiles at /carte/tuiles/{z}/{x}/{y}.{ext}; the page's map
draws them. Raster archives (PNG, JPEG, WebP) are drawn by Leaflet itself; vector
archives (MVT, the usual OpenStreetMap extracts) by the vendored protomaps-leaflet
renderer, when it is there (static/vendor/).
"""

from __future__ import annotations

import mmap
import threading
from dataclasses import dataclass
from pathlib import Path

from pmtiles.reader import Reader
from pmtiles.tile import Compression, MagicNumberNotFound, SpecVersionUnsupported, TileType

TILE_TYPES = {  # PMTiles tile type -> (file extension, MIME type)
    TileType.MVT: ("mvt", "application/vnd.mapbox-vector-tile"),
    TileType.PNG: ("png", "image/png"),
    TileType.JPEG: ("jpg", "image/jpeg"),
    TileType.WEBP: ("webp", "image/webp"),
    TileType.AVIF: ("avif", "image/avif"),
}
CONTENT_ENCODINGS = {Compression.GZIP: "gzip", Compression.BROTLI: "br",
                     Compression.ZSTD: "zstd"}


class BasemapError(Exception):
    """The configured file is missing or is not a PMTiles v3 archive."""


@dataclass(frozen=True)
class Basemap:
    path: Path
    extension: str
    mimetype: str
    content_encoding: str | None
    min_zoom: int
    max_zoom: int
    bounds: tuple[float, float, float, float]  # west, south, east, north
    attribution: str

    @property
    def vector(self) -> bool:
        return self.extension == "mvt"


class Archive:
    """One open PMTiles file, read through a memory map (shared by the server threads)."""

    def __init__(self, path: Path) -> None:
        try:
            self._file = open(path, "rb")  # noqa: SIM115  (kept open: the map reads it)
        except OSError as exc:
            raise BasemapError(f"{path}: {exc.strerror}") from None
        try:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._reader = Reader(lambda offset, length: self._map[offset:offset + length])
            header = self._reader.header()
        except (ValueError, MagicNumberNotFound, SpecVersionUnsupported, IndexError) as exc:
            self._file.close()
            raise BasemapError(f"{path}: {_why_not_pmtiles(exc)}") from None
        tile_type = header["tile_type"]
        if tile_type not in TILE_TYPES:
            raise BasemapError(f"{path}: unsupported tile type {tile_type}")
        extension, mimetype = TILE_TYPES[tile_type]
        try:
            metadata = self._reader.metadata()
        except Exception:
            metadata = {}
        self.info = Basemap(
            path=path, extension=extension, mimetype=mimetype,
            content_encoding=CONTENT_ENCODINGS.get(header["tile_compression"]),
            min_zoom=header["min_zoom"], max_zoom=header["max_zoom"],
            bounds=(header["min_lon_e7"] / 1e7, header["min_lat_e7"] / 1e7,
                    header["max_lon_e7"] / 1e7, header["max_lat_e7"] / 1e7),
            attribution=str(metadata.get("attribution", "")) if isinstance(metadata, dict)
            else "",
        )
        self._lock = threading.Lock()

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        if not (self.info.min_zoom <= z <= self.info.max_zoom and 0 <= x < 2 ** z
                and 0 <= y < 2 ** z):
            return None
        with self._lock:  # the reader's directory walk is cheap; mmap slices are not shared
            return self._reader.get(z, x, y)

    def close(self) -> None:
        self._map.close()
        self._file.close()


def _why_not_pmtiles(exc: Exception) -> str:
    if isinstance(exc, MagicNumberNotFound):
        return "not a PMTiles file (it does not start with 'PMTiles')"
    if isinstance(exc, SpecVersionUnsupported):
        return "a PMTiles archive of another version than 3 (convert it: pmtiles convert)"
    return "empty or truncated file, not a PMTiles archive"


def open_archive(path: str | Path | None) -> Archive | None:
    """The archive at `path`, or None when no basemap is configured (empty setting)."""
    if not path:
        return None
    return Archive(Path(path))
