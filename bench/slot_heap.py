"""What a slot's modules cost the heap of a 48 KB handset (docs/benchmarks.md "A slot's heap").

    .venv/bin/python bench/slot_heap.py

On the ESP32-faithful VM (build/esp32-vm/micropython), as main.py boots: the slot's
modules loaded over the frozen firmware (tgd/ota/overlay.py), then tgd.app imported;
the live heap then, less the same with no slot (tgd_flash.release.slot_heap, the
measure `tgd-flash release` takes of every release and refuses over
SLOT_HEAP_BUDGET). Printed for each tgd module alone in the slot, compiled as the
release tool compiles it, and for all of them (at 1 MB, and whether that boots at 48 KB).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from tgd_flash.release import (  # noqa: E402
    SLOT_HEAP_BUDGET,
    ReleaseRefused,
    compile_bundle,
    slot_heap,
)

VM = REPO / "build" / "esp32-vm" / "micropython"
MPY_CROSS = REPO / "build" / "esp32-vm" / "mpy-cross"


def main() -> int:
    files = compile_bundle(REPO / "firmware", MPY_CROSS)
    tgd = [(p, d) for p, d in files if p.startswith("tgd/") and not p.endswith("/__init__.mpy")]
    size = sum(len(d) for _, d in tgd)
    base = slot_heap([], VM)
    print(f"whole tree: {sum(len(d) for _, d in files)} bytes of .mpy ({len(files)} files); "
          f"the tgd modules an overlay loads: {size}")
    print(f"live heap after the boot's imports, no slot: {base} bytes")
    try:
        print(f"all tgd modules in the slot at 48 KB: boots, {slot_heap(tgd, VM, '48k')} bytes")
    except ReleaseRefused as exc:
        print(f"all tgd modules in the slot at 48 KB: {str(exc).rsplit(': ', 1)[-1]}")
    cost = slot_heap(tgd, VM) - base
    print(f"all tgd modules in the slot: +{cost} bytes of heap ({cost / size:.2f} per .mpy byte)")
    for path, data in tgd:
        extra = slot_heap([(path, data)], VM) - base
        print(f"  {path:28} {len(data):6} bytes .mpy  +{extra:6} heap  ({extra / len(data):.2f})")
    print(f"the release tool refuses over SLOT_HEAP_BUDGET = {SLOT_HEAP_BUDGET} bytes of heap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
