"""`make demo --auto` end to end (fast timing): every step printed, one alarm, closed."""

from __future__ import annotations

import socket

from rig_testkit import needs_firmware

from tgd_rig import demo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_auto_runs_the_whole_alarm(capsys, tmp_path, monkeypatch):
    needs_firmware()
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "demo")
    status = demo.main(["--auto", "--timing", "fast", "--port", str(free_port()),
                        "--timeout", "60"])
    out = capsys.readouterr().out
    assert status == 0, out
    for step in ("dialling the police", "police: call answered, caller id +6877",
                 "server: alarm created", "AML SMS", "GNSS position", "alarm acknowledged",
                 "vibration (VIBRATE pattern=help)", "alarm ended on the handset",
                 "user 'operateur', password '"):
        assert step in out, f"missing step {step!r} in:\n{out}"
    assert out.count("server: alarm created") == 1


def test_demo_auto_two_alarms_in_a_row_both_call_17(capsys, tmp_path, monkeypatch):
    # issue 12: the first alarm's call (the demo's police never hang up) used to stay up
    # after the close, and every ATD of the second alarm was refused
    needs_firmware()
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "demo")
    status = demo.main(["--auto", "--alarms", "2", "--timing", "fast", "--port",
                        str(free_port()), "--timeout", "60"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.count("server: alarm created") == 2, out
    assert out.count("police: call answered, caller id +6877") == 2, out
    assert "the handset hangs up (HANGUP why=alarm_end)" in out, out
    assert "(the handset is idle again: no call up)" in out
    assert "Done: 2 alarms at the server for NC0001 (state closed)" in out
    assert "failed" not in out, out
