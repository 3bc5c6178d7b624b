"""A slot's .mpy modules load over the frozen packages (tgd/ota/overlay.py, on the VM).

MicroPython looks a submodule up in its package's one __path__: a slot folder put first
on sys.path would make <slot>/tgd the whole tgd package, and every frozen module the
release left out unimportable. The overlay keeps the frozen packages and loads the
slot's modules under their full names, in whatever order their imports need.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tgd_flash.micropython_vm import micropython

REPO = Path(__file__).resolve().parents[2]
MPY_CROSS = REPO / "build" / "esp32-vm" / "mpy-cross"

needs_vm = pytest.mark.skipif(not micropython().esp32_vm,
                              reason="not on the ESP32-faithful VM (make esp32-vm builds it)")


def compile_to(slot: Path, rel: str, source: str) -> None:
    src = slot / "src" / rel
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(source)
    out = slot / (rel[:-3] + ".mpy")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(MPY_CROSS), "-o", str(out), "-s", rel, str(src)], check=True)


def run_vm(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([micropython().executable, "-X", "heapsize=48k", "-c", script],
                          capture_output=True, text=True, timeout=30)


@needs_vm
def test_a_slot_module_replaces_the_frozen_one_and_the_rest_stay_frozen(tmp_path):
    slot = tmp_path / "b"
    # aml (sorted first) needs device, a slot module loaded after it: tried again
    compile_to(slot, "tgd/aml.py", "from tgd.device import FW_VERSION\nSEEN = FW_VERSION\n")
    device = (REPO / "firmware" / "tgd" / "device.py").read_text()
    compile_to(slot, "tgd/device.py", device.replace('FW_VERSION = "1.0.0"', 'FW_VERSION = "9.9.9"'))
    errors = (REPO / "firmware" / "tgd" / "modem" / "errors.py").read_text()
    compile_to(slot, "tgd/modem/errors.py", errors + "\nNEW = 1\n")
    script = f"""
import sys
sys.path.insert(0, ".frozen")
from tgd.ota import overlay
print("LOADED", overlay.load({str(slot)!r}))
from tgd.device import FW_VERSION
import tgd.aml
from tgd.modem.errors import NEW
from tgd.clock import Clock  # frozen, left out of the release
from tgd.app import App  # the whole app imports over the overlay
print("VERSION", FW_VERSION, tgd.aml.SEEN, NEW, tgd.device.__file__)
"""
    out = run_vm(script)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "LOADED ['tgd.device', 'tgd.modem.errors', 'tgd.aml']" in out.stdout, out.stdout
    assert f"VERSION 9.9.9 9.9.9 1 {slot}/tgd/device.mpy" in out.stdout, out.stdout


@needs_vm
def test_a_slot_module_that_cannot_load_raises_and_leaves_no_placeholder(tmp_path):
    slot = tmp_path / "b"
    compile_to(slot, "tgd/aml.py", "raise ValueError('broken release')\n")
    script = f"""
import sys
sys.path.insert(0, ".frozen")
from tgd.ota import overlay
try:
    overlay.load({str(slot)!r})
except ValueError as e:
    print("RAISED", e, "tgd.aml" in sys.modules)
"""
    out = run_vm(script)
    assert "RAISED broken release False" in out.stdout, out.stdout + out.stderr


@needs_vm
def test_a_slot_that_fails_halfway_leaves_the_whole_factory_firmware(tmp_path):
    # device loads (sorted before, needed by nothing), aml cannot: no half release stays
    slot = tmp_path / "b"
    device = (REPO / "firmware" / "tgd" / "device.py").read_text()
    compile_to(slot, "tgd/device.py", device.replace('FW_VERSION = "1.0.0"', 'FW_VERSION = "9.9.9"'))
    compile_to(slot, "tgd/aml.py", "raise ValueError('broken release')\n")
    script = f"""
import sys
sys.path.insert(0, ".frozen")
from tgd.ota import overlay
try:
    overlay.load({str(slot)!r})
except ValueError as e:
    print("RAISED", e)
import tgd
print("LEFT", "device" in tgd.__dict__, "tgd.device" in sys.modules)
from tgd.device import FW_VERSION
import tgd.aml
print("VERSION", FW_VERSION, tgd.device.__file__)
"""
    out = run_vm(script)
    assert "RAISED broken release" in out.stdout, out.stdout + out.stderr
    assert "LEFT False False" in out.stdout, out.stdout
    assert "VERSION 1.0.0 tgd/device.py" in out.stdout, out.stdout
