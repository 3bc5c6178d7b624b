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


def test_run_accepts_a_name_that_list_shows(tmp_path):
    """`tgd-rig list` shows alarm_indoor.toml; `tgd-rig run alarm_indoor.toml` finds it.

    (The serial backend without a rig file stops right after the scenario is loaded.)"""
    for name in ("alarm_indoor.toml", "alarm_indoor"):
        out = run("run", name, "--backend", "serial", "--rig-config", str(tmp_path / "rig.toml"))
        assert out.returncode == 2 and "rig.example.toml" in out.stderr, out.stderr
        assert "no such scenario" not in out.stderr
    out = run("run", "alarm_nowhere.toml")
    assert out.returncode == 2 and "tgd-rig list" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_scenario_with_no_steps_is_refused(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text('name = "empty"\n[expect]\nalarms = 0\n')
    out = run("run", str(empty))
    assert out.returncode == 2 and "no steps" in out.stderr and "[[press]]" in out.stderr
    assert "PASSED" not in out.stdout


def test_argument_mistakes_are_one_line():
    out = run("run", "alarm_indoor.toml", "--seed", "many")
    assert out.returncode == 2 and "--seed" in out.stderr and "usage:" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_emulator_serves_a_modem_on_a_pty_until_interrupted():
    """`tgd-rig emulator` (docs/technician.md): prints the pty, answers AT, stops on Ctrl-C."""
    import os
    import re
    import select
    import signal
    import time

    proc = subprocess.Popen([str(TGD_RIG), "emulator", "--timing", "fast"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        match = re.match(r"SIM7600 emulator on (\S+) \(PWRKEY FIFO (\S+)\)", first)
        assert match, first + proc.stderr.read()
        pty, fifo = match.groups()
        assert os.path.exists(fifo)
        fd = os.open(pty, os.O_RDWR | os.O_NOCTTY)
        try:
            answer, deadline = b"", time.monotonic() + 10
            while b"OK" not in answer and time.monotonic() < deadline:
                os.write(fd, b"AT\r")
                if select.select([fd], [], [], 1.0)[0]:
                    answer += os.read(fd, 1024)
            assert b"OK" in answer, answer
        finally:
            os.close(fd)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "emulator stopped" in out and not os.path.exists(fifo)
