"""Heap probe of the firmware on the ESP32-faithful VM (`make esp32-vm`).

    .venv/bin/python tools/heap_probe.py min            # smallest heap the alarm paths pass at
    .venv/bin/python tools/heap_probe.py min --quick    # the host-board tests only (~1 min a step)
    .venv/bin/python tools/heap_probe.py peak           # peak live heap during alarms, and what it holds

`min` runs the host-board tests (firmware/tests/test_host_board.py) and the rig's
alarm, idle and power scenarios (`hil_tests/tests -k "(alarm or idle or power) and not
serial and not test_campaign_broken"`, HTTP and MQTT) at one heap after another (TGD_TEST_HEAP, TGD_RIG_HEAP) and
bisects the smallest at which all pass, in --step KB steps between --low and --high.
Each run stops at its first failure (pytest -x) and runs that test once more: near the
limit, or on a loaded machine, a scenario may pass in one run and fail in the next;
what failed twice or passed the second time is printed.

`peak` runs the same tests at the VM's 48 KB with TGD_HEAP_PROBE set: main.py then
starts firmware/host/heap_probe.py, a task that collects the garbage every 5 ms and, at
each new peak of live heap, writes the GC's allocation table and every object's first
words. This command reads those files and prints each run's peak and, for the highest
peak, what the heap holds: objects by type (instances by class, coroutine frames by
function, dicts, strings...), each owner counted with the tables and buffers it points
to. The probe's own objects (~1 KB, printed) are included in the figures.

Docs: docs/benchmarks.md "Firmware: memory and size", docs/firmware.md "Memory".
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from tgd_flash.micropython_vm import micropython  # noqa: E402

HOST_BOARD_TESTS = ["firmware/tests/test_host_board.py"]
# not test_campaign_broken: it runs a deliberately broken copy of the firmware on the PyPI
# port (64-bit, code in the heap), which no VM heap fits, and its verdict is an invariant's
RIG_TESTS = ["hil_tests/tests", "-k", "(alarm or idle or power) and not serial and not test_campaign_broken"]
BLOCK = 16  # bytes per GC block on a 32-bit MicroPython


class ProbeError(Exception):
    pass


# ---- min -------------------------------------------------------------------------------------


def _pytest(args: list[str], env: dict[str, str]) -> tuple[int, list[str], int]:
    """(passed, ids of the failed tests, pytest's exit code)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                           *args], cwd=REPO, env=env, capture_output=True, text=True)
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (passed|failed|error)", tail[0]))
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M)
    if proc.returncode not in (0, 1) and not failed:
        failed = [f"pytest exit {proc.returncode}"]  # collection, usage
    return counts.get("passed", 0), failed, proc.returncode


def run_tests(heap_k: int, quick: bool) -> tuple[int, int, float]:
    """(passed, failed, seconds) of the alarm paths at `heap_k` KB.

    Each selection runs with -x (a heap that fails says so in its first failure, not
    after every test's time-outs). The failed test is run once more: failing again, it
    fails the heap; passing (a loaded machine), it is named as flaky, set aside and the
    selection goes on without it."""
    env = dict(os.environ, TGD_TEST_HEAP=f"{heap_k}k", TGD_RIG_HEAP=f"{heap_k}k")
    passed = failed = 0
    started = time.monotonic()
    selections = [HOST_BOARD_TESTS] + ([] if quick else [RIG_TESTS])
    for selection in selections:
        flaky: list[str] = []
        while True:
            deselect = [arg for test in flaky for arg in ("--deselect", test)]
            ok, bad, _ = _pytest(["-x", *selection, *deselect], env)
            if not bad:
                passed += ok + len(flaky)
                break
            if bad[0].startswith("pytest exit"):
                failed += 1
                print(f"  {heap_k}k: {bad[0]}", flush=True)
                break
            _, bad_again, _ = _pytest(bad[:1], env)
            if bad_again:
                passed += ok
                failed += 1
                print(f"  {heap_k}k: FAILED {bad[0]} (twice)", flush=True)
                break
            print(f"  {heap_k}k: {bad[0]} failed, then passed when run again (flaky)", flush=True)
            flaky.append(bad[0])
        if failed:
            break  # the heap fails: the other selection would say nothing more
    return passed, failed, time.monotonic() - started


