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
