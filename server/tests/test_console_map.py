"""Where she is, as the console tells it: the offline basemap's tile route (a PMTiles file
the test writes), positions in words (GeoNames), coordinates, one row per fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from basemap_sample import tile_xy, write_archive

from tgd_server import create_app, db
from tgd_server.console import basemap, coords, places, queries
from tgd_server.console.queries import FixView

PASSWORD = "correct horse battery"


def _app(tmp_path, **config):
    from tgd_server import auth

    app = create_app({
        "TESTING": True, "TGD_DATABASE_URL": f"sqlite:///{tmp_path / 'tgd.sqlite3'}",
        "TGD_VAR_DIR": str(tmp_path), "SECRET_KEY": "test-secret",
        "TGD_SECURE_COOKIES": False, "SESSION_COOKIE_SECURE": False, **config,
    })
    db.create_all(app.extensions["tgd_engine"])
    with app.app_context(), db.write_session() as session:
        auth.create_user(session, "agent.martin", "operator", PASSWORD)
    return app


def _logged_in(app):
    client = app.test_client()
    page = client.get("/connexion").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/connexion", data={"username": "agent.martin", "password": PASSWORD,
                                    "csrf_token": token})
    return client


@pytest.fixture
def raster_app(tmp_path):
    archive = tmp_path / "nc.pmtiles"
    write_archive(archive, "raster")
    app = _app(tmp_path, TGD_BASEMAP=str(archive))
    yield app
    app.extensions["tgd_basemap"].close()
    app.extensions["tgd_engine"].dispose()


def test_tiles_come_from_the_local_pmtiles_file(raster_app):
    client = _logged_in(raster_app)
    x, y = tile_xy(166.45, -22.28, 15)
    tile = client.get(f"/carte/tuiles/15/{x}/{y}.png")
    assert tile.status_code == 200 and tile.mimetype == "image/png"
    assert tile.data.startswith(b"\x89PNG")
    assert "private" in tile.headers["Cache-Control"]
    # Outside the archive (another zoom, another place): nothing, and no error for the map.
    assert client.get("/carte/tuiles/5/0/0.png").status_code == 204
    assert client.get(f"/carte/tuiles/15/{x + 50}/{y}.png").status_code == 204
    assert client.get(f"/carte/tuiles/15/{x}/{y}.mvt").status_code == 404  # not its type
    # The page's map is told where the tiles are, and what kind they are.
    page = client.get("/alarmes").get_data(as_text=True)
    assert 'data-tile-url="/carte/tuiles/{z}/{x}/{y}.png"' in page
    assert 'data-tile-kind="raster"' in page and 'data-tile-max-zoom="16"' in page


def test_tiles_need_a_session(raster_app):
    x, y = tile_xy(166.45, -22.28, 15)
    answer = raster_app.test_client().get(f"/carte/tuiles/15/{x}/{y}.png")
    assert answer.status_code == 401


def test_a_vector_basemap_is_served_gzipped_for_the_vector_renderer(tmp_path):
    archive = tmp_path / "nc-vector.pmtiles"
    write_archive(archive, "vector")
    app = _app(tmp_path, TGD_BASEMAP=str(archive))
    client = _logged_in(app)
    x, y = tile_xy(166.45, -22.28, 14)
    tile = client.get(f"/carte/tuiles/14/{x}/{y}.mvt")
    assert tile.status_code == 200 and tile.headers["Content-Encoding"] == "gzip"
    assert tile.mimetype == "application/vnd.mapbox-vector-tile"
    page = client.get("/alarmes").get_data(as_text=True)
    assert 'data-tile-kind="vector"' in page and "protomaps-leaflet.js" in page
    app.extensions["tgd_basemap"].close()


@pytest.mark.parametrize("content", [b"", b"not a map at all", b"PMTiles\x02" + bytes(200)])
def test_a_wrong_basemap_file_fails_at_start_naming_the_file(tmp_path, content):
    bad = tmp_path / "nc.pmtiles"
    bad.write_bytes(content)
    with pytest.raises(basemap.BasemapError, match="nc.pmtiles"):
        basemap.open_archive(bad)
    with pytest.raises(basemap.BasemapError, match="missing.pmtiles"):
        basemap.open_archive(tmp_path / "missing.pmtiles")


def test_without_a_basemap_the_page_says_positions_are_in_words(tmp_path):
    app = _app(tmp_path, TGD_TILE_URL="")
    page = _logged_in(app).get("/alarmes").get_data(as_text=True)
    assert 'data-tile-url=""' in page
    assert "Fond de carte non installé" in page


@pytest.mark.parametrize("lat,lon,words", [
    (-22.27210, 166.47020, "2,2 km à l'est de Nouméa"),
    (-22.15020, 166.47110, "1,6 km au nord-est de Dumbéa"),
    (-22.27407, 166.44884, "au centre de Nouméa"),
    (-20.3510, 164.4333, "au centre d'Ouégoa"),
    (-20.3000, 164.4333, "5,6 km au nord d'Ouégoa"),
    (-22.0000, 166.8833, "17 km au nord de Yaté-Barrage"),
    (-22.2800, 166.4500, "670 m au sud de Nouméa"),
])
def test_a_position_in_words_from_the_offline_gazetteer(lat, lon, words):
    assert places.describe(lat, lon) == words


def test_the_gazetteer_knows_the_communes_of_new_caledonia():
    names = {places.nearest_place(lat, lon)[0] for lat, lon in [
        (-22.27, 166.45), (-22.13, 166.36), (-21.06, 164.87), (-20.92, 167.26), (-22.67, 167.50)]}
    assert names == {"Nouméa", "Païta", "Koné", "Wé", "Vao"}


@pytest.mark.parametrize("lat,lon,dm", [
    (-22.27631, 166.45772, "S 22° 16,579′ E 166° 27,463′"),
    (48.85837, 2.29448, "N 48° 51,502′ E 2° 17,669′"),
    (-0.5, -0.0000001, "S 0° 30,000′ O 0° 00,000′"),
    (-21.9999999, 165.9999999, "S 22° 00,000′ E 166° 00,000′"),  # no "60,000′"
])
def test_degrees_minutes_as_a_radio_reads_them(lat, lon, dm):
    assert coords.degrees_minutes(lat, lon) == dm


def test_decimal_coordinates_paste_into_map_software():
    assert coords.decimal(-22.276314, 166.457718) == "-22.27631, 166.45772"


def _fix(t, lat=-22.27631, lon=166.45772, acc=12, channel="http", method="G", received=None):
    return FixView(method, lat, lon, acc, t, received or t + 1, (channel,))


def test_the_same_fix_over_http_and_sms_is_one_row_with_both_channels():
    fixes = [  # newest first, as the database gives them
        _fix(1030.0, lon=166.4590),
        _fix(1000.0, lat=-22.27630, lon=166.45770, acc=7, channel="sms", received=1009),
        _fix(1000.4, channel="http", received=1002),
        _fix(970.0, channel="sms"),  # an older fix that only came by SMS
    ]
    rows = queries.merge_same_fixes(fixes)
    assert [r.channels for r in rows] == [("http",), ("sms", "http"), ("sms",)]
    both = rows[1]
    assert both.via == "Données + SMS"
    assert both.accuracy_m == 7 and both.received_at == 1002


def test_fixes_far_apart_or_of_another_method_stay_separate():
    rows = queries.merge_same_fixes([
        _fix(1000.0), _fix(1000.0, lat=-22.2770, channel="sms"),  # 43 m away
        _fix(1000.0, method="C", channel="sms"), _fix(1003.0, channel="sms"),
    ])
    assert len(rows) == 4


TGD_SERVER = str(Path(sys.executable).parent / "tgd-server")


def test_basemap_check_as_the_operator_guide_shows_it(tmp_path):
    doc = (Path(__file__).parents[2] / "docs" / "operator.md").read_text(encoding="utf-8")
    assert "tgd-server basemap-check nc.pmtiles" in doc
    write_archive(tmp_path / "nc.pmtiles", "vector", zooms=range(0, 15))
    done = subprocess.run([TGD_SERVER, "basemap-check", "nc.pmtiles"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ("nc.pmtiles: vector (MVT) tiles, zoom 0-14, "
                        "area 166.40,-22.32 to 166.50,-22.24")
    assert lines[1].startswith("warning: it does not cover all of New Caledonia")
    assert lines[-1] == f"ok: set TGD_BASEMAP={tmp_path / 'nc.pmtiles'} and restart the server"


def test_basemap_check_of_a_wrong_file_is_one_line(tmp_path):
    (tmp_path / "nc.pmtiles").write_bytes(b"<html>404</html>")
    done = subprocess.run([TGD_SERVER, "basemap-check", "nc.pmtiles"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: nc.pmtiles: not a PMTiles file (it does not start with 'PMTiles')"]


def test_the_case_address_is_placed_from_the_admin_command(tmp_path):
    from tgd_server.devices import register_device
    from tgd_server.models import Case

    app = _app(tmp_path)
    with app.app_context(), db.write_session() as session:
        register_device(session, {"device_id": "NC0042", "special_number": "+687751042",
                                  "key": "ab" * 32})
    runner = app.test_cli_runner()
    args = ["assign-case", "NC0042", "--ref", "TJ-1", "--name", "Marie Exemple",
            "--address", "12 rue de la Paix, Nouméa"]
    done = runner.invoke(args=args + ["--address-position=-22.2795,166.4615"])
    assert done.exit_code == 0, done.output
    with app.app_context():
        case = db.get_session().query(Case).one()
        assert (case.address_lat, case.address_lon) == (-22.2795, 166.4615)
    wrong = runner.invoke(args=args + ["--address-position=Nouméa"])
    assert wrong.exit_code == 1
    assert wrong.output.strip().splitlines()[-1].startswith(
        "error: --address-position 'Nouméa': give LAT,LON in decimal degrees")


def test_background_fetches_never_rewrite_the_session_cookie(tmp_path):
    """A late fragment answer carrying the cookie it started with would undo the flash
    (or the logout) that a page answer set meanwhile."""
    app = _app(tmp_path)
    client = _logged_in(app)
    for path in ("/alarmes/fragment", "/alarmes/a-prendre", "/flux"):
        answer = client.head(path) if path == "/flux" else client.get(path)
        assert answer.status_code == 200, path
        assert "Set-Cookie" not in answer.headers, path
    assert "Set-Cookie" in client.get("/alarmes").headers  # pages keep the session alive
