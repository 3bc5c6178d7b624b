"""Small PMTiles archives made by the tests: raster (PNG) and vector (MVT) basemaps of a
few square kilometres, written with the `pmtiles` package's own writer."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write

NOUMEA_BBOX = (166.40, -22.32, 166.50, -22.24)  # west, south, east, north


def tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(x, n - 1), min(y, n - 1)


def tiles_covering(bbox: tuple[float, float, float, float], zooms: range):
    west, south, east, north = bbox
    for z in zooms:
        x0, y0 = tile_xy(west, north, z)
        x1, y1 = tile_xy(east, south, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                yield z, x, y


def png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A plain-coloured PNG (what a raster basemap tile is, minus the drawing)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * size))
            + chunk(b"IEND", b""))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(payload)
    return key + _varint(len(payload)) + payload


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 31)


def mvt_square(layer: str, extent: int = 4096) -> bytes:
    """A vector tile with one layer holding one polygon over the whole tile."""
    ring = [(0, 0), (extent, 0), (extent, extent), (0, extent)]
    geometry = [9, _zigzag(ring[0][0]), _zigzag(ring[0][1]), (2 | (3 << 3))]
    for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False):
        geometry += [_zigzag(x1 - x0), _zigzag(y1 - y0)]
    geometry.append(15)  # ClosePath
    feature = _field(1, 0, 1) + _field(3, 0, 3) + _field(4, 2, b"".join(map(_varint, geometry)))
    layer_msg = (_field(15, 0, 2) + _field(1, 2, layer.encode()) + _field(2, 2, feature)
                 + _field(5, 0, extent))
    return _field(3, 2, layer_msg)


def write_archive(path: Path, kind: str = "raster", bbox=NOUMEA_BBOX,
                  zooms: range = range(10, 17)) -> int:
    """Write a PMTiles v3 archive; returns how many tiles it addresses."""
    if kind == "raster":
        tile_type, compression = TileType.PNG, Compression.NONE
        data = png((233, 226, 208))
    else:
        tile_type, compression = TileType.MVT, Compression.GZIP
        data = gzip.compress(mvt_square("earth"), mtime=0)
    ids = sorted(zxy_to_tileid(z, x, y) for z, x, y in tiles_covering(bbox, zooms))
    west, south, east, north = bbox
    with write(str(path)) as writer:
        for tile_id in ids:
            writer.write_tile(tile_id, data)
        writer.finalize(
            {"tile_type": tile_type, "tile_compression": compression,
             "min_lon_e7": int(west * 1e7), "min_lat_e7": int(south * 1e7),
             "max_lon_e7": int(east * 1e7), "max_lat_e7": int(north * 1e7),
             "center_zoom": zooms.start, "center_lon_e7": int((west + east) / 2 * 1e7),
             "center_lat_e7": int((south + north) / 2 * 1e7)},
            {"attribution": "© test tiles", "name": "tgd-test"})
    return len(ids)
