"""Pure parts: progress bars, batch files, config building, atomic writes, result lines."""

from __future__ import annotations

import io
import json
import os

import pytest

from tgd_flash import batch, fwbuild, handset_config, onboard, progress
from tgd_flash.board import Implementation
from tgd_flash.errors import InvalidConfig, UsageError


def test_progress_bar_text():
    assert progress.render("upload", 0, 200, width=10) == "upload [..........]   0% (0/200)"
    assert progress.render("upload", 100, 200, width=10) == "upload [#####.....]  50% (100/200)"
    assert progress.render("upload", 300, 200, width=10) == "upload [##########] 100% (300/200)"
    stream = io.StringIO()
    bar = progress.Progress("x", 100, stream=stream)
    for n in range(0, 101, 5):
        bar.update(n)
    bar.finish()
    assert len(stream.getvalue().splitlines()) == 5  # a line per quarter off a terminal


def test_batch_rows_and_errors():
    rows = batch.parse_batch(
        "# bench 3\ndevice_id,special_number,port\nNC0001,+687751001,\nNC0002,+687751002,/dev/ttyUSB1\n",
        ("device_id", "special_number"),
    )
    assert [r.get("device_id") for r in rows] == ["NC0001", "NC0002"]
    assert rows[0].get("port") is None and rows[1].get("port") == "/dev/ttyUSB1"
    with pytest.raises(UsageError, match="twice"):
        batch.parse_batch("device_id,special_number\nA,+1\nA,+2\n", ("device_id",))
    with pytest.raises(UsageError, match="unknown batch column"):
        batch.parse_batch("device_id,colour\nA,red\n", ("device_id",))
    with pytest.raises(UsageError, match="special_number is empty"):
        batch.parse_batch("device_id,special_number\nA,\n", ("device_id", "special_number"))


def good_config(**over):
    args = dict(
        device_id="NC0001",
        key=handset_config.new_device_key(),
        special_number="+687751001",
        sms_number="+687700100",
        server_url="http://127.0.0.1:8080/api/v1/device/messages",
        apn="mobilis",
    )
    args.update(over)
    return handset_config.build_config(**args)


def test_config_is_complete_and_validated_by_the_firmware_rules():
    cfg = good_config(heartbeat_interval_s=900)
    for key in ("device_id", "key", "emergency_number", "sms_number", "server_url", "apn",
                "trigger_hold_ms", "heartbeat_interval_s", "track_interval_s", "call_retries"):
        assert key in cfg
    assert cfg["heartbeat_interval_s"] == 900 and cfg["emergency_number"] == "17"
    assert len(cfg["key"]) == 64 and int(cfg["key"], 16) >= 0
    assert json.loads(handset_config.config_bytes(cfg)) == cfg


@pytest.mark.parametrize(
    "override",
    [
        {"device_id": "NC 01"},
        {"key": "abc"},
        {"server_url": "ftp://x"},
        {"heartbeat_interval_s": 5},
        {"special_number": ""},
        {"sms_number": ""},
        {"colour": "red"},
    ],
)
def test_bad_config_is_refused(override):
    with pytest.raises(InvalidConfig):
        good_config(**override)


def test_keys_are_fresh():
    assert handset_config.new_device_key() != handset_config.new_device_key()


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    handset_config.write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path) == ["config.json"]  # no temp file left


def test_result_lines_and_splitting():
    assert onboard.parse_result_line('TGD {"check":"x","ok":true}') == {"check": "x", "ok": True}
    assert onboard.parse_result_line("1234 READY") is None
    assert onboard.parse_result_line("TGD not json") is None
    lines = []
    splitter = onboard.LineSplitter(lines.append)
    splitter.feed(b"a\r\nb")
    splitter.feed(b"c\n")
    splitter.feed(b"tail")
    splitter.flush()
    assert lines == ["a", "bc", "tail"]


def test_compiler_matches_the_board_bytecode():
    board = Implementation("1.29.0", 2822, "linux")
    assert (board.mpy_version, board.mpy_sub_version, fwbuild.arch_for(board)) == (6, 3, "x64")
    emitted = fwbuild.mpy_cross_version()
    assert emitted == (6, 3)
    assert fwbuild.compiler_for(board, emitted) == fwbuild.default_compiler()
    older = Implementation("1.20.0", 6 | (1 << 8) | (10 << 10), "ESP32")  # mpy 6.1, xtensawin
    assert fwbuild.arch_for(older) == "xtensawin"
    assert fwbuild.compiler_for(older, emitted)[-2:] == ["-b", "6.1"]
    future = Implementation("2.0.0", 7, "ESP32")
    with pytest.raises(fwbuild.MpyMismatch, match="2.0.0"):
        fwbuild.compiler_for(future, emitted)


def test_stale_modules_go_data_stays():
    new = [fwbuild.BuildFile("alarm.mpy", fwbuild.Path("x"), "0"), fwbuild.BuildFile("main.py", fwbuild.Path("y"), "1")]
    board = ["alarm.py", "alarm.mpy", "main.py", "config.json", "journal.log", "old.mpy"]
    assert fwbuild.stale_modules(board, new) == ["alarm.py", "old.mpy"]
    # in the packages: what the new firmware lacks goes, wherever it is
    new = [fwbuild.BuildFile("tgd/alarm.mpy", fwbuild.Path("x"), "0")]
    board = ["alarm.mpy", "tgd/alarm.mpy", "tgd/alarm.py", "tgd/modem/old.mpy", "tgd/notes.txt"]
    assert fwbuild.stale_modules(board, new) == ["alarm.mpy", "tgd/alarm.py", "tgd/modem/old.mpy"]


def test_upload_makes_the_package_folders_parents_first():
    from tgd_flash.flashing import parent_folders

    assert parent_folders(["main.py", "tgd/modem/at.mpy", "tgd/app.mpy", "boards/lilygo.mpy"]) == [
        "boards", "tgd", "tgd/modem"]
