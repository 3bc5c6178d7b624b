"""Pure parts of the emulator: AT line parsing, line formats, cells, timing, tracks."""

import random
from pathlib import Path

import pytest

from tgd_rig.emulator import Timing, Track, TrackError, load_cells
from tgd_rig.emulator.atparse import EXEC, READ, SET, TEST, AtSyntaxError, parse_line, split_args
from tgd_rig.emulator.cells import CellDataError, serving_cell
from tgd_rig.emulator.formats import (
    GnssFix,
    Radio,
    cgnssinfo_line,
    cgpsinfo_line,
    cme_error,
    cms_error,
    cpsi_line,
    csq_from_dbm,
    local_stamp,
)

TRACKS = Path(__file__).resolve().parents[1] / "tgd_rig" / "data" / "tracks"


@pytest.mark.parametrize(
    "line, name, kind, args",
    [
        ("AT", "", EXEC, []),
        ("at+csq", "+CSQ", EXEC, []),
        ("AT+CREG?", "+CREG", READ, []),
        ("AT+CREG=?", "+CREG", TEST, []),
        ("AT+CEREG=2", "+CEREG", SET, [("2", False)]),
        ('AT+HTTPPARA="URL","http://a/b?x=1,2"', "+HTTPPARA", SET,
         [("URL", True), ("http://a/b?x=1,2", True)]),
        ("AT+CSMP=49,167,,0", "+CSMP", SET, [("49", False), ("167", False), ("", False),
                                              ("0", False)]),
        ("ATE0", "E", SET, [("0", False)]),
        ("ATH", "H", EXEC, []),
    ],
)
def test_parse_line(line, name, kind, args):
    cmd = parse_line(line)
    assert (cmd.name, cmd.kind) == (name, kind)
    assert [(a.text, a.quoted) for a in cmd.args] == args


def test_parse_dial_keeps_raw_number():
    cmd = parse_line("ATD+687751001;")
    assert (cmd.name, cmd.raw) == ("D", "+687751001;")


@pytest.mark.parametrize(
    "line", ["hello", "AT+", "AT+CSQ!", 'AT+CMGS="123', 'AT+X="a"b', "ATX", "ATE1a"]
)
def test_parse_refuses_malformed(line):
    with pytest.raises(AtSyntaxError):
        parse_line(line)


def test_split_args_quoted_comma_and_empty():
    assert [(a.text, a.quoted) for a in split_args('"a,b",,3')] == [
        ("a,b", True), ("", False), ("3", False)]


def test_error_lines_follow_cmee():
    assert cme_error(10, 0) == "ERROR"
    assert cme_error(10, 1) == "+CME ERROR: 10"
    assert cme_error(10, 2) == "+CME ERROR: SIM not inserted"
    assert cms_error(322, 1) == "+CMS ERROR: 322"
    assert cms_error(500, 2) == "+CMS ERROR: Unknown error"


def test_csq_mapping_matches_reference():
    assert csq_from_dbm(-113) == 0
    assert csq_from_dbm(-109) == 2
    assert csq_from_dbm(-53) == 30
    assert csq_from_dbm(-40) == 31
    assert csq_from_dbm(None) == 99


def test_local_stamp_new_caledonia():
    # 2026-11-26 08:00:00 UTC is 19:00 in Noumea (UTC+11 = +44 quarter-hours).
    assert local_stamp(1795680000) == "26/11/26,19:00:00+44"


def test_cpsi_formats():
    cells = {c.rat: c for c in load_cells()}
    lte = cpsi_line(Radio(cells["LTE"], -100.6))
    assert lte.startswith("+CPSI: LTE,Online,546-01,0x")
    fields = lte.split(": ", 1)[1].split(",")
    assert len(fields) == 14 and fields[11] == "-1006"
    assert int(fields[3], 16) == cells["LTE"].area and int(fields[4]) == cells["LTE"].ci
    gsm = cpsi_line(Radio(cells["GSM"], -64))
    assert gsm.split(",")[5] == "27 EGSM 900" and gsm.split(",")[3].startswith("0x")
    wcdma = cpsi_line(Radio(cells["WCDMA"], -80))
    assert wcdma.split(",")[3].startswith("0X") and wcdma.split(",")[5] == "WCDMA IMT 2000"
    assert cpsi_line(None) == "+CPSI: NO SERVICE,Online"


