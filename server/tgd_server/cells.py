"""Cell-tower positioning: the OpenCelliD cell table, its import, and the lookup.

A cell is a circle (centre lat/lon, `range` metres) in OpenCelliD's CSV layout:

    radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal

- `import_csv(session, path)` upserts a file (plain or .gz, with or without the
  header line) into the `cells` table: idempotent, rows validated one by one, the
  bad ones skipped and reported with their line number and reason.
- `locate(session, cells)` turns serving/neighbour cells as a handset reports them
  (docs/protocol.md `cell`: rat, mcc, mnc, lac, ci) into `(lat, lon, radius_m)`:
  one known cell gives its centre and range; several give an inverse-variance
  weighted centroid (see `combine`); no known cell but a known LAC/TAC gives the
  area's centroid with a radius covering all its cells; nothing known gives None.

The maths (`parse_row`, `combine`, `area_estimate`) is pure and tested on its own.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CSV_COLUMNS = (
    "radio", "mcc", "net", "area", "cell", "unit", "lon", "lat", "range",
    "samples", "changeable", "created", "updated", "averageSignal",
)
RADIOS = ("GSM", "UMTS", "LTE", "NR", "CDMA")
# The handset reports the 3GPP names (AT+CPSI: LTE, WCDMA, GSM); OpenCelliD says UMTS.
RADIO_FOR_RAT = {"LTE": "LTE", "WCDMA": "UMTS", "UMTS": "UMTS", "GSM": "GSM", "NR": "NR",
                 "CDMA": "CDMA"}
# Largest identifiers per radio (3GPP): a row beyond them is corrupt.
_MAX_AREA = {"GSM": 65535, "UMTS": 65535, "LTE": 65535, "NR": 16777215, "CDMA": 65535}
_MAX_CELL = {"GSM": 65535, "UMTS": 268435455, "LTE": 268435455, "NR": 68719476735,
             "CDMA": 65535}
MAX_RANGE_M = 100_000  # extended-range GSM reaches ~120 km; more than 100 km is junk
# A cell whose range was measured from one or two samples can claim 0 m: never tell
# the police the person is closer than this to a mast.
MIN_CELL_RADIUS_M = 500
EARTH_RADIUS_M = 6_371_008.8


class CellRowError(ValueError):
    """One CSV row is not a usable cell; the reason is for the import report."""


@dataclass(frozen=True)
class CellRow:
    radio: str
    mcc: int
    mnc: int
    area: int
    cell: int
    lat: float
    lon: float
    range_m: int
    samples: int
    updated: int  # Unix seconds, 0 when unknown

    @property
    def key(self) -> tuple[str, int, int, int, int]:
        return (self.radio, self.mcc, self.mnc, self.area, self.cell)


@dataclass(frozen=True)
class Circle:
    lat: float
    lon: float
    radius_m: float


@dataclass
class ImportReport:
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def summary(self, max_skipped_lines: int = 50) -> str:
        """One line of counts, then one line per skipped row (the first 50)."""
        lines = [f"{self.rows_read} rows read, {self.inserted} inserted, {self.updated} updated, "
                 f"{len(self.skipped)} skipped"]
        lines += [f"  skipped line {n}: {why}" for n, why in self.skipped[:max_skipped_lines]]
        if len(self.skipped) > max_skipped_lines:
            lines.append(f"  ... and {len(self.skipped) - max_skipped_lines} more skipped rows")
        return "\n".join(lines)


# --- CSV parsing (pure) -------------------------------------------------------------

def parse_row(fields: list[str]) -> CellRow:
    """Validate one OpenCelliD CSV row (already split). Raises CellRowError."""
    if len(fields) != len(CSV_COLUMNS):
        raise CellRowError(f"{len(fields)} columns, expected {len(CSV_COLUMNS)}")
    row = dict(zip(CSV_COLUMNS, (f.strip() for f in fields), strict=True))
    radio = row["radio"].upper()
    if radio not in RADIOS:
        raise CellRowError(f"radio {row['radio']!r} is not one of {', '.join(RADIOS)}")
    mcc = _int(row, "mcc", 1, 999)
    mnc = _int(row, "net", 0, 999)
    area = _int(row, "area", 0, _MAX_AREA[radio])
    cell = _int(row, "cell", 0, _MAX_CELL[radio])
    lon = _float(row, "lon", -180.0, 180.0)
    lat = _float(row, "lat", -90.0, 90.0)
    if lat == 0.0 and lon == 0.0:
        raise CellRowError("position 0,0 (no position)")
    range_m = _int(row, "range", 0, MAX_RANGE_M)
    samples = _int(row, "samples", 0, 2**31 - 1)
    updated = _int(row, "updated", 0, 4102444800) if row["updated"] else 0  # < year 2100
    return CellRow(radio, mcc, mnc, area, cell, lat, lon, range_m, samples, updated)


def read_csv(path: str | Path) -> Iterator[tuple[int, CellRow | CellRowError]]:
    """Yield (line number, row or error) for every data line of an OpenCelliD file."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        yield from read_csv_stream(handle)


