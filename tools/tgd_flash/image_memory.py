"""What each production route leaves of the heap: measured on the 32-bit VM.

    .venv/bin/python -m tgd_flash.image_memory [--vm build/esp32-vm/micropython]

The VM is MicroPython's unix port built 32-bit with the firmware frozen
(`make esp32-vm`), so it holds code as an ESP32 image does. It imports every
module of firmware/manifest.py three ways and reports the GC heap each way
takes:

- frozen (route a): the modules frozen in the VM: bytecode in "flash";
- romfs (route b): the ROMFS image that `tgd-flash romfs build` makes, mounted
  with ``vfs.VfsRom`` at /rom and first on ``sys.path``: bytecode run in place;
- mpy (route c): the same ``.mpy`` files imported from a directory: bytecode
  loaded into the heap.

On the VM the ROMFS image itself is a bytes object in the heap (a chip maps
its partition from flash), so the heap is measured after the mount and before
the imports; "free at 48 KB" is 48 KiB minus the VM's start-up use minus what
the imports took.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import freeze_manifest, fwbuild, image, micropython_vm

ROUTES = ("frozen", "romfs", "mpy")
HEAP_KIB = 48
PROBE_HEAP = "512k"  # room for the image and every module at once

# Runs on the VM: argv = route, romfs image, .mpy directory; NAMES is set above it (the unix
# port stops with "FATAL: uncaught NLR" on an argument longer than about 300 bytes).
PROBE = """
import gc, sys
route, romfs, stage = sys.argv[1], sys.argv[2], sys.argv[3]
names = NAMES
gc.collect()
start = gc.mem_alloc()
if route == "romfs":
    import vfs
    f = open(romfs, "rb")
    data = f.read()
    f.close()
    vfs.mount(vfs.VfsRom(data), "/rom")
    sys.path.insert(0, "/rom")
elif route == "mpy":
    sys.path.insert(0, stage)
gc.collect()
before = gc.mem_alloc()
where = {}
skipped = []
for name in names:
    try:
        __import__(name)
        where[name] = getattr(sys.modules[name], "__file__", "")
    except Exception as e:
        skipped.append(name + ": " + repr(e))
