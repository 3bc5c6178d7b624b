"""`tgd-server screenshots --out docs/img`, as docs/operator.md shows it, makes the
console's four pictures (desktop and phone, the live list and an alarm)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tgd_server.console.scene import CHROMIUM

TGD_SERVER = shutil.which("tgd-server", path=str(Path(sys.executable).parent)) or "tgd-server"
SIZES = {"desktop-list.png": (1366, 900), "desktop-alarm.png": (1366, 900),
         "phone-list.png": (390, 844), "phone-alarm.png": (390, 844)}


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header.startswith(b"\x89PNG\r\n\x1a\n"), f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
def test_the_documented_command_writes_the_four_screenshots(tmp_path):
    doc = (Path(__file__).parents[2] / "docs" / "operator.md").read_text(encoding="utf-8")
    assert "tgd-server screenshots --out docs/img" in doc
    for name in SIZES:
        assert f"img/{name}" in doc, f"docs/operator.md does not show {name}"
    done = subprocess.run([TGD_SERVER, "screenshots", "--out", "docs/img"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env=os.environ)
    assert done.returncode == 0, done.stderr[-2000:]
    for name, size in SIZES.items():
        assert png_size(tmp_path / "docs" / "img" / name) == size


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "docs").write_text("a file")
    done = subprocess.run([TGD_SERVER, "screenshots", "--out", "docs"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --out docs is a file: give a folder"]
