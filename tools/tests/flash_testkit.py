"""Helpers of the flashing-tool tests (test modules import from here, never from
conftest: every test folder has a conftest.py and only one can be called `conftest`)."""

from __future__ import annotations

import io
from pathlib import Path

from tgd_flash.virtual_board import VirtualBoard


def run(argv, capsys):
    """`tgd-flash ARGV` in this process: (exit code, stdout, stderr)."""
    from tgd_flash import cli

    out = io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    return code, out.getvalue(), capsys.readouterr().err


def one_line(err: str) -> str:
    """The one line a mistake prints: no traceback, nothing more."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def make_modem(network, msisdn="+687751001", imei="866123045678901", iccid="8968701000000123456F"):
    from tgd_rig.emulator import Sim7600Emulator

    modem = Sim7600Emulator(network, msisdn=msisdn, imei=imei, iccid=iccid)
    modem.open(pwrkey_fifo=True)
    return modem


def start_board(flash_dir: Path, modem=None) -> VirtualBoard:
    env = {}
    uart = None
    if modem is not None:
        uart = modem.port
        if modem.pwrkey_path:
            env["TGD_PWRKEY"] = modem.pwrkey_path
    return VirtualBoard(flash_dir, uart=uart, extra_env=env).start()


def fake_image(path: Path, chip_id: int) -> Path:
    """An ESP image header (bootloader) for ``chip_id``, then padding."""
    header = bytes([0xE9, 3, 2, 0x20]) + (0x40080000).to_bytes(4, "little")
    extended = bytes([0xEE, 0, 0, 0]) + chip_id.to_bytes(2, "little") + bytes(10)
    path.write_bytes(header + extended + bytes(1000))
    return path


def fake_app_image(path: Path, size: int = 5000) -> Path:
    """A synthetic ESP32 app image (ESP-IDF cannot run here): the image header (magic 0xE9),
    the first segment's header, the application description's magic word, then bytes."""
    head = bytes([0xE9, 3, 2, 0x20]) + (0x400D0000).to_bytes(4, "little") + bytes(16)
    segment = (0x3F400020).to_bytes(4, "little") + (256).to_bytes(4, "little")
    image = head + segment + (0xABCD5432).to_bytes(4, "little")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image + bytes((i * 7) & 0xFF for i in range(size - len(image))))
    return path


def git(repo: Path, *args: str) -> str:
    """`git -C repo ARGS` (a test identity for commits): its stdout."""
    import os
    import subprocess

    env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def set_fw_version(fw: Path, version: str) -> None:
    """FW_VERSION = `version` in the firmware tree `fw` (tgd/device.py)."""
    import re

    device = fw / "tgd" / "device.py"
    text, n = re.subn(r'^FW_VERSION = "[^"]*"', f'FW_VERSION = "{version}"', device.read_text(),
                      flags=re.M)
    assert n == 1
    device.write_text(text)


def factory_checkout(root: Path, tag: str | None, extra: dict[str, str] | None = None) -> Path:
    """A git checkout in `root` (created) whose firmware/ is this repository's (plus
    `extra` files: path -> text), committed and tagged `tag` (None: not tagged): the
    factory firmware a fleet was flashed with. -> its firmware folder."""
    import shutil

    fw = root / "firmware"
    shutil.copytree(Path(__file__).resolve().parents[2] / "firmware", fw,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for rel, text in (extra or {}).items():
        (fw / rel).parent.mkdir(parents=True, exist_ok=True)
        (fw / rel).write_text(text)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "factory firmware")
    if tag:
        git(root, "tag", tag)
    return fw
