"""Cell positioning: CSV validation, import (idempotent upsert), lookup and centroid maths."""

import gzip
import math
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tgd_server import cells
from tgd_server.cells import CellRowError, Circle, combine, distance_m, parse_row
from tgd_server.db import make_engine
from tgd_server.models import Base, Cell

SHIPPED_CSV = Path(cells.__file__).parent / "data" / "cells_nc.csv"

GOOD = "LTE,546,1,4352,20481,0,166.44880,-22.27410,900,40,1,1704067200,1767225600,-92"


@pytest.fixture
def session(database_url):
    """A session on SQLite and on PostgreSQL (conftest's `database_url`: its own schema)."""
    engine = make_engine(database_url)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def write_csv(path: Path, lines: list[str], header: bool = True) -> Path:
    body = ([",".join(cells.CSV_COLUMNS)] if header else []) + lines
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path


# --- row validation --------------------------------------------------------------

def test_good_row_parses():
    row = parse_row(GOOD.split(","))
    assert row.key == ("LTE", 546, 1, 4352, 20481)
    assert (row.lat, row.lon, row.range_m, row.samples) == (-22.2741, 166.4488, 900, 40)


@pytest.mark.parametrize(
    "change, reason",
    [
        ((0, "WIMAX"), "radio"),
        ((1, "5460"), "mcc"),
        ((2, "x"), "net"),
        ((3, "70000"), "area"),
        ((4, "-1"), "cell"),
        ((6, "200.0"), "lon"),
        ((7, "-95"), "lat"),
        ((7, "nan"), "lat"),
        ((8, "250000"), "range"),
        ((9, "many"), "samples"),
    ],
)
def test_bad_rows_are_refused_with_a_reason(change, reason):
    fields = GOOD.split(",")
    index, value = change
    fields[index] = value
    with pytest.raises(CellRowError, match=reason):
        parse_row(fields)


def test_row_with_missing_columns_is_refused():
    with pytest.raises(CellRowError, match="columns"):
        parse_row(GOOD.split(",")[:10])


def test_null_island_is_refused():
    fields = GOOD.split(",")
    fields[6], fields[7] = "0", "0"
    with pytest.raises(CellRowError, match="0,0"):
        parse_row(fields)


def test_rat_names_of_the_handset_map_to_opencellid_radios():
    base = {"mcc": 546, "mnc": 1, "lac": 33010, "ci": 3200}
    assert cells.cell_key({"rat": "WCDMA", **base}) == ("UMTS", 546, 1, 33010, 3200)
    assert cells.cell_key({"rat": "LTE", **base})[0] == "LTE"
    assert cells.cell_key({"rat": "GSM", **base})[0] == "GSM"
    assert cells.cell_key({"rat": "WIMAX", **base}) is None
    assert cells.cell_key({"rat": "LTE", "mcc": 546, "mnc": 1, "lac": "4352", "ci": 1}) is None
    assert cells.cell_key(None) is None


# --- geometry ----------------------------------------------------------------------

def test_one_circle_is_its_own_estimate():
    assert combine([Circle(-22.2741, 166.4488, 900)]) == (-22.2741, 166.4488, 900)


def test_tiny_range_is_raised_to_the_minimum():
    assert combine([Circle(-22.0, 166.0, 3)])[2] == cells.MIN_CELL_RADIUS_M


def test_equal_cells_give_the_midpoint():
    lat, lon, radius = combine([Circle(-22.0, 166.0, 1000), Circle(-22.0, 166.02, 1000)])
    assert lat == pytest.approx(-22.0, abs=1e-4) and lon == pytest.approx(166.01, abs=1e-6)
    half = distance_m(-22.0, 166.0, -22.0, 166.01)
    assert radius == round(half + 1000)


def test_small_cell_dominates_a_large_one():
    small, large = Circle(-22.27, 166.44, 800), Circle(-22.20, 166.46, 8000)
    lat, lon, radius = combine([small, large])
    assert distance_m(lat, lon, small.lat, small.lon) < distance_m(lat, lon, large.lat, large.lon) / 10
    # the bound comes from the small cell: its distance plus its range
    assert radius == round(distance_m(lat, lon, small.lat, small.lon) + 800)


def test_centroid_across_the_antimeridian_stays_near_it():
    lat, lon, _ = combine([Circle(-16.0, 179.99, 1000), Circle(-16.0, -179.99, 1000)])
    assert abs(abs(lon) - 180.0) < 0.001 and lat == pytest.approx(-16.0, abs=1e-3)


def test_distance_is_the_haversine():
    # one degree of latitude is ~111.2 km everywhere
    assert distance_m(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-3)
    assert math.isclose(distance_m(-22.27, 166.44, -22.27, 166.44), 0.0)


# --- import and lookup against a real database ---------------------------------------

def test_shipped_data_set_imports_cleanly(session):
    report = cells.import_csv(session, SHIPPED_CSV)
    assert report.skipped == []
    assert report.inserted == report.rows_read >= 30 and report.updated == 0
    assert session.execute(select(Cell).where(Cell.cell == 20513)).scalar_one().range_m == 1000