def find_minimum(low: int, high: int, step: int, quick: bool) -> int | None:
    results: dict[int, bool] = {}

    def ok(heap_k: int) -> bool:
        if heap_k not in results:
            passed, failed, secs = run_tests(heap_k, quick)
            results[heap_k] = failed == 0 and passed > 0
            print(f"heap {heap_k}k: {passed} passed, {failed} failed ({secs:.0f} s)", flush=True)
        return results[heap_k]

    if not ok(high):
        return None
    lo, hi = low // step, high // step  # hi passes; lo is below the range or fails
    if ok(lo * step):
        return lo * step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid * step):
            hi = mid
        else:
            lo = mid
    return hi * step


# ---- peak ------------------------------------------------------------------------------------


@dataclass
class Dump:
    used: int
    t: int
    atb: bytes
    objects: list[tuple[int, int, list[int]]]  # (block, blocks, first words)
    names: dict[int, tuple[str, str]]  # address -> (kind, name)


@dataclass
class ProbeFile:
    path: Path
    pool: int = 0
    own: int = 0
    flash: str = ""
    dumps: list[Dump] = field(default_factory=list)

    @property
    def peak(self) -> Dump | None:
        return max(self.dumps, key=lambda d: d.used) if self.dumps else None


def read_probe_file(path: Path) -> ProbeFile:
    pf = ProbeFile(path)
    dump: Dump | None = None
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "probe":
            fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            pf.pool = int(fields.get("pool", "0"), 16)
            pf.own = int(fields.get("own", "0"))
        elif parts[0] == "dump":
            fields = dict(p.split("=", 1) for p in parts[1:])
            dump = Dump(int(fields["used"]), int(fields["t"]), b"", [], {})
        elif dump is not None and parts[0] == "atb":
            dump.atb = bytes.fromhex(parts[1])
        elif dump is not None and parts[0] == "o" and len(parts) == 7:
            dump.objects.append((int(parts[1]), int(parts[2]), [int(x, 16) for x in parts[3:]]))
        elif dump is not None and parts[0] == "n" and len(parts) == 4:
            dump.names.setdefault(int(parts[1], 16), (parts[2], parts[3]))
        elif dump is not None and parts[0] == "end":
            pf.dumps.append(dump)
            dump = None  # a dump cut short (the process was killed) is left out
    return pf


# Objects whose word 3 points to a buffer of their own (dict/instance: the map's table;
# list: the items; str/bytes made at run time, bytearray: the data): that buffer is
# counted with its owner. A module points to its globals dict with word 1.
OWNS_WORD3 = ("dict", "list", "str", "bytes", "bytearray", "set")


def breakdown(pf: ProbeFile, dump: Dump) -> list[tuple[str, int, int]]:
    """[(what, objects, bytes)] of one dump, the biggest first."""
    by_block = {b: (n, w) for b, n, w in dump.objects}

    def block_of(ptr: int) -> int | None:
        if ptr < pf.pool or (ptr - pf.pool) % BLOCK:
            return None
        b = (ptr - pf.pool) // BLOCK
        return b if b in by_block else None

    def name_of(addr: int) -> tuple[str, str] | None:
        return dump.names.get(addr)

    category: dict[int, str] = {}
    owned: dict[int, int] = {}  # buffer block -> owner block
    for b, (_, w) in by_block.items():
        named = name_of(w[0])
        if named is None:
            continue
        kind, name = named
        short = name.rsplit(".", 1)[-1] if name.startswith("builtins.") else name
        if kind != "type":
            continue
        if short == "coroutine_frame":
            fun = name_of(w[2]) or name_of(w[3])
            category[b] = "coroutine frame: " + (fun[1] if fun else "?")
        elif short in ("function", "generator_function", "closure", "bound_method"):
            category[b] = "function objects (" + short.replace("_", " ") + ")"
        elif short == "module":
            category[b] = "modules (with their globals)"
            g = block_of(w[1])
            if g is not None:
                owned[g] = b
        elif short in OWNS_WORD3:
            category[b] = short
        elif short == "type":
            category[b] = "classes (type objects)"
        elif name.startswith("builtins."):
            category[b] = short  # tuple, memoryview, int (big), ...
        else:
            category[b] = "instance: " + name
        if short in OWNS_WORD3 or category[b].startswith(("instance:", "modules")):
            buf = block_of(w[3]) if not category[b].startswith("modules") else None
            if buf is not None and buf not in category:
                owned.setdefault(buf, b)
    # a module's globals dict and its table
    for g, owner in list(owned.items()):
        if category.get(g) == "dict":
            category[g] = category[owner]
            buf = block_of(by_block[g][1][3])
            if buf is not None:
                owned[buf] = owner
    totals: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for b, (n, _) in by_block.items():
        if b in category:
            what = category[b]
            totals[what][0] += 1
        elif b in owned:
            what = category.get(owned[b], "?")
        else:
            what = "untyped blocks (interned names, frame stacks, raw buffers)"
            totals[what][0] += 1
        totals[what][1] += n * BLOCK
    return sorted(((k, v[0], v[1]) for k, v in totals.items()), key=lambda r: -r[2])


