"""`make demo --auto` end to end (fast timing): every step printed, one alarm, closed."""

from __future__ import annotations

import logging
import socket
import time

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


def test_interactive_demo_prompts_again_after_the_alarm_and_logs_to_a_file(capsys, tmp_path,
                                                                            monkeypatch):
    """The prompt comes back when the alarm ends; server and gateway log lines go to
    var/demo/demo.log, never into the prompt."""
    needs_firmware()
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "demo")
    rigs = []
    real_start = demo.start_rig

    def start_rig(args):
        rig, password = real_start(args)
        rigs.append(rig)
        return rig, password

    monkeypatch.setattr(demo, "start_rig", start_rig)
    prompts = []

    def read(prompt):  # the terminal: Enter once, then the operator closes the alarm, then q
        print(prompt, end="", flush=True)
        prompts.append(prompt)
        if len(prompts) == 1:
            return ""
        rig = rigs[0]
        handset = rig.handset("NC0001")
        alarm = rig.wait_server_alarm("NC0001", timeout=60)
        logging.getLogger("tgd.security").warning("a warning while the prompt is shown")
        rig.server.ack_alarm(alarm.data["alarm_id"])
        rig.server.close_alarm(alarm.data["alarm_id"], note="test")
        handset.expect("ALARM_END", timeout=60)
        time.sleep(0.5)  # the step printer runs on the event's thread
        return "q"

    status = demo.main(["--timing", "fast", "--port", str(free_port()), "--timeout", "60"],
                       read=read)
    captured = capsys.readouterr()
    assert status == 0, captured.out + captured.err
    after_end = captured.out.rsplit("alarm ended on the handset", 1)[1]
    assert demo.PROMPT in after_end, captured.out
    for terminal in (captured.out, captured.err):
        assert "tgd.security" not in terminal and "tgd.sms.gateway" not in terminal
        assert "WARNING" not in terminal and "INFO" not in terminal
    log = (tmp_path / "demo" / demo.LOG_NAME).read_text()
    assert "WARNING tgd.security a warning while the prompt is shown" in log
    assert "tgd.sms.gateway" in log and "alembic" not in log


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
