"""`tgd-rig campaign`: CLI mistakes give one line naming the flag, exit 2, and leave nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TGD_RIG = Path(sys.executable).with_name("tgd-rig")
REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TGD_RIG), "campaign", *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("args, flag", [
    (["--steps", "0"], "--steps"),
    (["--duration", "-5"], "--duration"),
    (["--handsets", "9"], "--handsets"),
    (["--seeds", "one-two"], "--seeds"),
    (["--seed", "1", "--seeds", "1-3"], "--seeds"),
    (["--replay", "nothing.json"], "--replay"),
    (["--replay", "nothing.json", "--seed", "3"], "--replay"),
    (["--firmware", "nowhere/main.py"], "--firmware"),
])
def test_a_mistake_is_one_line_naming_the_flag_and_leaves_nothing(tmp_path, args, flag):
    out_dir = tmp_path / "out"
    out = run(*args, "--out", str(out_dir))
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not out_dir.exists()


def test_a_broken_replay_file_is_refused(tmp_path):
    bad = tmp_path / "replay.json"
    bad.write_text(json.dumps({"format": 1, "steps": [{"kind": "juggle", "device": "H1"}]}))
    out = run("--replay", str(bad), "--out", str(tmp_path / "out"))
    assert out.returncode == 2
    assert "unknown kind 'juggle'" in out.stderr and not (tmp_path / "out").exists()


def test_the_documented_commands_run_with_a_relative_out_folder(tmp_path):
    """`campaign --seed 7 --steps N` (docs/hil.md, fewer steps), `--replay` of what it ran
    (with a relative `--firmware`), and `--merge` of the summary: exit 0, the figures
    printed, the traces where it says."""
    def cli(*args):
        return subprocess.run([str(TGD_RIG), "campaign", *args], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)

    out = cli("--seed", "7", "--steps", "3", "--quiet", "--out", "runs",
              "--summary", "runs/summary.json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "campaign seed 7: PASSED: 3 steps" in out.stdout
    result = json.loads((tmp_path / "runs" / "seed-7" / "result.json").read_text())
    assert result["passed"] and result["steps_run"] == 3
    from tgd_rig.campaign_plan import generate, replay_document, save_replay
    save_replay(tmp_path / "replay.json", replay_document(7, generate(7, 3), 1, "fast"))
    shutil.copytree(REPO / "firmware", tmp_path / "fw",
                    ignore=shutil.ignore_patterns(".mpy-cache", "tests", "__pycache__"))
    out = cli("--replay", "replay.json", "--quiet", "--out", "runs", "--firmware", "fw/main.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "runs" / "replay-seed-7" / "result.json").exists()
    out = cli("--merge", "runs/summary.json")
    assert out.returncode == 0 and "all seeds: 1 seeds, 3 steps" in out.stdout, out.stdout
