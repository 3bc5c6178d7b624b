"""The whole bench path on a virtual board: flash -> provision -> selftest.

The board is the MicroPython unix port behind a TCP socket (socket://), the
modem is the SIM7600 emulator, the server is the real one on a temp SQLite.
The firmware is uploaded once per session by `tgd-flash flash` and copied into
each test's flash directory.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import urllib.request

import pytest
from flash_testkit import make_modem, start_board

from tgd_flash import cli, provision
from tgd_flash.errors import AlreadyRegistered, ModemNotAnswering, TokenRefused
from tgd_flash.virtual_board import VirtualBoard


@pytest.fixture(scope="session")
def flashed(tmp_path_factory):
    """A flash directory with the TGD firmware, written by `tgd-flash flash`."""
    flash = tmp_path_factory.mktemp("flashed")
    # left by an older firmware: a stale tgd/alarm.py would shadow the new tgd/alarm.mpy;
    # a module of the old flat layout at the root, or one retired from the package, is dead
    (flash / "tgd").mkdir()
    (flash / "tgd" / "alarm.py").write_text("raise ImportError('stale')\n")
    (flash / "tgd" / "retired_module.mpy").write_bytes(b"M\x06")
    (flash / "sim7600.mpy").write_bytes(b"M\x06")
    (flash / "journal.log").write_text("data\n")  # data stays
    board = start_board(flash)
    out = io.StringIO()
    try:
        code = cli.main(["flash", "--port", board.url], out=out)
    finally:
        board.stop()
    assert code == 0, out.getvalue()
    names = sorted(p.relative_to(flash).as_posix() for p in flash.rglob("*") if p.is_file())
    (flash / "journal.log").unlink()  # the copies each test gets start without data
    return flash, out.getvalue(), names


@pytest.fixture
def flash_dir(tmp_path, flashed):
    path = tmp_path / "flash"
    shutil.copytree(flashed[0], path)
    return path


def api(server, path, token=None):
    req = urllib.request.Request(server.base_url + path)
    req.add_header("Authorization", f"Bearer {token or server.tech_token}")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def provision_args(board, server, device_id="NC0001", number="+687751001"):
    return ["provision", "--port", board.url, "--device-id", device_id, "--special-number", number,
            "--sms-number", "+687700100", "--apn", "mobilis", "--server", server.base_url]


def run(argv, capsys):
    out = io.StringIO()
    code = cli.main(argv, out=out)
    return code, out.getvalue(), capsys.readouterr().err


def test_flash_uploads_compiled_firmware_and_verifies_it(flashed):
    flash, output, names = flashed
    assert "main.py" in names and "tgd/selftest.mpy" in names and "tgd/modem/sim7600.mpy" in names
    assert "tgd/__init__.mpy" in names and "boards/lilygo.mpy" in names
    # the host board's modules (firmware/host/) and the image manifest never go to a board
    assert not [n for n in names if n.rsplit("/", 1)[-1].split(".")[0] in (
        "board_host", "flash_image", "heap_probe", "manifest")], names
    assert not [n for n in names if n.startswith("host/")], names
    assert "fw_manifest.json" in names
    assert not any(n.endswith(".new") for n in names)
    manifest = json.loads((flash / "fw_manifest.json").read_text())
    assert set(manifest["files"]) == set(names) - {"fw_manifest.json", "journal.log"}
    assert "journal.log" in names
    assert "by sha256 on the board" in output and "upload [" in output
    assert "tgd/alarm.py" not in names and "tgd/retired_module.mpy" not in names
    assert "sim7600.mpy" not in names
    assert "removed old modules: sim7600.mpy, tgd/alarm.py, tgd/retired_module.mpy" in output


def test_provision_then_selftest(tmp_path, flash_dir, board, server, capsys, monkeypatch):
    monkeypatch.setenv("TGD_TECH_TOKEN", server.tech_token)
    code, out, err = run(provision_args(board, server), capsys)
    assert code == 0, out + err
    cfg = json.loads((flash_dir / "config.json").read_text())
    assert cfg["device_id"] == "NC0001" and len(cfg["key"]) == 64 and cfg["apn"] == "mobilis"
    assert cfg["server_url"] == server.base_url + "/api/v1/device/messages"
    assert cfg["key"] not in out + err  # the key is never shown
    status, device = api(server, "/api/v1/devices/NC0001")
    assert status == 200
    assert device["imei"] == "866123045678901" and device["iccid"] == "8968701000000123456"
    assert device["fw_version"] == json.loads((flash_dir / "fw_manifest.json").read_text())["fw"]

    report_path = tmp_path / "report.json"
    code, out, err = run(
        ["selftest", "--port", board.url, "--server", server.base_url, "--report", str(report_path)], capsys
    )
    assert code == 0, out + err
    report = json.loads(report_path.read_text())
    assert report["result"] == "PASS" and report["device_id"] == "NC0001"
    names = [c["name"] for c in report["checks"]]
    assert names == ["config valid", "firmware intact", "modem answers", "SIM ready",
                     "registered on the network", "signal", "battery", "GNSS on",
                     "test message accepted", "server recorded the test"]
    assert all(c["ok"] for c in report["checks"])
    assert report["imei"] == "866123045678901"
    assert "RESULT: PASS" in out
    # the test message reached the server and raised no alarm
    assert api(server, "/api/v1/devices/NC0001")[1]["last_seen_at"]
    status, alarms = api(server, "/api/v1/alarms?state=all&device=NC0001", server.operator_token)
    assert (status, alarms) == (200, {"alarms": []})


def test_refused_token_leaves_board_and_server_untouched(flash_dir, board, server, capsys):
    before = sorted(p.name for p in flash_dir.iterdir())
    code, _, err = run(provision_args(board, server) + ["--token", "wrong"], capsys)
    assert code == TokenRefused.exit_code and "refused the technician token" in err
    assert sorted(p.name for p in flash_dir.iterdir()) == before
    assert api(server, "/api/v1/devices/NC0001")[0] == 404


def test_id_already_registered_leaves_board_untouched(tmp_path, flash_dir, board, server, capsys, monkeypatch):
    provision.provision_host(tmp_path / "other", device_id="NC0001", special_number="+687751999",
                             sms_number="+687700100", server=server.tech)
    monkeypatch.setenv("TGD_TECH_TOKEN", server.tech_token)
    before = sorted(p.name for p in flash_dir.iterdir())
    code, _, err = run(provision_args(board, server), capsys)
    assert code == AlreadyRegistered.exit_code and "already registered" in err
    assert sorted(p.name for p in flash_dir.iterdir()) == before
    assert api(server, "/api/v1/devices/NC0001")[1]["special_number"] == "+687751999"


def test_failed_write_on_board_removes_the_registration(flash_dir, board, server, capsys, monkeypatch):
    (flash_dir / "config.json.tmp").mkdir()  # the board cannot create its temp file
    monkeypatch.setenv("TGD_TECH_TOKEN", server.tech_token)
    code, _, err = run(provision_args(board, server), capsys)
    assert code != 0 and "config.json.tmp" in err
    assert api(server, "/api/v1/devices/NC0001")[0] == 404
    assert not (flash_dir / "config.json").exists()


def test_second_provision_is_refused(flash_dir, board, server, capsys, monkeypatch):
    monkeypatch.setenv("TGD_TECH_TOKEN", server.tech_token)
    assert run(provision_args(board, server), capsys)[0] == 0
    key = json.loads((flash_dir / "config.json").read_text())["key"]
    code, _, err = run(provision_args(board, server, "NC0002", "+687751002"), capsys)
    assert code == 8 and "already provisioned as NC0001" in err
    assert json.loads((flash_dir / "config.json").read_text())["key"] == key
    assert api(server, "/api/v1/devices/NC0002")[0] == 404


def test_modem_not_answering(tmp_path, flash_dir, network, server, capsys, monkeypatch):
    silent = make_modem(network)  # never switched on, and no PWRKEY line to switch it on
    vb = VirtualBoard(flash_dir, uart=silent.port).start()
    try:
        monkeypatch.setenv("TGD_TECH_TOKEN", server.tech_token)
        code, _, err = run(provision_args(vb, server) + ["--modem-boot-timeout", "1"], capsys)
        assert code == ModemNotAnswering.exit_code and "modem does not answer" in err
        assert api(server, "/api/v1/devices/NC0001")[0] == 404
        assert not (flash_dir / "config.json").exists()

        provision.provision_host(flash_dir, device_id="NC0001", special_number="+687751001",
                                 sms_number="+687700100", server_url=server.base_url + "/x")
        report = tmp_path / "r.json"
        code, out, err = run(["selftest", "--port", vb.url, "--report", str(report),
                              "--modem-boot-timeout", "1"], capsys)
        assert code == ModemNotAnswering.exit_code
        checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]}
        assert checks["config valid"]["ok"] and not checks["modem answers"]["ok"]
        assert not checks["test message accepted"]["ok"]
        assert "FAIL  modem answers" in out
    finally:
        vb.stop()
        silent.close()


def test_selftest_fails_on_low_battery(tmp_path, flash_dir, board, modem, server, capsys):
    provision.provision_host(flash_dir, device_id="NC0001", special_number="+687751001",
                             sms_number="+687700100", server=server.tech)
    modem.battery_mv = 3400
    report = tmp_path / "r.json"
    code, out, err = run(["selftest", "--port", board.url, "--report", str(report)], capsys)
    assert code == 12 and "self-test FAILED (battery)" in err
    checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]}
    assert not checks["battery"]["ok"] and "3400 mV" in checks["battery"]["detail"]
    assert checks["test message accepted"]["ok"]
    assert "RESULT: FAIL" in out


def test_detect_on_a_virtual_board(board, capsys):
    code, out, _ = run(["detect", "--port", board.url], capsys)
    assert code == 0
    # 1.28 on the ESP32-faithful VM, 1.29 on the PyPI port
    assert re.search(r"MicroPython 1\.(28|29)\.0 ", out), out
    assert "TGD firmware installed" in out and "not provisioned" in out


def test_selftest_of_an_unregistered_handset_fails(tmp_path, flash_dir, board, server, capsys, monkeypatch):
    provision.provision_host(flash_dir, device_id="NC0009", special_number="+687751009",
                             sms_number="+687700100", server_url=server.base_url + "/api/v1/device/messages")
    monkeypatch.setenv("TGD_TECH_TOKEN", server.tech_token)
    report = tmp_path / "r.json"
    code, out, err = run(["selftest", "--port", board.url, "--report", str(report),
                          "--server", server.base_url], capsys)
    assert code == 12
    checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]}
    assert not checks["test message accepted"]["ok"] and "HTTP 401" in checks["test message accepted"]["detail"]
    assert not checks["server recorded the test"]["ok"]
    assert checks["modem answers"]["ok"] and checks["battery"]["ok"]


def test_batch_provision_and_selftest_on_two_handsets(tmp_path, flashed, network, server, capsys, monkeypatch):
    boards, modems = [], []
    try:
        for n in (1, 2):
            modem = make_modem(network, msisdn=f"+68775100{n}", imei=f"86612304567890{n}",
                               iccid=f"896870100000012345{n}")
            modem.power_on()
            modems.append(modem)
            flash = tmp_path / f"flash{n}"
            shutil.copytree(flashed[0], flash)
            boards.append(start_board(flash, modem))
        csv = tmp_path / "bench.csv"
        csv.write_text("device_id,special_number,port\n"
                       + "".join(f"NC000{n},+68775100{n},{b.url}\n" for n, b in zip((1, 2), boards, strict=True)))
        monkeypatch.setenv("TGD_TECH_TOKEN", server.tech_token)
        code, out, err = run(["provision", "--batch", str(csv), "--sms-number", "+687700100", "--apn", "mobilis",
                              "--server", server.base_url], capsys)
        assert code == 0, out + err
        assert "OK   NC0001" in out and "OK   NC0002" in out
        for n in (1, 2):
            assert json.loads((tmp_path / f"flash{n}" / "config.json").read_text())["device_id"] == f"NC000{n}"
            assert api(server, f"/api/v1/devices/NC000{n}")[1]["imei"] == f"86612304567890{n}"
        code, out, err = run(["selftest", "--batch", str(csv), "--server", server.base_url,
                              "--report-dir", str(tmp_path / "reports")], capsys)
        assert code == 0, out + err
        reports = sorted((tmp_path / "reports").iterdir())
        assert [json.loads(r.read_text())["device_id"] for r in reports] == ["NC0001", "NC0002"]
        assert all(json.loads(r.read_text())["result"] == "PASS" for r in reports)
    finally:
        for b in boards:
            b.stop()
        for m in modems:
            m.close()


def test_virtual_board_without_modem_is_a_modem_not_answering(tmp_path, flash_dir, server, capsys):
    """`tgd-flash virtual-board` without --uart: exit 9 in one line, not a MicroPython traceback."""
    board = start_board(flash_dir)  # no modem
    try:
        code, _, err = run(provision_args(board, server) + ["--token", server.tech_token], capsys)
        assert code == ModemNotAnswering.exit_code, err
        assert "no modem" in err and "--uart" in err and "tgd-rig emulator" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not (flash_dir / "config.json").exists()
        assert api(server, "/api/v1/devices/NC0001")[0] == 404

        provision.provision_host(flash_dir, device_id="NC0001", special_number="+687751001",
                                 sms_number="+687700100", server_url="http://127.0.0.1:9/x")
        report = tmp_path / "report.json"
        code, out, err = run(["selftest", "--port", board.url, "--report", str(report)], capsys)
        assert code == ModemNotAnswering.exit_code, out + err
        assert "Traceback" not in out + err and len(err.strip().splitlines()) == 1
        checks = json.loads(report.read_text())["checks"]
        assert [c["name"] for c in checks if not c["ok"]] == ["modem answers"]
    finally:
        board.stop()
