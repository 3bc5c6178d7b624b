"""Helpers of the flashing-tool tests (test modules import from here, never from
conftest: every test folder has a conftest.py and only one can be called `conftest`)."""

from __future__ import annotations

from pathlib import Path

from tgd_flash.virtual_board import VirtualBoard


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
