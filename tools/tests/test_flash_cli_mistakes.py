"""A technician's plausible mistakes: one line naming the flag and the fix, nothing left behind."""

from __future__ import annotations

import shlex
import sys

import pytest
from flash_testkit import fake_image, one_line, run

from tgd_flash import cli, esp, provision

NUMBERS = ["--special-number", "+687751101", "--sms-number", "+687700100"]


def test_host_provision_as_documented_needs_no_device_url(tmp_path, capsys):
    """docs/technician.md: --host-dir without --server nor --device-url."""
    handset = tmp_path / "bench" / "handsets" / "NC0101"
    code, out, err = run(["provision", "--host-dir", str(handset), "--device-id", "NC0101", *NUMBERS,
                          "--apn", "mobilis", "--imei", "866123045670001",
                          "--iccid", "8968701000000000001"], capsys)
    assert code == 0, err
    import json

    cfg = json.loads((handset / "config.json").read_text())
    assert cfg["server_url"] == provision.LOCAL_DEVICE_URL == "http://127.0.0.1:8080/api/v1/device/messages"
    assert "--device-url to change" in out


def test_missing_apn_is_refused_not_written_empty(tmp_path, capsys):
    code, _, err = run(["provision", "--host-dir", str(tmp_path / "h"), "--device-id", "NC0101",
                        *NUMBERS], capsys)
    line = one_line(err)
    assert code == 2 and "--apn is required" in line and "--apn mobilis" in line
    assert not (tmp_path / "h").exists()
    # an explicit empty APN is a choice (the modem's default context)
    code, _, err = run(["provision", "--host-dir", str(tmp_path / "h"), "--device-id", "NC0101",
                        *NUMBERS, "--apn", ""], capsys)
    assert code == 0, err


def test_batch_without_apn_is_refused_before_the_first_handset(tmp_path, capsys):
    csv = tmp_path / "bench.csv"
    csv.write_text("device_id,special_number\nNC0001,+687751001\nNC0002,+687751002\n")
    code, out, err = run(["provision", "--batch", str(csv), "--host-dir", str(tmp_path / "h"),
                          "--sms-number", "+687700100"], capsys)
    assert code == 2 and "--apn is required" in one_line(err) and "NC0001, NC0002" in err
    assert out == "" and not (tmp_path / "h").exists()


def test_national_special_number_is_refused_with_the_international_form(tmp_path, capsys):
    code, out, err = run(["provision", "--host-dir", str(tmp_path / "h"), "--device-id", "NC0103",
                          "--special-number", "751103", "--sms-number", "+687700100",
                          "--apn", "mobilis"], capsys)
    line = one_line(err)
    assert out == ""
    assert code == 13 and "--special-number 751103" in line and "+687751103" in line
    assert not (tmp_path / "h").exists()


def test_validator_findings_are_in_words_and_name_the_flags(tmp_path, capsys):
    code, _, err = run(["provision", "--host-dir", str(tmp_path / "h"), "--device-id", "NC 01",
                        *NUMBERS, "--apn", "mobilis", "--heartbeat-interval-s", "5",
                        "--device-url", "ftp://x"], capsys)
    line = one_line(err)
    assert code == 13
    assert "--device-id 'NC 01': use 1 to 32 letters, digits" in line
    assert "--heartbeat-interval-s 5: must be a whole number from 60 to 86400" in line
    assert "--device-url ftp://x: must be an http:// or https:// URL" in line
    assert "not_" not in line and "{1,32}" not in line and "heartbeat_interval_s" not in line
    assert not (tmp_path / "h").exists()


def test_wrong_server_path_says_so_without_the_html(tmp_path, server, capsys):
    handset = tmp_path / "bench" / "handsets" / "NC0101"
    code, _, err = run(["provision", "--host-dir", str(handset), "--device-id", "NC0101", *NUMBERS,
                        "--apn", "mobilis", "--server", server.base_url + "/tgd",
                        "--token", server.tech_token], capsys)
    line = one_line(err)
    assert code == 10 and "check --server" in line and "HTTP 404" in line
    assert "<" not in line and "html" not in line.lower()
    assert not (tmp_path / "bench").exists()


def test_failed_provision_leaves_no_directory(tmp_path, server, capsys):
    handset = tmp_path / "bench" / "handsets" / "NC0101"
    code, _, err = run(["provision", "--host-dir", str(handset), "--device-id", "NC0101", *NUMBERS,
                        "--apn", "mobilis", "--server", server.base_url, "--token", "wrong"], capsys)
    assert code == 7 and "refused the technician token" in one_line(err)
    assert not (tmp_path / "bench").exists()  # "nothing touched"


def test_documented_dry_run_needs_neither_handset_nor_chip(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(esp, "usb_serial_ports", lambda: [])
    image = fake_image(tmp_path / "ESP32_GENERIC-v1.29.0.bin", 0)
    code, out, err = run(["flash", "--image", str(image), "--dry-run"], capsys)
    assert code == 0, err
    py = shlex.quote(sys.executable)
    assert f"would run: {py} -m esptool --chip esp32 --port '<port>' erase-flash" in out
    assert "no handset plugged in" in out


def test_chip_flag_contradicting_the_image_names_the_flag(tmp_path, capsys):
    image = fake_image(tmp_path / "ESP32_GENERIC.bin", 0)
    code, _, err = run(["flash", "--port", "/dev/ttyUSB0", "--chip", "esp32s3", "--image",
                        str(image), "--dry-run"], capsys)
    line = one_line(err)
    assert code == 5 and "--chip esp32s3 names an ESP32-S3" in line
    assert "the board is" not in line


@pytest.mark.parametrize("argv, flag", [
    (["provision", "--transport", "carrier-pigeon"], "--transport"),
    (["provision", "--heartbeat-interval-s", "often"], "--heartbeat-interval-s"),
    (["virtual-board"], "--flash-dir"),
    (["flash", "--colour", "red"], "--colour"),
])
def test_argument_mistakes_are_one_line(argv, flag, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    line = one_line(capsys.readouterr().err)
    assert info.value.code == 2 and flag in line and "--help" in line and "usage:" not in line


def test_virtual_board_uart_that_does_not_exist(tmp_path, capsys):
    code, _, err = run(["virtual-board", "--flash-dir", str(tmp_path / "b"), "--uart",
                        str(tmp_path / "pts7")], capsys)
    assert code == 2 and "tgd-rig emulator" in one_line(err)
    assert not (tmp_path / "b").exists()


def test_server_without_a_scheme_names_server_not_device_url(tmp_path, capsys):
    code, _, err = run(["provision", "--host-dir", str(tmp_path / "h"), "--device-id", "NC0101",
                        *NUMBERS, "--apn", "mobilis", "--server", "tgd.opt.nc", "--token", "t"], capsys)
    line = one_line(err)
    assert code == 2 and "--server tgd.opt.nc" in line and "https://tgd.opt.nc" in line
    assert "--device-url" not in line and not (tmp_path / "h").exists()
