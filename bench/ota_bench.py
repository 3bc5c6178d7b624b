"""Handset update download: time and bytes over the emulated link (docs/benchmarks.md).

    .venv/bin/python bench/ota_bench.py [--timing realistic|fast] [--bundle delta|full] [--runs N]

One emulated handset (the real firmware on the ESP32-faithful VM at 48 KB, the SIM7600
emulator) takes an update offered in a heartbeat answer by the OTA test server
(hil_tests/tests/ota_testkit.py: Range, 206) and installs it. Printed, per run, from the
firmware's own log: download (first `OTA step=download` to `step=downloaded`), SHA-256
check, slot write, reset to the new firmware's boot, boot to its self-test passed;
bytes: the bundle, the bytes the server sent, the GETs (Range windows) and the
AT+HTTPREAD chunks. `--bundle full`: tgd/device.mpy with the new version plus every other
firmware module's .mpy as data under full/ (full/tgd/app.mpy, ...) (the size of a whole .mpy set, not imported:
a whole set loaded from files does not fit the 48 KB heap, docs/firmware.md);
`delta`: tgd/device.mpy alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hil_tests" / "tests"))
sys.path.insert(0, str(REPO / "hil_tests"))

import ota_testkit as kit  # noqa: E402

from tgd_flash import release_file  # noqa: E402
from tgd_rig.emulated import EmulatedRig  # noqa: E402
from tgd_rig.emulator.timing import Timing  # noqa: E402


def full_set() -> dict[str, str]:
    """Every firmware module but tgd/device.py (the packages tgd/ and boards/), as data
    files (full/<path>.mpy)."""
    fw = REPO / "firmware"
    return {p.relative_to(fw).as_posix(): p.read_text()
            for pkg in ("tgd", "boards") for p in sorted((fw / pkg).rglob("*.py"))
            if p.relative_to(fw).as_posix() != "tgd/device.py"}


def make_release(keys: kit.Keys, bundle: str) -> kit.Release:
    rel = kit.make_release("1.1.0", keys)
    if bundle == "delta":
        return rel
    files = dict(rel.files)
    for name, src in full_set().items():
        files["full/" + name[:-3] + ".mpy"] = kit.compile_mpy(name, src)
    data = kit.bundle_bytes(files)
    manifest = release_file.canonical(
        release_file.make_manifest("1.1.0", data, keys.pub, "1.0.0")).decode()
    return kit.Release("1.1.0", manifest, keys.sign(manifest.encode()), data, files)


def one_run(workdir: Path, timing: str, bundle: str, index: int) -> dict:
    keys = kit.Keys()
    for k, v in kit.firmware_env().items():
        os.environ[k] = v
    t = Timing.realistic() if timing == "realistic" else kit.uart_timing()
    with kit.OtaServer() as server, EmulatedRig(workdir / f"run{index}", timing=t,
                                                police_answer_after_s=0.3) as rig:
        handset = rig.add_handset(f"OB{index:03d}", config={"heartbeat_interval_s": 60})
        kit.point_handset(handset, server, keys)
        handset.power_on()
        handset.expect("READY", timeout=120)
        server.release = make_release(keys, bundle)
        server.offering = True
        start = handset.expect("OTA", timeout=120, step="download")
        done = handset.expect("OTA", timeout=600, step="downloaded")
        verify = handset.expect("OTA", timeout=60, step="verify")
        write = handset.expect("OTA", timeout=60, step="write")
        switch = handset.expect("OTA", timeout=60, step="switch")
        boot = handset.expect("BOOT", timeout=60, fw="1.1.0")
        ok = handset.expect("OTA", timeout=120, step="selftest", res="ok")
        size = len(server.release.bundle)
        gets = server.bundle_gets()
        return {"bundle_bytes": size, "server_bytes": server.bytes_sent, "gets": len(gets),
                "httpread_chunks": -(-size // 512),
                "download_s": round(done.t - start.t, 2),
                "rate_bytes_per_s": round(size / max(done.t - start.t, 1e-3)),
                "verify_s": round(write.t - verify.t, 3), "write_s": round(switch.t - write.t, 3),
                "reset_to_boot_s": round(boot.t - switch.t, 3),
                "boot_to_selftest_ok_s": round(ok.t - boot.t, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timing", choices=("realistic", "fast"), default="realistic")
    ap.add_argument("--bundle", choices=("delta", "full"), default="full")
    ap.add_argument("--runs", default="1")
    args = ap.parse_args(argv)
    if not args.runs.isdigit() or int(args.runs) < 1:
        print(f"ota_bench: --runs {args.runs!r}: give a whole number of runs, 1 or more "
              "(e.g. --runs 3)", file=sys.stderr)
        return 2
    args.runs = int(args.runs)
    results = []
    with tempfile.TemporaryDirectory(prefix="tgd-ota-bench-") as tmp:
        for i in range(args.runs):
            r = one_run(Path(tmp), args.timing, args.bundle, i)
            print(json.dumps(r))
            results.append(r)
    if len(results) > 1:
        print("median download_s", statistics.median(r["download_s"] for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
