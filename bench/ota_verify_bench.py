"""Release signature verification on the ESP32-faithful VM (docs/benchmarks.md, issue 17).

    .venv/bin/python bench/ota_verify_bench.py [--runs 20] [--heap 48k]

Signs a release manifest of the real shape with a throw-away key (CPython,
tgd_flash.release_sign), then has the VM (build/esp32-vm/micropython, 32-bit, firmware
frozen) verify it with the frozen firmware/ed25519.py, as a handset does before it
writes a bundle anywhere. Prints the median/min/max time of one verify, and the smallest heap,
in KB, in which a verify still passes (what it needs beyond the VM's own start-up).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tgd_flash import release_file, release_sign
from tgd_flash.micropython_vm import micropython

HERE = Path(__file__).resolve().parent


def run_vm(vm: str, heap: str, pub: bytes, manifest: Path, sig: bytes, runs: int) -> str:
    env = dict(os.environ, MICROPYPATH=".frozen")  # the frozen firmware only
    proc = subprocess.run([vm, "-X", f"heapsize={heap}", str(HERE / "mp" / "ota_verify_vm.py"),
                           pub.hex(), str(manifest), sig.hex(), str(runs)],
                          capture_output=True, text=True, env=env, timeout=600)
    return proc.stdout + proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--heap", default="48k")
    args = parser.parse_args(argv)
    vm = micropython()
    if not vm.esp32_vm:
        print("error: build the ESP32-faithful VM first: make esp32-vm", file=sys.stderr)
        return 2
    seed = release_sign.new_seed()
    pub = release_sign.public_key(seed)
    bundle = os.urandom(70_000)  # the size of today's .mpy bundle
    line = release_file.canonical({"v": 1, "version": "1.1.0", "route": "mpy", "size": len(bundle),
                                   "sha256": hashlib.sha256(bundle).hexdigest(),
                                   "key": release_sign.key_id(pub), "min": "1.0.0"})
    sig = release_sign.sign(seed, line)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest"
        manifest.write_bytes(line)
        out = run_vm(vm.executable, args.heap, pub, manifest, sig, args.runs)
        result = next((ln for ln in out.splitlines() if ln.startswith("RESULT")), None)
        if result is None or "ok=True" not in result:
            print(f"error: the VM did not verify the signature:\n{out}", file=sys.stderr)
            return 1
        print(f"heap {args.heap}: {result[len('RESULT '):]}")
        passing = [kb for kb in range(8, 34, 2)
                   if "ok=True" in run_vm(vm.executable, f"{kb}k", pub, manifest, sig, 3)]
        failing = sorted(set(range(8, 34, 2)) - set(passing))
        print(f"heaps (KB) in which 3 verifies pass: {passing}; fail: {failing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
