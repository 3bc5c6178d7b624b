"""Batches: a CSV with one handset per row, for a bench session.

Columns: ``device_id`` and ``special_number`` (required for provision), and
optionally ``port``, ``sms_number``, ``apn``, ``imei``, ``iccid``. Lines starting
with ``#`` are comments. Every row is checked before the first handset is touched.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

COLUMNS = ("device_id", "special_number", "port", "sms_number", "apn", "imei", "iccid")


@dataclass(frozen=True)
class BatchRow:
    line: int
    values: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        value = self.values.get(name, "")
        return value or None


def parse_batch(text: str, required: tuple[str, ...]) -> list[BatchRow]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise UsageError("the batch file has no rows")
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    header = [h.strip() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise UsageError(f"unknown batch column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
    missing = [c for c in required if c not in header]
    if missing:
        raise UsageError(f"the batch file lacks the column(s) {', '.join(missing)}")
    rows: list[BatchRow] = []
    seen: set[str] = set()
    for number, raw in enumerate(reader, start=2):
        values = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
        for column in required:
            if not values.get(column):
                raise UsageError(f"batch line {number}: {column} is empty")
        device_id = values.get("device_id", "")
        if device_id:
            if device_id in seen:
                raise UsageError(f"batch line {number}: device id {device_id} appears twice")
            seen.add(device_id)
        rows.append(BatchRow(number, values))
    return rows


def read_batch(path: Path, required: tuple[str, ...]) -> list[BatchRow]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read the batch file {path}: {exc}") from exc
    return parse_batch(text, required)