def group(rows: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The same rows summed by family (instances, coroutine frames...)."""
    fam: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for what, n, size in rows:
        key = what.split(":", 1)[0] if ":" in what else what
        fam[key][0] += n
        fam[key][1] += size
    return sorted(((k, v[0], v[1]) for k, v in fam.items()), key=lambda r: -r[2])


def run_peak(selection: list[str], keep: Path | None) -> int:
    vm = micropython()
    if not vm.esp32_vm:
        raise ProbeError("the heap probe needs the ESP32-faithful VM: run `make esp32-vm` first")
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tgd-heap-probe-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TGD_HEAP_PROBE=str(folder))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                           *selection], cwd=REPO, env=env, capture_output=True, text=True)
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    print(f"tests at {vm.heap} with the probe: {summary} ({time.monotonic() - started:.0f} s)")
    for failed in re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M):
        print(f"  failed with the probe on (it collects every 5 ms): {failed}")
    return report(folder, vm.heap, keep)


def report(folder: Path, heap: str, keep: Path | None = None) -> int:
    files = [read_probe_file(p) for p in sorted(folder.glob("heap-*.txt"))]
    files = [f for f in files if f.peak is not None]
    if not files:
        raise ProbeError(f"no heap dump in {folder}: did the firmware run on the VM?")
    peaks = sorted(((f.peak.used, f) for f in files), key=lambda p: p[0])
    used = [p for p, _ in peaks]
    print(f"{len(files)} firmware processes; peak live heap: median {used[len(used) // 2]}, "
          f"highest {used[-1]} bytes of {heap}")
    top_used, top = peaks[-1]
    dump = top.peak
    print(f"highest peak: {top_used} bytes (probe's own ~{top.own} bytes included), "
          f"file {top.path}")
    rows = breakdown(top, dump)
    print("\nwhat the peak holds, by family:")
    for what, n, size in group(rows):
        print(f"  {size:7d} bytes  {n:5d} objects  {what}")
    print("\nin detail (20 biggest):")
    for what, n, size in rows[:20]:
        print(f"  {size:7d} bytes  {n:5d}  {what}")
    if not keep:
        print(f"\n(dumps kept in {folder})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/heap_probe.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("min", help="smallest heap at which the alarm paths pass")
    m.add_argument("--low", type=int, default=16, help="KB, lowest heap tried (default 16)")
    m.add_argument("--high", type=int, default=48, help="KB, must pass (default 48)")
    m.add_argument("--step", type=int, default=2, help="KB (default 2)")
    m.add_argument("--quick", action="store_true", help="the host-board tests only")
    p = sub.add_parser("peak", help="peak live heap during alarms and what it holds")
    p.add_argument("--quick", action="store_true", help="the host-board tests only")
    p.add_argument("-k", dest="expr", help="pytest -k expression over the rig tests instead")
    p.add_argument("--keep", type=Path, help="folder for the dumps (default: a temporary one)")
    r = sub.add_parser("report", help="the breakdown of the dumps a `peak --keep DIR` left")
    r.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "min":
            if not micropython().esp32_vm:
                raise ProbeError("the heap probe needs the ESP32-faithful VM: run `make esp32-vm` first")
            if args.step <= 0 or args.low >= args.high:
                raise ProbeError("--low must be under --high and --step positive")
            found = find_minimum(args.low, args.high, args.step, args.quick)
            what = "host-board tests" if args.quick else "host-board tests and rig scenarios"
            if found is None:
                print(f"the {what} fail at --high {args.high}k already")
                return 1
            print(f"smallest heap at which the {what} all pass: {found}k")
            return 0
        if args.command == "report":
            if not args.folder.is_dir():
                raise ProbeError(f"{args.folder}: no such folder (give the one of `peak --keep`)")
            return report(args.folder, micropython().heap, args.folder)
        if args.expr:
            selection = ["hil_tests/tests", "-k", args.expr]
        elif args.quick:
            selection = HOST_BOARD_TESTS
        else:
            selection = HOST_BOARD_TESTS + RIG_TESTS
        return run_peak(selection, args.keep)
    except ProbeError as exc:
        print(f"heap_probe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("heap_probe: interrupted (the runs so far are printed above)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
