"""The device-log reader: parsing, waiting, and failing with the evidence."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from tgd_rig.devicelog import DeviceLog, parse_log_line
from tgd_rig.errors import ExpectTimeout


def test_parse_event_line():
    ticks, event, fields = parse_log_line("12345 CALL state=active reason=none\r\n")
    assert (ticks, event) == (12345, "CALL")
    assert fields == {"state": "active", "reason": "none"}


def test_parse_keeps_bare_words_and_rejects_non_events():
    assert parse_log_line("7 MODEM_REBOOT")[1:] == ("MODEM_REBOOT", {})
    assert parse_log_line("8 READY extra")[2] == {"extra": ""}
    for raw in ["Traceback (most recent call last):", "", "abc CALL x=1", "12 call x=1"]:
        assert parse_log_line(raw) == (None, None, {})


def test_expect_moves_the_cursor_and_matches_fields(tmp_path):
    log = DeviceLog("h1", tmp_path / "h1.log")
    log.open()
    for raw in ["1 BOOT fw=1.0.0", "2 CALL state=alerting", "3 CALL state=active", "4 READY"]:
        log.feed(raw)
    assert log.expect("CALL", timeout=0.1).get("state") == "alerting"
    assert log.expect("CALL", timeout=0.1, state="active").ticks_ms == 3
    with pytest.raises(ExpectTimeout):
        log.expect("CALL", timeout=0.05)   # both CALL lines are behind the cursor
    assert log.expect("CALL", timeout=0.1, since=0).ticks_ms == 2
    log.close()
    assert "3 CALL state=active" in (tmp_path / "h1.log").read_text()


def test_expect_timeout_shows_recent_lines_and_the_log_path(tmp_path):
    log = DeviceLog("h1", tmp_path / "h1.log")
    log.open()
    log.feed("10 BOOT fw=1.0.0")
    log.feed("Traceback (most recent call last):")
    with pytest.raises(ExpectTimeout) as info:
        log.expect("READY", timeout=0.05)
    text = str(info.value)
    assert "'READY'" in text and "Traceback" in text and str(tmp_path / "h1.log") in text
    log.close()


def test_expect_wakes_up_when_the_line_arrives_from_another_thread():
    log = DeviceLog("h1")
    timer = threading.Timer(0.05, log.feed, args=["99 ALARM aid=0badcafe seq=1 resumed=0"])
    timer.start()
    line = log.expect("ALARM", timeout=5)
    assert line.get("aid") == "0badcafe" and line.int("seq") == 1
    timer.join()


def test_follow_reads_a_real_process_and_listeners_see_every_line():
    log = DeviceLog("proc")
    seen: list[str] = []
    log.subscribe(lambda ln: seen.append(ln.event or ln.raw))
    code = "import sys\nfor i in range(3): print(f'{i} TICK n={i}', flush=True)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    ended = threading.Event()
    log.follow(proc.stdout, on_end=ended.set)
    assert log.expect("TICK", timeout=5, n=2).ticks_ms == 2
    assert ended.wait(5)
    proc.wait(5)
    assert seen == ["TICK", "TICK", "TICK"]
    assert [ln.t for ln in log.lines] == sorted(ln.t for ln in log.lines)


def test_find_and_mark():
    log = DeviceLog("h")
    log.feed("1 DIAL n=17 attempt=1")
    mark = log.mark()
    log.feed("2 DIAL n=17 attempt=2")
    assert [ln.get("attempt") for ln in log.find("DIAL")] == ["1", "2"]
    assert [ln.get("attempt") for ln in log.find("DIAL", since=mark)] == ["2"]
    note = log.note("power cut")
    assert note.event is None and "power cut" in note.raw
    assert time.monotonic() >= note.t