def test_gnss_lines():
    fix = GnssFix(-22.2758, 166.458, 12.34, 0.0, None, 1795680000.25, 1.0, 8, 4, 0)
    assert cgpsinfo_line(fix) == (
        "+CGPSINFO: 2216.548000,S,16627.480000,E,261126,080000.2,12.3,0.0,0")
    line = cgnssinfo_line(fix)
    assert line.startswith("+CGNSSINFO: 3,08,04,00,2216.548000,S,16627.480000,E,261126,080000.2,")
    assert len(line.split(": ")[1].split(",")) == 16
    assert cgpsinfo_line(None) == "+CGPSINFO: ,,,,,,,,"
    assert cgnssinfo_line(None) == "+CGNSSINFO: ,,,,,,,,,,,,,,,"


def test_serving_cell_is_nearest_of_the_technology():
    cells = load_cells()
    cell, d = serving_cell(cells, -22.2689, 166.5706, "LTE")  # Mont-Dore Boulari
    assert cell.ci == 20609 and d < 50
    gsm, _ = serving_cell(cells, -22.2635, 166.4723, "GSM")  # Magenta
    assert gsm.rat == "GSM"
    assert serving_cell(cells, -30.0, 170.0, "LTE") is None  # open sea


def test_bad_cell_csv_is_refused(tmp_path):
    bad = tmp_path / "cells.csv"
    bad.write_text("radio,mcc,net,area,cell,unit,lon,lat,range\nLTE,546,1,x,1,0,1,2,3\n")
    with pytest.raises(CellDataError):
        load_cells(bad)


def test_fast_timing_scales_all_but_pwrkey():
    fast = Timing.fast(0.01)
    assert fast.boot_s == pytest.approx((0.11, 0.12))
    assert fast.pwrkey_on_s == 0.1 and fast.pwrkey_off_s == 2.5
    assert 0.11 <= fast.draw("boot_s", random.Random(1)) <= 0.12
    with pytest.raises(ValueError):
        Timing.fast(0)


def test_tracks_parse_and_interpolate():
    walk = Track.from_nmea(TRACKS / "walk_quartier_latin.nmea")
    car = Track.from_nmea(TRACKS / "car_noumea_mont_dore.nmea")
    indoor = Track.from_nmea(TRACKS / "indoor_magenta.nmea")
    assert walk.duration_s > 600 and car.duration_s > 600
    start, end = car.at(0), car.at(car.duration_s + 100)
    assert start.lon < 166.46 and end.lon > 166.56  # Noumea -> Mont-Dore
    assert 20 < car.at(60).speed_knots < 35
    assert indoor.at(100).speed_knots == 0.0
    p = walk.at(0.5)
    assert -22.276 < p.lat < -22.270


def test_track_errors(tmp_path):
    junk = tmp_path / "junk.nmea"
    junk.write_text("$GPRMC,bad*00\r\nnot nmea\r\n")
    with pytest.raises(TrackError):
        Track.from_nmea(junk)
    with pytest.raises(TrackError):
        Track.from_nmea(tmp_path / "missing.nmea")
    with pytest.raises(TrackError):
        Track.fixed(95, 0)


def test_shipped_tracks_have_valid_checksums_and_regenerate_identically(tmp_path):
    import runpy

    for path in TRACKS.glob("*.nmea"):
        for line in path.read_text(encoding="ascii").splitlines():
            body, _, checksum = line[1:].partition("*")
            value = 0
            for ch in body:
                value ^= ord(ch)
            assert line.startswith("$") and f"{value:02X}" == checksum, (path.name, line)
    runpy.run_path(str(TRACKS / "make_tracks.py"))["main"](tmp_path)
    for path in TRACKS.glob("*.nmea"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("kwargs", [
    {"msisdn": "+68775A"}, {"msisdn": ""}, {"imei": "123"}, {"iccid": "89-68"},
    {"imsi": "54601x"}, {"rat": "5G"}, {"sms_capacity": 0},
])
def test_bad_modem_settings_are_refused(kwargs):
    from tgd_rig.emulator import Network, Sim7600Emulator

    settings = {"msisdn": "+687751001", **kwargs}
    with pytest.raises(ValueError):
        Sim7600Emulator(Network(), **settings)
