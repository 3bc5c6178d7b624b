"""The production image routes (docs/technician.md "Production images"):
(a) `build-image` and a frozen image's `flash`, (b) `romfs build/deploy`, (c) `flash`.

What runs here runs for real: the manifest reader on firmware/manifest.py, mpy-cross,
`mpremote romfs build`, the ROMFS image mounted by MicroPython's own VfsRom and imported
from, a virtual board on the 32-bit frozen VM. ESP-IDF and a board with a ROMFS
partition are not here: their commands are checked as printed.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from flash_testkit import start_board

from tgd_flash import cli, freeze_manifest, image, image_memory, micropython_vm
from tgd_flash.errors import FirmwareMissing
from tgd_flash.virtual_board import VirtualBoard

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
DOC = ROOT / "docs" / "technician.md"
ESP32_VM = micropython_vm.ESP32_VM
needs_vm = pytest.mark.skipif(not ESP32_VM.is_file(), reason="no 32-bit VM: run `make esp32-vm`")


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    out = io.StringIO()
    code = cli.main(argv, out=out)
    return code, out.getvalue(), capsys.readouterr().err


def any_vm() -> str:
    """The 32-bit frozen VM when built, else the PyPI port (both have vfs.VfsRom)."""
    return micropython_vm.executable()


# -- the manifest: the one list of the firmware's modules -----------------------------
def test_the_manifest_lists_handset_modules_only():
    contents = freeze_manifest.read_manifest(FIRMWARE / "manifest.py")
    targets = contents.targets()
    assert len(targets) >= 10
    for f in contents.files:
        assert f.source.is_file() and f.source.is_relative_to(FIRMWARE)
        assert "tests" not in f.source.relative_to(FIRMWARE).parts
        assert "host" not in f.source.relative_to(FIRMWARE).parts
    assert "main.py" not in targets and "manifest.py" not in targets
    assert not {"board_host.py", "flash_image.py", "heap_probe.py"} & {Path(t).name for t in targets}
    assert {"tgd/__init__.py", "tgd/app.py", "tgd/modem/sim7600.py", "tgd/uplink/mqtt.py",
            "boards/__init__.py", "boards/lilygo.py"} <= set(targets)
    assert any("asyncio" in e or "boards/manifest.py" in e for e in contents.external)


def test_manifest_reader_follows_micropython_rules(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    for name in ("a.py", "pkg/__init__.py", "pkg/sub/b.py", "other.py"):
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / "extra.py").write_text("options.defaults(more=False)\nif options.more:\n    module('other.py')\n")
    (tmp_path / "manifest.py").write_text(
        "include('$(MPY_DIR)/extmod/asyncio')\nrequire('ssl')\nmodule('a.py')\n"
        "package('pkg')\ninclude('extra.py', more=True)\n"
    )
    contents = freeze_manifest.read_manifest(tmp_path / "manifest.py")
    assert contents.targets() == ["a.py", "pkg/__init__.py", "pkg/sub/b.py", "other.py"]
    assert contents.external == ["$(MPY_DIR)/extmod/asyncio", "require('ssl')"]
    assert image.module_name("pkg/sub/b.py") == "pkg.sub.b"
    assert image.module_name("pkg/__init__.py") == "pkg"


def test_help_modules_names_match_the_manifest_targets():
    text = ("__main__          asyncio/__init__  tgd/__init__      tgd/modem/at\n"
            "gc                tgd/app           uasyncio\nPlus any modules on the filesystem\n")
    names = image.parse_help_modules(text)
    assert {"asyncio", "tgd", "tgd.modem.at", "tgd.app", "gc"} <= names
    targets = ["tgd/__init__.py", "tgd/app.py", "tgd/modem/at.py"]
    assert {image.module_name(t) for t in targets} <= names


def test_manifest_mistakes_are_one_clear_error(tmp_path):
    (tmp_path / "manifest.py").write_text("module('gone.py')\n")
    with pytest.raises(FirmwareMissing, match="gone.py, which does not exist"):
        freeze_manifest.read_manifest(tmp_path / "manifest.py")
    (tmp_path / "manifest.py").write_text("module('a.py'\n")
    with pytest.raises(FirmwareMissing, match="error in the firmware manifest"):
        freeze_manifest.read_manifest(tmp_path / "manifest.py")
    cwd = os.getcwd()
    with pytest.raises(FirmwareMissing, match="no firmware manifest"):
        freeze_manifest.firmware_files(tmp_path / "nowhere")
    assert os.getcwd() == cwd


# -- (a) the frozen ESP32 image --------------------------------------------------------
def test_build_image_without_esp_idf_prints_the_build_and_exits_16(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IDF_PATH", raising=False)
    src = tmp_path / "micropython"
    code, out, err = run_cli(["build-image", "--micropython-src", str(src)], capsys)
    assert code == 16
    assert err.count("\n") == 1 and err.startswith("error: cannot build the ESP32 image here: IDF_PATH")
    manifest = FIRMWARE / "manifest.py"
    assert f"git clone --depth 1 --branch {image.MICROPYTHON_TAG} " in out
    assert (f"  make -C {src}/ports/esp32 BOARD=ESP32_GENERIC BOARD_VARIANT=SPIRAM "
            f"FROZEN_MANIFEST={manifest}") in out.splitlines()
    assert f"then: tgd-flash flash --image {src}/ports/esp32/build-ESP32_GENERIC-SPIRAM/firmware.bin" in out
    assert not src.exists()


def test_build_image_from_an_archive_asks_for_a_clone(tmp_path, capsys, monkeypatch):
    archive = tmp_path / "micropython-1.28.0.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROPYTHON_SRC", str(archive))
    code, out, err = run_cli(["build-image", "--dry-run"], capsys)
    assert code == 0, err
    assert f"{archive} is an archive without ports/esp32" in out
    assert f"would run: git clone --depth 1 --branch {image.MICROPYTHON_TAG} {image.MICROPYTHON_GIT} " \
        f"{tmp_path / 'micropython'}" in out


def test_build_image_runs_the_esp32_build_where_esp_idf_is(tmp_path, capsys, monkeypatch):
    """Stand-ins for ESP-IDF and the port's Makefile record what the tool runs."""
    src = tmp_path / "micropython"
    log = tmp_path / "make.log"
    for sub in ("mpy-cross", "ports/esp32"):
        (src / sub).mkdir(parents=True)
    (src / "mpy-cross" / "Makefile").write_text(f"all:\n\techo mpy-cross >> {log}\n")
    (src / "ports" / "esp32" / "Makefile").write_text(
        f"all:\n\techo build $(BOARD) $(BOARD_VARIANT) $(FROZEN_MANIFEST) >> {log}\n"
        "\tmkdir -p build-$(BOARD)-$(BOARD_VARIANT) && echo image > build-$(BOARD)-$(BOARD_VARIANT)/firmware.bin\n"
        f"submodules:\n\techo submodules >> {log}\n"
    )
    (src / "ports" / "esp32" / "boards" / "ESP32_GENERIC").mkdir(parents=True)
    (src / "ports" / "esp32" / "boards" / "ESP32_GENERIC" / "mpconfigvariant_SPIRAM.cmake").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "idf.py").write_text("#!/bin/sh\n")
    (bin_dir / "idf.py").chmod(0o755)
    monkeypatch.setenv("IDF_PATH", str(tmp_path))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    code, out, err = run_cli(["build-image", "--micropython-src", str(src)], capsys)
    assert code == 0, err
    assert log.read_text().split("\n")[:3] == [
        "mpy-cross", "submodules", f"build ESP32_GENERIC SPIRAM {FIRMWARE / 'manifest.py'}"]
    assert f"image: {src}/ports/esp32/build-ESP32_GENERIC-SPIRAM/firmware.bin" in out
    log.unlink()
    code, out, err = run_cli(["build-image", "--micropython-src", str(src), "--board", "ESP32_GENRIC"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--board ESP32_GENRIC: no such board" in err
    assert "ESP32_GENERIC" in err
    code, out, err = run_cli(["build-image", "--micropython-src", str(src), "--variant", "OCT"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--variant OCT" in err and "it has: SPIRAM" in err
    assert not log.exists()  # nothing built


@needs_vm
def test_flash_on_a_frozen_image_uploads_only_main(tmp_path, capsys):
    """The 32-bit VM is a frozen image: `flash --frozen` leaves the modules to it."""
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "alarm.mpy").write_bytes(b"M\x06")  # a module of the old flat layout
    # an old upload would shadow the frozen package: its files and its folders go
    (flash / "tgd" / "modem").mkdir(parents=True)
    (flash / "tgd" / "alarm.mpy").write_bytes(b"M\x06")
    (flash / "tgd" / "modem" / "at.mpy").write_bytes(b"M\x06")
    (flash / "journal.log").write_text("data\n")
    board = VirtualBoard(flash, executable=str(ESP32_VM)).start()
    try:
        code, out, err = run_cli(["flash", "--port", board.url, "--frozen"], capsys)
        assert code == 0, err
        assert "frozen in the board's image (route a): uploading only main.py" in out
        assert sorted(p.name for p in flash.iterdir()) == ["fw_manifest.json", "journal.log", "main.py"]
        from tgd_flash.board import Board

        with Board(board.url) as b:
            # frozen, not a file: a frozen module's __file__ is its path in the manifest
            assert b.eval("__import__('tgd.alarm').alarm.__file__") == "tgd/alarm.py"
        code, out, err = run_cli(["detect", "--port", board.url], capsys)
        assert code == 0 and "TGD firmware installed" in out, out + err
    finally:
        board.stop()


def test_mpy_route_on_a_board_without_psram_warns(tmp_path, capsys):
    flash = tmp_path / "flash"
    flash.mkdir()
    board = VirtualBoard(flash, heapsize="200k").start()  # an ESP32's heap, no PSRAM
    try:
        code, out, err = run_cli(["flash", "--port", board.url], capsys)
    finally:
        board.stop()
    assert code == 0, err
    assert re.search(r"warning: the MicroPython on \S+ has a 19\d KB heap \(no PSRAM\)", out), out
    assert "route (a), `tgd-flash build-image`" in out
    assert (flash / "tgd" / "alarm.mpy").is_file()  # a warning: the bench trial goes on


def test_flash_frozen_dry_run_plans_main_only(capsys):
    code, out, err = run_cli(["flash", "--frozen", "--dry-run", "--chip", "esp32"], capsys)
    assert code == 0, err
    assert "mpy-cross" not in out
    assert out.startswith("would check that the image on <port> freezes the firmware")
    assert "then upload main.py" in out


def test_flash_frozen_on_a_stock_image_is_refused(tmp_path, capsys):
    flash = tmp_path / "flash"
    flash.mkdir()
    stock = Path(sys.executable).with_name("micropython")  # the PyPI port: nothing of the firmware frozen
    board = VirtualBoard(flash, executable=str(stock)).start()
    try:
        code, out, err = run_cli(["flash", "--port", board.url, "--frozen"], capsys)
    finally:
        board.stop()
    assert code == 11
    assert err.count("\n") == 1 and "--frozen: the MicroPython on" in err and "leave out --frozen" in err
    assert list(flash.iterdir()) == []


# -- (b) the ROMFS image ---------------------------------------------------------------
def test_romfs_image_builds_mounts_and_imports(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["romfs", "build", "-o", "tgd.romfs"], capsys)
    assert code == 0, err
    data = (tmp_path / "tgd.romfs").read_bytes()
    assert data[:3] == b"\xd2\xcd\x31"
    names = [image.module_name(t) for t in freeze_manifest.read_manifest(FIRMWARE / "manifest.py").targets()]
    assert re.search(rf"ROMFS image tgd.romfs: {len(data)} bytes, {len(names)} modules", out)
    run = tmp_path / "run"
    run.mkdir()
    figure = image_memory.probe(Path(any_vm()), "romfs", tmp_path / "tgd.romfs", tmp_path, names, run)
    assert not figure.skipped
    assert sorted(figure.where) == sorted(names)
    assert all(where.startswith("/rom/") for where in figure.where.values())
    assert not list(FIRMWARE.rglob("*.mpy"))  # nothing compiled next to the sources


def test_romfs_deploy_to_a_board_without_romfs_is_refused(tmp_path, capsys):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "alarm.mpy").write_bytes(b"M\x06")
    board = start_board(flash)  # the unix port has VfsRom but no ROMFS partition
    try:
        code, out, err = run_cli(["romfs", "deploy", "--port", board.url], capsys)
    finally:
        board.stop()
    assert code == 17
    assert err.count("\n") == 1 and "has no ROMFS partition" in err and "build-image" in err
    assert sorted(p.name for p in flash.iterdir()) == ["alarm.mpy"]  # nothing touched


def test_romfs_deploy_of_an_image_for_another_micropython_is_refused(tmp_path, capsys, monkeypatch):
    """An image file holds the bytecode of the mpy-cross that built it (here: one version older)."""
    from tgd_flash import fwbuild

    image_file = tmp_path / "old.romfs"
    image_file.write_bytes(b"\xd2\xcd\x31\x00")
    flash = tmp_path / "flash"
    board = start_board(flash)
    monkeypatch.setattr(fwbuild, "mpy_cross_version", lambda: (6, 2))
    try:
        code, out, err = run_cli(["romfs", "deploy", "--port", board.url, "--image", str(image_file)], capsys)
    finally:
        board.stop()
    assert code == 15
    assert err.count("\n") == 1 and "holds mpy v6.2 bytecode" in err and "leave out --image" in err
    assert list(flash.iterdir()) == []


def test_romfs_mistakes_name_the_flag(tmp_path, capsys):
    code, _, err = run_cli(["romfs", "deploy", "--image", str(tmp_path / "nope.romfs"), "--dry-run"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--image" in err and "romfs build" in err
    code, _, err = run_cli(["romfs", "build", "--chip", "z80", "--dry-run"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--chip z80" in err and "esp32" in err
    code, _, err = run_cli(["romfs", "build", "-o", str(tmp_path), "--dry-run"], capsys)
    assert code == 2 and err.count("\n") == 1 and "is a directory" in err
    code, _, err = run_cli(["build-image", "--firmware-dir", str(tmp_path / "no"), "--dry-run"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--firmware-dir" in err


# -- the documented commands ------------------------------------------------------------
def documented_commands() -> list[str]:
    """The commands of the "Production images" section, as written."""
    text = DOC.read_text()
    section = text.split("## Production images", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines()
            if line.startswith("    tgd-flash ")]


def test_every_documented_route_command_runs(tmp_path, capsys, monkeypatch):
    commands = documented_commands()
    assert any(c.startswith("tgd-flash romfs deploy") for c in commands)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IDF_PATH", raising=False)
    board = start_board(tmp_path / "board")
    try:
        for command in commands:
            argv = shlex.split(command)
            dry = "--dry-run" in argv
            deploy = argv[1:3] == ["romfs", "deploy"]
            if deploy and not dry:
                argv += ["--port", board.url]
            code, out, err = run_cli(argv[1:], capsys)
            if dry:
                expected = 0
            elif argv[1] == "build-image":
                expected = 16  # no ESP-IDF here: the commands are printed
            elif deploy:
                expected = 17  # the virtual board has no ROMFS partition
            else:
                expected = 0
            assert code == expected, f"{command}: {err}"
    finally:
        board.stop()


@needs_vm
def test_memory_probe_reports_each_route(capsys):
    assert "    .venv/bin/python -m tgd_flash.image_memory\n" in (ROOT / "docs" / "benchmarks.md").read_text()
    assert image_memory.main([]) == 0
    out = capsys.readouterr().out
    figures = {m[0]: int(m[1]) for m in re.findall(r"^\((\w)\) .*?(\d+)\s+-?\d+$", out, re.M)}
    # code in flash costs the heap less than code loaded into it
    assert figures["a"] < figures["b"] < figures["c"], out


@needs_vm
def test_a_frozen_handset_is_provisioned_and_passes_its_selftest(tmp_path, flash_dir, board, server, capsys,
                                                                  monkeypatch):
    """Route (a) through the bench: flash (main.py only), provision, self-test on the frozen VM."""
    code, out, err = run_cli(["flash", "--port", board.url, "--frozen"], capsys)
    assert code == 0, out + err
    monkeypatch.setenv("TGD_TECH_TOKEN", server.tech_token)
    code, out, err = run_cli(["provision", "--port", board.url, "--device-id", "NC0001",
                              "--special-number", "+687751001", "--sms-number", "+687700100", "--apn", "mobilis",
                              "--server", server.base_url], capsys)
    assert code == 0, out + err
    report = tmp_path / "report.json"
    code, out, err = run_cli(["selftest", "--port", board.url, "--server", server.base_url,
                              "--report", str(report)], capsys)
    assert code == 0, out + err
    assert "RESULT: PASS" in out
    assert re.search(r"PASS\s+firmware intact\s+1 files, fw ", out), out
    assert not [p.name for p in flash_dir.rglob("*") if p.suffix in (".py", ".mpy") and p.name != "main.py"]
    assert not (flash_dir / "tgd").exists()