def test_import_is_idempotent_and_updates(session, tmp_path):
    first = cells.import_csv(session, SHIPPED_CSV)
    again = cells.import_csv(session, SHIPPED_CSV)
    assert again.inserted == 0 and again.updated == first.inserted
    moved = GOOD.replace("900,40", "750,60")
    report = cells.import_csv(session, write_csv(tmp_path / "upd.csv", [moved]))
    assert (report.inserted, report.updated) == (0, 1)
    row = session.execute(select(Cell).where(Cell.cell == 20481)).scalar_one()
    assert (row.range_m, row.samples) == (750, 60)
    assert session.execute(select(Cell)).all().__len__() == first.inserted


def test_bad_rows_are_skipped_and_reported_good_ones_kept(session, tmp_path):
    path = write_csv(tmp_path / "mixed.csv", [
        GOOD,
        "LTE,546,1,4352,not-a-cell,0,166.4,-22.2,900,40,1,0,0,-92",
        "GSM,546,1,201,11001,0,166.45,-22.276,3000,25,1,0,0,",
        "LTE,546,1,4352",
        "",
    ])
    report = cells.import_csv(session, path)
    assert report.inserted == 2 and len(report.skipped) == 2
    assert [line for line, _ in report.skipped] == [3, 5]
    assert "cell" in report.skipped[0][1] and "columns" in report.skipped[1][1]


def test_gzipped_file_without_header_imports(session, tmp_path):
    path = tmp_path / "546.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(GOOD + "\n")
    assert cells.import_csv(session, path).inserted == 1


def test_locate_single_cell_gives_its_centre_and_range(session):
    cells.import_csv(session, SHIPPED_CSV)
    reported = {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4353, "ci": 20513, "sig": -95}
    assert cells.locate(session, [reported]) == (-22.3002, 166.4439, 1000)


def test_locate_wcdma_uses_the_umts_row(session):
    cells.import_csv(session, SHIPPED_CSV)
    lat, lon, radius = cells.locate(
        session, [{"rat": "WCDMA", "mcc": 546, "mnc": 1, "lac": 33010, "ci": 3200}])
    assert (lat, lon, radius) == (-22.275, 166.452, 2500)


def test_locate_several_cells_gives_a_weighted_centroid(session):
    cells.import_csv(session, SHIPPED_CSV)
    centre = {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20481}   # 900 m
    blanchot = {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20593}  # 800 m
    unknown = {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 99999}
    lat, lon, radius = cells.locate(session, [centre, blanchot, unknown, centre])
    assert min(-22.2789, -22.2741) < lat < max(-22.2789, -22.2741)
    assert 166.4488 < lon < 166.4582
    assert radius < 900 + distance_m(-22.2741, 166.4488, -22.2789, 166.4582)
    assert (lat, lon, radius) == cells.combine(
        [Circle(-22.2741, 166.4488, 900), Circle(-22.2789, 166.4582, 800)])


def test_unknown_cell_of_a_known_area_falls_back_to_the_area(session):
    cells.import_csv(session, SHIPPED_CSV)
    lat, lon, radius = cells.locate(
        session, [{"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 424242}])
    # area 4352 holds Centre, Vallee du Tir and Faubourg Blanchot: all inside the circle
    for c_lat, c_lon, c_range in [(-22.2741, 166.4488, 900), (-22.2618, 166.4406, 800),
                                  (-22.2789, 166.4582, 800)]:
        assert distance_m(lat, lon, c_lat, c_lon) + c_range <= radius + 1


@pytest.mark.parametrize("reported", [
    [{"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 9999, "ci": 424242}],
    [{"rat": "LTE", "mcc": 208, "mnc": 1, "lac": 4352, "ci": 20481}],
    [{"rat": "GSM", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20481}],
    [{"rat": "LTE"}],
    [],
])
def test_unknown_cells_give_none(session, reported):
    cells.import_csv(session, SHIPPED_CSV)
    assert cells.locate(session, reported) is None


def test_cell_seen_but_not_located_is_ignored(session):
    session.add(Cell(radio="LTE", mcc=546, mnc=1, area=7000, cell=1, lat=None, lon=None,
                     range_m=None))
    session.commit()
    assert cells.locate(session, [{"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 7000, "ci": 1}]) is None


def test_import_cells_command_is_idempotent_and_reports_skipped_rows(app, tmp_path):
    path = write_csv(tmp_path / "cmd.csv", [GOOD, "LTE,546,1,4352,20482,0,500,-22.2,900,4,1,0,0,0"])
    runner = app.test_cli_runner()
    with app.app_context():  # the `flask` command pushes it; the test runner does not
        first = runner.invoke(args=["import-cells", str(path)])
        again = runner.invoke(args=["import-cells", str(path)])
    assert first.exit_code == 0, first.output
    assert "2 rows read, 1 inserted, 0 updated, 1 skipped" in first.output
    assert "skipped line 3: lon 500 out of range" in first.output
    assert "0 inserted, 1 updated" in again.output


def test_a_message_with_only_a_cell_gets_the_cells_position_method_c(app, client, handset):
    from tgd_server import db
    from tgd_server.models import Position

    with app.app_context(), db.write_session() as s:
        cells.import_csv(s, SHIPPED_CSV)
    message = handset.message("alarm", fix={"m": "C"},
                              cell={"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4353, "ci": 20513})
    assert handset.post(client, message).status_code == 200
    with app.app_context():
        position = db.get_session().scalars(select(Position)).one()
    assert (position.method, position.lat, position.lon, position.acc_m) == \
        ("C", -22.3002, 166.4439, 1000)
