"""The tgd-rig command line: listing, refusing bad input with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TGD_RIG = Path(sys.executable).with_name("tgd-rig")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TGD_RIG), *args], capture_output=True, text=True, timeout=60)


def test_list_shows_every_scenario():
    out = run("list")
    assert out.returncode == 0
    for name in ("alarm_outdoor.toml", "alarm_indoor.toml", "short_presses.toml", "bench_outdoor.toml"):
        assert name in out.stdout


def test_a_bad_scenario_is_refused_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[expect]\nwithin_s = { teleport = 1 }\n')
    out = run("run", str(bad), "--report", str(tmp_path / "r.json"))
    assert out.returncode == 2
    assert "unknown channel" in out.stderr and "bad.toml" in out.stderr
    assert not (tmp_path / "r.json").exists()


def test_serial_backend_without_a_rig_file_says_what_to_do(tmp_path):
    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "alarm_outdoor.toml"
    out = run("run", str(scenario), "--backend", "serial", "--rig-config", str(tmp_path / "rig.toml"))
    assert out.returncode == 2
    assert "rig.example.toml" in out.stderr
