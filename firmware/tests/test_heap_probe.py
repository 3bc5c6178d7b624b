"""tools/heap_probe.py and the probe it starts inside the firmware (firmware/host/heap_probe.py).

The long runs (`heap_probe.py min`, `heap_probe.py peak`) are benchmark commands
(docs/benchmarks.md); here the probe runs for a few seconds in a firmware process
and its dump is read back and broken down.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from tgd_flash.micropython_vm import micropython

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import heap_probe  # noqa: E402

needs_vm = pytest.mark.skipif(not micropython().esp32_vm,
                              reason="not on the ESP32-faithful VM (make esp32-vm builds it)")


@needs_vm
def test_the_probe_dumps_the_heap_and_the_tool_says_what_it_holds(tmp_path, capsys):
    # No TGD_FLASH: the app stops at the flash and main.py starts it again, for ever.
    proc = subprocess.Popen([micropython().executable, "-X", "heapsize=48k",
                             str(REPO / "firmware" / "main.py")], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"PATH": "/usr/bin:/bin", "TGD_HEAP_PROBE": str(tmp_path)})
    try:
        time.sleep(2.5)
    finally:
        proc.kill()
        proc.wait()
    files = [heap_probe.read_probe_file(p) for p in tmp_path.glob("heap-*.txt")]
    assert len(files) == 1 and files[0].dumps, "no complete dump"
    pf = files[0]
    assert 0 < pf.own < 2048  # the probe's own objects
    dump = pf.peak
    rows = heap_probe.breakdown(pf, dump)
    families = {what for what, _, _ in heap_probe.group(rows)}
    assert {"modules (with their globals)", "dict", "function objects (function)",
            "classes (type objects)"} <= families
    assert any(what == "instance: tgd.log.Log" for what, _, _ in rows), rows
    # every allocated block is counted once: the rows add up to the live heap
    counted = sum(size for _, _, size in rows)
    assert abs(counted - dump.used) <= 256, (counted, dump.used)
    # `tools/heap_probe.py report DIR` prints the same breakdown again
    assert heap_probe.main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 firmware processes" in out and "what the peak holds, by family:" in out


def test_min_refuses_a_range_upside_down(capsys):
    if not micropython().esp32_vm:
        pytest.skip("the ESP32-faithful VM is not built (make esp32-vm)")
    assert heap_probe.main(["min", "--low", "40", "--high", "32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--low must be under --high" in err


def test_the_probe_needs_the_vm(monkeypatch, capsys):
    monkeypatch.setattr(heap_probe, "micropython",
                        lambda: micropython().__class__("micropython", False, "512k"))
    assert heap_probe.main(["peak", "--quick"]) == 2
    assert "make esp32-vm" in capsys.readouterr().err
