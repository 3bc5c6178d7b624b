"""General commands: echo, errors, identity, registration, radio, battery, time, power."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .atparse import EXEC, READ, SET, TEST, AtSyntaxError, Command
from .errors import CmeFailure, Refused
from .formats import cpsi_line, csq_from_dbm, local_stamp

if TYPE_CHECKING:
    from .modem import Sim7600Emulator

OPERATOR_NAME = "MOBILIS"  # OPT-NC's network, MCC 546 MNC 01
ACT = {"LTE": 7, "WCDMA": 2, "GSM": 0}
GPS_EPOCH_1980 = 315964800  # the clock's value before network time: 80/01/06


def _only(cmd: Command, *kinds: str) -> None:
    if cmd.kind not in kinds:
        raise AtSyntaxError(f"{cmd.name}: {cmd.kind} form not supported")


def _need_sim(m: Sim7600Emulator) -> None:
    if not m.sim_present:
        raise CmeFailure(10)


def at(m: Sim7600Emulator, cmd: Command) -> list[str]:
    return ["OK"]


def echo(m: Sim7600Emulator, cmd: Command) -> list[str]:
    m.settings.echo = cmd.arg_int(0, 0, 1) == 1 if cmd.args else False
    return ["OK"]


def verbose(m: Sim7600Emulator, cmd: Command) -> list[str]:
    # ATV1 / ATQ0 are the only modes emulated (framing of every answer depends on them).
    wanted = {"V": 1, "Q": 0}[cmd.name]
    if (cmd.arg_int(0, 0, 1) if cmd.args else 0) != wanted:
        raise Refused(f"AT{cmd.name}{cmd.raw}: only ATV1/ATQ0 are emulated")
    return ["OK"]


def reset_settings(m: Sim7600Emulator, cmd: Command) -> list[str]:
    m.settings.echo = True
    m.settings.cmee = 0
    return ["OK"]


def cmee(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == READ:
        return [f"+CMEE: {m.settings.cmee}", "OK"]
    if cmd.kind == TEST:
        return ["+CMEE: (0-2)", "OK"]
    _only(cmd, SET)
    cmd.nargs(1, 1)
    m.settings.cmee = cmd.arg_int(0, 0, 2)
    return ["OK"]


def cpin(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, READ)
    _need_sim(m)
    return ["+CPIN: READY", "OK"]


def csq(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    radio = m.radio() if m.registered else None
    rssi = csq_from_dbm(radio.rssi_dbm if radio else None)
    return [f"+CSQ: {rssi},99", "OK"]


def _reg_fields(m: Sim7600Emulator, eps: bool) -> str:
    """`,"lac","ci"[,AcT]` when registered, for n=2."""
    radio = m.radio() if m.registered else None
    if radio is None:
        return ""
    c = radio.cell
    tail = f',"{c.area:04X}","{c.ci:X}"'
    if eps:
        tail += f",{ACT[c.rat]}"
    return tail


def _registration(m: Sim7600Emulator, cmd: Command, name: str, attr: str) -> list[str]:
    eps = name == "+CEREG"
    if cmd.kind == READ:
        n = getattr(m.settings, attr)
        tail = _reg_fields(m, eps) if n == 2 else ""
        return [f"{name}: {n},{m.reg_stat}{tail}", "OK"]
    if cmd.kind == TEST:
        return [f"{name}: (0-2)", "OK"]
    _only(cmd, SET)
    cmd.nargs(1, 1)
    setattr(m.settings, attr, cmd.arg_int(0, 0, 2))
    return ["OK"]


def creg(m: Sim7600Emulator, cmd: Command) -> list[str]:
    return _registration(m, cmd, "+CREG", "creg_n")


def cgreg(m: Sim7600Emulator, cmd: Command) -> list[str]:
    return _registration(m, cmd, "+CGREG", "cgreg_n")


def cereg(m: Sim7600Emulator, cmd: Command) -> list[str]:
    return _registration(m, cmd, "+CEREG", "cereg_n")


def registration_urcs(m: Sim7600Emulator, only_with_cell: bool = False) -> None:
    """+CREG/+CGREG/+CEREG URCs after a change, as each one's n asks (only_with_cell:
    the serving cell changed, which only n=2 reports)."""
    for name, attr in (("+CREG", "creg_n"), ("+CGREG", "cgreg_n"), ("+CEREG", "cereg_n")):
        n = getattr(m.settings, attr)
        if n == 0 or (only_with_cell and n != 2):
            continue
        tail = _reg_fields(m, name == "+CEREG") if n == 2 else ""
        m.urc(f"{name}: {m.reg_stat}{tail}")


def cops(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == READ:
        radio = m.radio() if m.registered else None
        if radio is None:
            return ["+COPS: 0", "OK"]
        return [f'+COPS: 0,0,"{OPERATOR_NAME}",{ACT[radio.cell.rat]}', "OK"]
    _only(cmd, SET)
    cmd.arg_int(0, 0, 4)  # automatic / manual: accepted, the network stays the same
    return ["OK"]


def cgsn(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    return [m.imei, "OK"]


def ciccid(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    _need_sim(m)
    return [f"+ICCID: {m.iccid}", "OK"]


def cimi(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    _need_sim(m)
    return [m.imsi, "OK"]


def cnum(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    _need_sim(m)
    kind = 145 if m.msisdn.startswith("+") else 129
    return [f'+CNUM: "","{m.msisdn}",{kind}', "OK"]


def identity(text: str):
    def handler(m: Sim7600Emulator, cmd: Command) -> list[str]:
        _only(cmd, EXEC)
        return [text, "OK"]

    return handler


def cbc(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    return [f"+CBC: {m.battery_mv / 1000:.3f}V", "OK"]


def cpmutemp(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    return [f"+CPMUTEMP: {m.temperature_c}", "OK"]


def cpsi(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == SET:
        cmd.arg_int(0, 0, 255)  # periodic reporting interval: accepted, not emulated
        return ["OK"]
    _only(cmd, READ)
    radio = m.radio() if m.registered else None
    return [cpsi_line(radio), "OK"]


def cgdcont(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == READ:
        lines = [
            f'+CGDCONT: {cid},"{pdp}","{apn}","0.0.0.0",0,0'
            for cid, (pdp, apn) in sorted(m.settings.apn.items())
        ]
        return [*lines, "OK"]
    _only(cmd, SET)
    cmd.nargs(1, 6)
    cid = cmd.arg_int(0, 1, 24)
    if len(cmd.args) == 1:
        m.settings.apn.pop(cid, None)
        return ["OK"]
    pdp = cmd.arg_str(1)
    if pdp not in ("IP", "IPV6", "IPV4V6"):
        raise AtSyntaxError(f"CGDCONT: PDP type {pdp!r}")
    apn = cmd.arg_str(2) if len(cmd.args) > 2 else ""
    m.settings.apn[cid] = (pdp, apn)
    return ["OK"]


def netopen(m: Sim7600Emulator, cmd: Command) -> list[str] | None:
    if cmd.kind == READ:
        return [f"+NETOPEN: {1 if m.settings.netopen else 0}", "OK"]
    _only(cmd, EXEC)
    if m.settings.netopen:
        return ["+IP ERROR: Network is already opened", "ERROR"]

    def opened() -> None:
        if m.data_up:
            m.settings.netopen = True
            m.urc("+NETOPEN: 0")
        else:
            m.urc("+NETOPEN: 1")

    m.later(m.draw("netopen_s"), opened)
    return ["OK"]


def netclose(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    if not m.settings.netopen:
        raise Refused("NETCLOSE: network not open")
    m.settings.netopen = False
    m.later(m.net.timing.prompt_s, m.urc, "+NETCLOSE: 0")
    return ["OK"]


def ctzu(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == READ:
        return [f"+CTZU: {m.settings.ctzu}", "OK"]
    _only(cmd, SET)
    cmd.nargs(1, 1)
    m.settings.ctzu = cmd.arg_int(0, 0, 1)
    return ["OK"]


def cclk(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, READ)
    if m.registered and m.settings.ctzu == 1:
        m.settings.clock_synced = True  # network time received; the RTC keeps it
    if m.settings.clock_synced:
        stamp = local_stamp(time.time())
    else:
        # No network time: the RTC counts from 1980-01-06 since power-on.
        stamp = local_stamp(GPS_EPOCH_1980 + m.uptime_s, 0)
    return [f'+CCLK: "{stamp}"', "OK"]


def csclk(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == READ:
        return [f"+CSCLK: {m.settings.csclk}", "OK"]
    _only(cmd, SET)
    cmd.nargs(1, 1)
    m.settings.csclk = cmd.arg_int(0, 0, 2)
    m.sleep_rearm()  # 1: asleep once idle with DTR high (modem.py, "sleep mode")
    return ["OK"]


def creset(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    m.later(0.05, m.reboot, "AT+CRESET")
    return ["OK"]


def cpof(m: Sim7600Emulator, cmd: Command) -> list[str]:
    _only(cmd, EXEC)
    m.later(m.net.timing.power_off_s, m._power_off, "AT+CPOF")
    return ["OK"]


COMMANDS = {
    "": at,
    "E": echo,
    "V": verbose,
    "Q": verbose,
    "Z": reset_settings,
    "+CMEE": cmee,
    "+CPIN": cpin,
    "+CSQ": csq,
    "+CREG": creg,
    "+CGREG": cgreg,
    "+CEREG": cereg,
    "+COPS": cops,
    "+CGSN": cgsn,
    "+CICCID": ciccid,
    "+CIMI": cimi,
    "+CNUM": cnum,
    "+CGMI": identity("SIMCOM INCORPORATED"),
    "+CGMM": identity("SIMCOM_SIM7600G-H"),
    "+CGMR": identity("+CGMR: LE20B04SIM7600G22"),
    "+CBC": cbc,
    "+CPMUTEMP": cpmutemp,
    "+CPSI": cpsi,
    "+CGDCONT": cgdcont,
    "+NETOPEN": netopen,
    "+NETCLOSE": netclose,
    "+CTZU": ctzu,
    "+CCLK": cclk,
    "+CSCLK": csclk,
    "+CRESET": creset,
    "+CPOF": cpof,
}