def read_csv_stream(handle: io.TextIOBase | Iterable[str]) -> Iterator[tuple[int, CellRow | CellRowError]]:
    reader = csv.reader(handle)
    for line_no, fields in enumerate(reader, start=1):
        if not fields or all(not f.strip() for f in fields):
            continue
        if line_no == 1 and [f.strip() for f in fields] == list(CSV_COLUMNS):
            continue  # the header (OpenCelliD's per-country files have none)
        try:
            yield line_no, parse_row(fields)
        except CellRowError as err:
            yield line_no, err


def _int(row: dict[str, str], name: str, low: int, high: int) -> int:
    try:
        value = int(row[name])
    except ValueError:
        raise CellRowError(f"{name} {row[name][:20]!r} is not an integer") from None
    if not low <= value <= high:
        raise CellRowError(f"{name} {value} out of range {low}..{high}")
    return value


def _float(row: dict[str, str], name: str, low: float, high: float) -> float:
    try:
        value = float(row[name])
    except ValueError:
        raise CellRowError(f"{name} {row[name][:20]!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise CellRowError(f"{name} {row[name][:20]} out of range {low}..{high}")
    return value


# --- geometry (pure) ----------------------------------------------------------------

def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _weighted_centroid(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    """Centroid of (lat, lon, weight) on the sphere (unit vectors: safe across 180°)."""
    x = y = z = 0.0
    for lat, lon, weight in points:
        p, lam = math.radians(lat), math.radians(lon)
        x += weight * math.cos(p) * math.cos(lam)
        y += weight * math.cos(p) * math.sin(lam)
        z += weight * math.sin(p)
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


def combine(circles: list[Circle]) -> tuple[float, float, int]:
    """Best single circle for a handset that hears every one of `circles`.

    Weights are inverse variance, 1/range²: a cell's range is the spread of where it
    is heard, so a small cell pins the handset far better than a large one. Weighting
    by OpenCelliD `samples` was rejected: it measures how well the mast's centre is
    known, not how close the handset is to it (a busy 10 km rural cell would pull a
    fix away from the 800 m urban cell it is actually in).

    The radius is min over cells of (distance from the centroid to the cell + its
    range): the handset is inside every circle, so it is within that distance of the
    centroid whichever circle is the tight one. Never below MIN_CELL_RADIUS_M.
    """
    if not circles:
        raise ValueError("combine() needs at least one circle")
    radii = [max(float(c.radius_m), MIN_CELL_RADIUS_M) for c in circles]
    if len(circles) == 1:
        return circles[0].lat, circles[0].lon, round(radii[0])
    lat, lon = _weighted_centroid(
        [(c.lat, c.lon, 1.0 / (r * r)) for c, r in zip(circles, radii, strict=True)]
    )
    radius = min(distance_m(lat, lon, c.lat, c.lon) + r for c, r in zip(circles, radii, strict=True))
    return lat, lon, round(radius)


def area_estimate(circles: list[Circle]) -> tuple[float, float, int]:
    """Position for an unknown cell of a known LAC/TAC: the area's centroid, radius
    reaching the far edge of every known cell of the area (the handset may be in any)."""
    if not circles:
        raise ValueError("area_estimate() needs at least one circle")
    lat, lon = _weighted_centroid([(c.lat, c.lon, 1.0) for c in circles])
    radius = max(distance_m(lat, lon, c.lat, c.lon) + max(c.radius_m, MIN_CELL_RADIUS_M)
                 for c in circles)
    return lat, lon, round(radius)


# --- what the handset reports --------------------------------------------------------

def cell_key(reported: dict) -> tuple[str, int, int, int, int] | None:
    """(radio, mcc, mnc, area, cell) of a protocol.md `cell` dict, None if incomplete."""
    if not isinstance(reported, dict):
        return None
    rat = reported.get("rat", reported.get("radio"))
    radio = RADIO_FOR_RAT.get(str(rat).upper()) if rat is not None else None
    values = [reported.get(k) for k in ("mcc", "mnc", "lac", "ci")]
    if radio is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    mcc, mnc, area, cell = values
    return (radio, mcc, mnc, area, cell)


# --- database ---------------------------------------------------------------------

def locate(session, cells: list[dict]) -> tuple[float, float, int] | None:
    """Position (lat, lon, radius_m) of a handset that reports `cells`, or None."""
    from sqlalchemy import select

    from tgd_server.models import Cell

    keys = list(dict.fromkeys(k for k in (cell_key(c) for c in cells or []) if k))
    if not keys:
        return None
    found: list[Circle] = []
    for radio, mcc, mnc, area, cell in keys:
        row = session.execute(
            select(Cell.lat, Cell.lon, Cell.range_m).where(
                Cell.radio == radio, Cell.mcc == mcc, Cell.mnc == mnc,
                Cell.area == area, Cell.cell == cell, Cell.lat.is_not(None),
                Cell.lon.is_not(None), Cell.range_m.is_not(None),
            )
        ).first()
        if row is not None:
            found.append(Circle(row.lat, row.lon, row.range_m))
    if found:
        return combine(found)
    for radio, mcc, mnc, area, _cell in keys:
        rows = session.execute(
            select(Cell.lat, Cell.lon, Cell.range_m).where(
                Cell.radio == radio, Cell.mcc == mcc, Cell.mnc == mnc, Cell.area == area,
                Cell.lat.is_not(None), Cell.lon.is_not(None), Cell.range_m.is_not(None),
            )
        ).all()
        if rows:
            return area_estimate([Circle(r.lat, r.lon, r.range_m) for r in rows])
    return None


def import_csv(session, path: str | Path, batch_size: int = 5000) -> ImportReport:
    """Upsert an OpenCelliD CSV into `cells` in one transaction. Returns the report.

    Running it twice changes nothing the second time (same key -> same row updated).
    Bad rows are skipped and reported; a file that cannot be opened or decoded raises
    and the caller's rollback leaves the table as it was.
    """
    report = ImportReport()
    before = _count(session)
    batch: dict[tuple, CellRow] = {}
    for line_no, item in read_csv(path):
        report.rows_read += 1
        if isinstance(item, CellRowError):
            report.skipped.append((line_no, str(item)))
            continue
        batch[item.key] = item  # a key repeated in the file: the later line wins
        if len(batch) >= batch_size:
            report.updated += _upsert(session, list(batch.values()))
            batch.clear()
    if batch:
        report.updated += _upsert(session, list(batch.values()))
    session.commit()
    report.inserted = _count(session) - before
    report.updated -= report.inserted
    return report


def _count(session) -> int:
    from sqlalchemy import func, select

    from tgd_server.models import Cell

    return session.execute(select(func.count()).select_from(Cell)).scalar_one()


def _upsert(session, rows: list[CellRow]) -> int:
    from tgd_server.models import Cell

    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"cell import does not support the {dialect} database")
    values = [_row_values(r) for r in rows]
    stmt = insert(Cell.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["radio", "mcc", "mnc", "area", "cell"],
        set_={name: getattr(stmt.excluded, name)
              for name in ("lat", "lon", "range_m", "samples", "updated")},
    )
    # Core executemany on the session's connection: batched "insertmanyvalues", no ORM.
    session.connection().execute(stmt, values)
    return len(values)


def _row_values(row: CellRow) -> dict:
    updated = (datetime.fromtimestamp(row.updated, UTC) if row.updated
               else datetime.now(UTC))
    return {"radio": row.radio, "mcc": row.mcc, "mnc": row.mnc, "area": row.area,
            "cell": row.cell, "lat": row.lat, "lon": row.lon, "range_m": row.range_m,
            "samples": row.samples, "updated": updated}
