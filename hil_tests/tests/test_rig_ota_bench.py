"""bench/ota_bench.py (docs/benchmarks.md "Firmware updates over the air") runs as the
page shows it, in its fast form, and prints its figures; a wrong --runs is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rig_testkit import needs_firmware

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "ota_bench.py"


@pytest.mark.parametrize("bundle", ["delta", "full"])
def test_the_fast_bench_prints_its_figures(bundle):
    # the page's realistic commands differ only in --timing (and --runs): their code runs here
    needs_firmware()
    doc = (REPO / "docs" / "benchmarks.md").read_text()
    assert "bench/ota_bench.py --timing fast --bundle delta" in doc
    assert f"bench/ota_bench.py --timing realistic --bundle {bundle}" in doc
    proc = subprocess.run([sys.executable, str(BENCH), "--timing", "fast", "--bundle", bundle],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    r = json.loads(line)
    assert r["bundle_bytes"] == r["server_bytes"] and r["download_s"] > 0
    assert r["gets"] == (1 if bundle == "delta" else 3), r  # 32 KB Range windows


def test_a_wrong_runs_is_one_line():
    proc = subprocess.run([sys.executable, str(BENCH), "--runs", "0"], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "--runs" in proc.stderr, proc.stderr
