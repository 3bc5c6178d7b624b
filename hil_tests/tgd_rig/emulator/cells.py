"""Cells of the simulated network, read from the OpenCelliD-layout CSV the server imports."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CELLS_CSV = (
    Path(__file__).resolve().parents[3] / "server" / "tgd_server" / "data" / "cells_nc.csv"
)

# Radio names of the CSV (OpenCelliD) against the ones AT+CPSI prints.
RADIO_TO_RAT = {"LTE": "LTE", "UMTS": "WCDMA", "GSM": "GSM"}
RATS = ("LTE", "WCDMA", "GSM")

_EARTH_RADIUS_M = 6371000.0


class CellDataError(ValueError):
    """The cell CSV is missing columns or holds a malformed row."""


@dataclass(frozen=True)
class Cell:
    rat: str  # LTE, WCDMA, GSM
    mcc: int
    mnc: int
    area: int  # LAC (GSM/WCDMA) or TAC (LTE)
    ci: int
    lat: float
    lon: float
    range_m: int
    avg_signal_dbm: int


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(a))


def load_cells(path: str | Path | None = None) -> list[Cell]:
    """Read the CSV (columns radio,mcc,net,area,cell,...,lon,lat,range,...,averageSignal)."""
    path = Path(path) if path else DEFAULT_CELLS_CSV
    cells = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for lineno, row in enumerate(reader, start=2):
            try:
                radio = row["radio"].strip().upper()
                if radio not in RADIO_TO_RAT:
                    raise CellDataError(f"{path}:{lineno}: unknown radio {radio!r}")
                cells.append(
                    Cell(
                        rat=RADIO_TO_RAT[radio],
                        mcc=int(row["mcc"]),
                        mnc=int(row["net"]),
                        area=int(row["area"]),
                        ci=int(row["cell"]),
                        lat=float(row["lat"]),
                        lon=float(row["lon"]),
                        range_m=int(float(row["range"])),
                        avg_signal_dbm=int(float(row.get("averageSignal") or -90)),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, CellDataError):
                    raise
                raise CellDataError(f"{path}:{lineno}: bad cell row: {exc}") from exc
    return cells


def serving_cell(cells: list[Cell], lat: float, lon: float, rat: str) -> tuple[Cell, float] | None:
    """The nearest cell of radio technology `rat` that covers the point, with its distance.

    A cell covers up to three times its OpenCelliD range plus 2 km (ranges are
    estimates of where the cell was seen, not hard edges); beyond that, no service.
    """
    best: tuple[Cell, float] | None = None
    for cell in cells:
        if cell.rat != rat:
            continue
        d = distance_m(lat, lon, cell.lat, cell.lon)
        if d > 3 * cell.range_m + 2000:
            continue
        if best is None or d < best[1]:
            best = (cell, d)
    return best


def rsrp_dbm(cell: Cell, distance: float) -> float:
    """A plausible received power: strong near the mast, weaker towards the range."""
    ratio = distance / max(cell.range_m, 1)
    return max(-125.0, min(-70.0, -78.0 - 22.0 * ratio))
