"""The ESP32-faithful VM (`make esp32-vm`) and the manifest it freezes.

- firmware/manifest.py freezes asyncio and every handset module (the packages tgd/
  and boards/), never the entry script or the host board's own modules (what an ESP32 image takes with
  FROZEN_MANIFEST=); firmware/host/manifest.py adds the host board for the VM;
- `micropython firmware/main.py` on the VM runs the frozen modules, not the .py
  files next to main.py (they would be compiled into the heap);
- a traceback on the VM names the file and the line.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tgd_flash.micropython_vm import micropython

FIRMWARE = Path(__file__).resolve().parents[1]
REPO = FIRMWARE.parent
VM_SRC = REPO / "build" / "esp32-vm" / "src"
HOST_ONLY = {p.name for p in (FIRMWARE / "host").glob("*.py")} - {"manifest.py"}

needs_vm = pytest.mark.skipif(not micropython().esp32_vm,
                              reason="not on the ESP32-faithful VM (make esp32-vm builds it)")


def frozen_files(manifest: Path, port_dir: Path) -> set[str]:
    """What MicroPython's own manifest reader (tools/manifestfile.py) freezes."""
    tools = VM_SRC / "tools" / "manifestfile.py"
    if not tools.exists():
        pytest.skip("no MicroPython source unpacked under build/esp32-vm (make esp32-vm)")
    spec = importlib.util.spec_from_file_location("manifestfile", tools)
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    m = mf.ManifestFile(mf.MODE_FREEZE, {"MPY_DIR": str(VM_SRC), "PORT_DIR": str(port_dir),
                                         "BOARD_DIR": None, "MPY_LIB_DIR": None})
    m.execute(str(manifest))
    return {r.target_path for r in m.files()}


def test_the_handset_manifest_freezes_asyncio_and_the_firmware_never_the_host_board(tmp_path):
    # an ESP32 port directory whose own manifest freezes one module of its own
    (tmp_path / "boards").mkdir()
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "_boot.py").write_text("")
    (tmp_path / "boards" / "manifest.py").write_text('freeze("$(PORT_DIR)/modules")\n')
    frozen = frozen_files(FIRMWARE / "manifest.py", tmp_path)
    assert "_boot.py" in frozen  # the port's own modules come first
    assert "asyncio/core.py" in frozen
    handset = {p.relative_to(FIRMWARE).as_posix() for d in ("tgd", "boards")
               for p in (FIRMWARE / d).rglob("*.py")}
    assert {"tgd/__init__.py", "tgd/app.py", "tgd/modem/sim7600.py", "tgd/uplink/mqtt.py",
            "boards/lilygo.py"} <= handset
    assert {"board_host.py", "flash_image.py", "heap_probe.py"} <= HOST_ONLY
    assert handset <= frozen
    assert not (HOST_ONLY | {"main.py", "manifest.py"}) & {Path(t).name for t in frozen}


def test_the_vm_manifest_adds_the_host_board(tmp_path):
    frozen = frozen_files(FIRMWARE / "host" / "manifest.py", tmp_path)
    assert {"board_host.py", "flash_image.py", "tgd/app.py", "asyncio/core.py"} <= frozen
    assert "main.py" not in frozen and "manifest.py" not in frozen


@needs_vm
def test_main_runs_the_frozen_modules_not_the_copies_next_to_it(tmp_path):
    # A copy of the firmware next to main.py that would fail if it were imported.
    shutil.copy(FIRMWARE / "main.py", tmp_path / "main.py")
    (tmp_path / "tgd").mkdir()
    for name in ("tgd/__init__.py", "tgd/app.py", "tgd/log.py", "board_host.py"):
        (tmp_path / name).write_text("raise ImportError('imported the copy, not the frozen module')\n")
    proc = subprocess.Popen([micropython().executable, "-X", "heapsize=48k", "main.py"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={"PATH": "/usr/bin:/bin"})  # no TGD_FLASH
    try:
        out, _ = proc.communicate(timeout=2.5)  # the app restarts after a pause, for ever
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert "imported the copy" not in out
    assert " BOOT board=host " in out and "BoardError:TGD_FLASH_is_not_set" in out
    # the traceback names the frozen module's file and line
    assert re.search(r'File "board_host\.py", line \d+, in mount_flash', out), out


@needs_vm
def test_the_vm_is_32_bit_and_its_heap_is_counted_in_bytes():
    out = subprocess.run([micropython().executable, "-X", "heapsize=48k", "-c",
                          "import sys, gc; print(sys.maxsize, gc.mem_alloc() + gc.mem_free())"],
                         capture_output=True, text=True, timeout=30).stdout.split()
    assert int(out[0]) == 2**31 - 1
    assert 44 * 1024 < int(out[1]) <= 48 * 1024  # less the GC block table: 48000 here