gc.collect()
print(repr((start, gc.mem_alloc() - before, where, skipped)))
"""


@dataclass
class RouteFigure:
    route: str
    startup: int  # heap in use when the VM starts
    imports: int  # heap the firmware's imports took
    where: dict[str, str]  # module -> where it was imported from
    skipped: list[str]

    @property
    def free_at(self) -> int:
        return HEAP_KIB * 1024 - self.startup - self.imports


def default_vm() -> Path:
    return micropython_vm.ESP32_VM


def default_stock_vm() -> Path:
    return micropython_vm.ESP32_VM.parent.parent / "esp32-vm-stock" / "micropython"


def probe(vm: Path, route: str, romfs: Path, stage: Path, names: list[str], cwd: Path) -> RouteFigure:
    script = cwd / "probe.py"
    script.write_text(f"NAMES = {names!r}\n" + PROBE)
    result = subprocess.run(
        [str(vm), "-X", f"heapsize={PROBE_HEAP}", str(script), route, str(romfs), str(stage)],
        capture_output=True, text=True, cwd=cwd, timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the VM failed on route {route}: {result.stderr.strip()[-500:]}")
    startup, imports, where, skipped = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    return RouteFigure(route, startup, imports, where, skipped)


def stock_vm_build(vm: Path, stock: Path) -> list[str]:
    """The make command that builds ``stock``: the same 32-bit unix port, only asyncio frozen.

    Routes (b) and (c) run on a stock MicroPython: on the frozen VM the firmware's
    names are already interned in flash, so a .mpy or ROMFS import there would not pay
    for its qstrs, as it does on a handset.
    """
    vm_dir = vm.parent
    manifest = stock.parent / "manifest.py"
    return ["make", "-j2", "-C", str(vm_dir / "src" / "ports" / "unix"), "VARIANT=standard",
            "MICROPY_FORCE_32BIT=1", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0", "MICROPY_PY_FFI=0",
            f"FROZEN_MANIFEST={manifest}", f"MPY_LIB_DIR={vm_dir / 'no-micropython-lib'}",
            f"BUILD={stock.parent / 'unix'}"]


def build_stock_vm(vm: Path, stock: Path) -> None:
    if not (vm.parent / "src" / "ports" / "unix").is_dir():
        raise RuntimeError(f"no MicroPython source under {vm.parent / 'src'}: run `make esp32-vm` first")
    stock.parent.mkdir(parents=True, exist_ok=True)
    (stock.parent / "manifest.py").write_text('include("$(MPY_DIR)/extmod/asyncio")\n')
    argv = stock_vm_build(vm, stock)
    print("run: " + " ".join(argv), file=sys.stderr, flush=True)
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the stock VM build failed: {result.stderr.strip()[-500:]}")
    (stock.parent / "unix" / "micropython").replace(stock)


def measure(vm: Path, firmware_dir: Path, work: Path, stock: Path | None = None) -> dict[str, RouteFigure]:
    files = freeze_manifest.firmware_files(firmware_dir)
    names = [image.module_name(f.target) for f in files]
    romfs = work / "tgd-firmware.romfs"
    plan = image.plan_romfs(firmware_dir, work / "rom", romfs, fwbuild.CHIP_ARCH["esp32"])
    image.run_romfs_plan(plan, out=open(work / "build.log", "w"))  # noqa: SIM115 - closed with the process
    run_dir = work / "run"  # an empty cwd: no .py file shadows anything
    run_dir.mkdir()
    figures = {route: probe(vm if route == "frozen" or stock is None else stock,
                            route, romfs, work / "rom", names, run_dir) for route in ROUTES}
    expected = {"frozen": "", "romfs": "/rom/", "mpy": str(work / "rom") + "/"}
    for route, figure in figures.items():
        # a figure is only worth something if every module came from where the route puts it
    # (a frozen module's __file__ is its path in the manifest: 'tgd/app.py')
        wrong = {n: w for n, w in figure.where.items()
                 if not w.startswith(expected[route]) or (route == "frozen" and w.startswith("/"))}
        if wrong:
            raise RuntimeError(f"route {route}: modules imported from elsewhere: {wrong}")
    return figures


def report(figures: dict[str, RouteFigure], vm: Path, stock: Path | None) -> str:
    label = {"frozen": "(a) frozen image", "romfs": "(b) ROMFS image", "mpy": "(c) .mpy in the heap"}
    lines = [f"VM: {vm} (route a)",
             f"stock VM: {stock} (routes b, c)" if stock else
             "stock VM: none, routes b and c ran on the frozen VM: their qstrs were free "
             "(--build-stock-vm for the handset's figure)",
             f"{'route':24} {'imports take':>12} {'free at 48 KB':>14}"]
    for route in ROUTES:
        f = figures[route]
        lines.append(f"{label[route]:24} {f.imports:>12} {f.free_at:>14}")
    skipped = figures["frozen"].skipped
    lines.append(f"startup use {figures['frozen'].startup} bytes; modules imported: "
                 f"{len(figures['frozen'].where)}; not importable on the PC: {len(skipped)}")
    lines.extend("  " + s for s in skipped)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgd_flash.image_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--vm", type=Path, default=default_vm(), help="the 32-bit VM (make esp32-vm)")
    parser.add_argument("--stock-vm", type=Path, default=default_stock_vm(),
                        help="the same VM with only asyncio frozen, for routes b and c")
    parser.add_argument("--build-stock-vm", action="store_true",
                        help="build --stock-vm first (make in the VM's source, about a minute)")
    parser.add_argument("--firmware-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.vm.is_file():
        print(f"error: no VM at {args.vm}: run `make esp32-vm` first (or give --vm)", file=sys.stderr)
        return 2
    try:
        if args.build_stock_vm:
            build_stock_vm(args.vm, args.stock_vm)
        stock = args.stock_vm if args.stock_vm.is_file() else None
        with tempfile.TemporaryDirectory(prefix="tgd-image-memory-") as tmp:
            figures = measure(args.vm, Path(args.firmware_dir or fwbuild.firmware_dir()), Path(tmp), stock)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report(figures, args.vm, stock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
