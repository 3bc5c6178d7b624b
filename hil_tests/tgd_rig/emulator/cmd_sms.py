"""SMS in text mode: CMGF, CSCS, CSMP, CNMI, CPMS, CMGS (prompt), CMGR, CMGD, CMGL;
incoming messages (+CMTI) and delivery reports (+CDS)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .atparse import EXEC, READ, SET, TEST, AtSyntaxError, Command
from .errors import CmsFailure
from .formats import Continuation, local_stamp, number_type
from .state import StoredSms

if TYPE_CHECKING:
    from .modem import Sim7600Emulator

_MAX_TEXT = 160  # one GSM 7-bit message
_STATUS_REPORT_REQUEST = 0x20  # TP-SRR bit of the first octet (CSMP 49 = 0x31)
_NUMBER_CHARS = set("0123456789+*#")


def cmgf(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == READ:
        return [f"+CMGF: {m.settings.cmgf}", "OK"]
    if cmd.kind == TEST:
        return ["+CMGF: (0-1)", "OK"]
    cmd.nargs(1, 1)
    m.settings.cmgf = cmd.arg_int(0, 0, 1)
    return ["OK"]


def cscs(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == READ:
        return [f'+CSCS: "{m.settings.cscs}"', "OK"]
    if cmd.kind != SET:
        raise AtSyntaxError("CSCS: read or set only")
    cmd.nargs(1, 1)
    charset = cmd.arg_str(0)
    if charset not in ("IRA", "GSM", "UCS2"):
        raise AtSyntaxError(f"CSCS: unknown character set {charset!r}")
    m.settings.cscs = charset
    return ["OK"]


def csmp(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == READ:
        return ["+CSMP: " + ",".join(str(v) for v in m.settings.csmp), "OK"]
    if cmd.kind != SET:
        raise AtSyntaxError("CSMP: read or set only")
    cmd.nargs(1, 4)
    old = m.settings.csmp
    m.settings.csmp = (
        cmd.arg_int(0, 0, 255, old[0]),
        cmd.arg_int(1, 0, 255, old[1]),
        cmd.arg_int(2, 0, 255, old[2]),
        cmd.arg_int(3, 0, 255, old[3]),
    )
    return ["OK"]


def cnmi(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == READ:
        return ["+CNMI: " + ",".join(str(v) for v in m.settings.cnmi), "OK"]
    if cmd.kind != SET:
        raise AtSyntaxError("CNMI: read or set only")
    cmd.nargs(1, 5)
    highs = (3, 3, 3, 2, 1)
    old = m.settings.cnmi
    values = [cmd.arg_int(i, 0, highs[i], old[i]) for i in range(5)]
    m.settings.cnmi = (values[0], values[1], values[2], values[3], values[4])
    return ["OK"]


def cpms(m: Sim7600Emulator, cmd: Command) -> list[str]:
    store = m.sms_store
    if not m.sim_present:
        raise CmsFailure(310)
    if cmd.kind == READ:
        one = f'"SM",{store.used},{store.capacity}'
        return [f"+CPMS: {one},{one},{one}", "OK"]
    if cmd.kind == TEST:
        return ['+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")', "OK"]
    cmd.nargs(1, 3)
    for i in range(len(cmd.args)):
        if cmd.arg_str(i) not in ("SM", "ME"):
            raise CmsFailure(302)
    one = f"{store.used},{store.capacity}"
    return [f"+CPMS: {one},{one},{one}", "OK"]


def cmgs(m: Sim7600Emulator, cmd: Command) -> list[str] | None:
    if cmd.kind != SET:
        raise AtSyntaxError("CMGS: set form only")
    if m.settings.cmgf != 1:
        raise CmsFailure(304)  # PDU mode expects a length, not a quoted number
    cmd.nargs(1, 2)
    number = cmd.arg_str(0)
    if not number or not set(number) <= _NUMBER_CHARS:
        raise AtSyntaxError(f"CMGS: bad number {number!r}")
    if not m.sim_present:
        raise CmsFailure(310)

    def text_done(text: bytes | None, early: bool) -> None:
        if text is None:
            m.finish(["OK"])  # Esc: cancelled, nothing sent
            return
        if early:
            m.finish(["ERROR"])  # text sent before the prompt is not taken
            return
        body = text.decode("latin-1").replace("\r", "\n")
        if len(body) > _MAX_TEXT:
            m.finish([m.error_line(CmsFailure(305))])
            return
        m.later(m.draw("sms_submit_s"), submitted, m, number, body)

    m.start_text_input(text_done)
    return None


def submitted(m: Sim7600Emulator, number: str, body: str) -> None:
    fault = m.faults.take("sms_error")
    if fault is not None:
        m.finish([m.error_line(CmsFailure(fault["code"]))])
        return
    if not m.registered or m.faults.voice_down:
        m.finish([m.error_line(CmsFailure(331))])
        return
    mr = m.settings.next_mr
    m.settings.next_mr = (mr + 1) % 256
    want_report = bool(m.settings.csmp[0] & _STATUS_REPORT_REQUEST)
    m.finish([f"+CMGS: {mr}", "OK"])
    m.net.submit_sms(m, number, body, mr, want_report)


def cmgw(m: Sim7600Emulator, cmd: Command) -> list[str] | None:
    """Write a message to the storage (text mode): `> `, text, Ctrl-Z -> +CMGW: <index>."""
    if cmd.kind not in (SET, EXEC):
        raise AtSyntaxError("CMGW: set or exec form")
    if m.settings.cmgf != 1:
        raise CmsFailure(304)
    number = cmd.arg_str(0) if cmd.args else ""
    if number and not set(number) <= _NUMBER_CHARS:
        raise AtSyntaxError(f"CMGW: bad number {number!r}")
    if not m.sim_present:
        raise CmsFailure(310)

    def text_done(text: bytes | None, early: bool) -> None:
        if text is None:
            m.finish(["OK"])
            return
        if early:
            m.finish(["ERROR"])
            return
        body = text.decode("latin-1").replace("\r", "\n")
        if len(body) > _MAX_TEXT:
            m.finish([m.error_line(CmsFailure(305))])
            return
        index = m.sms_store.store(StoredSms(number or m.msisdn, body, time.time(), read=True))
        if index is None:
            m.finish([m.error_line(CmsFailure(322))])  # memory full
            return
        m.finish([f"+CMGW: {index}", "OK"])

    m.start_text_input(text_done)
    return None


def _index(m: Sim7600Emulator, cmd: Command) -> int:
    if cmd.kind != SET:
        raise AtSyntaxError(f"{cmd.name}: set form only")
    if not m.sim_present:
        raise CmsFailure(310)
    index = cmd.arg_int(0, 0, 65535)
    if not m.sms_store.valid_index(index):
        raise CmsFailure(321)
    return index


def _status(sms: StoredSms) -> str:
    return "REC READ" if sms.read else "REC UNREAD"


def cmgr(m: Sim7600Emulator, cmd: Command) -> list[str]:
    cmd.nargs(1, 2)
    index = _index(m, cmd)
    sms = m.sms_store.slots[index]
    if sms is None:
        return ["OK"]
    header = f'+CMGR: "{_status(sms)}","{sms.sender}",,"{local_stamp(sms.scts_epoch)}"'
    sms.read = True
    return [header, Continuation(sms.text), "OK"]


def cmgd(m: Sim7600Emulator, cmd: Command) -> list[str]:
    cmd.nargs(1, 2)
    index = _index(m, cmd)
    flag = cmd.arg_int(1, 0, 4, 0)
    store = m.sms_store
    if flag == 0:
        store.slots[index] = None
    else:
        for i, sms in enumerate(store.slots):
            if sms is None:
                continue
            if flag == 4 or (sms.read and flag in (1, 2, 3)):
                store.slots[i] = None
    return ["OK"]


def cmgl(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if not m.sim_present:
        raise CmsFailure(310)
    wanted = "REC UNREAD"
    if cmd.kind == SET:
        cmd.nargs(1, 2)
        wanted = cmd.arg_str(0)
    if wanted not in ("REC UNREAD", "REC READ", "ALL"):
        raise AtSyntaxError(f"CMGL: status {wanted!r}")
    lines = []
    for i, sms in enumerate(m.sms_store.slots):
        if sms is None or (wanted != "ALL" and _status(sms) != wanted):
            continue
        lines.append(f'+CMGL: {i},"{_status(sms)}","{sms.sender}",,"{local_stamp(sms.scts_epoch)}"')
        lines.append(Continuation(sms.text))
        sms.read = True
    return [*lines, "OK"]


def receive(m: Sim7600Emulator, sender: str, text: str, scts_epoch: float) -> bool:
    """An SMS arrives; False when it cannot be taken now (off, no service, storage full)."""
    if not m.registered:
        return False
    index = m.sms_store.store(StoredSms(sender, text, scts_epoch))
    if index is None:
        m.transcript.note("incoming SMS refused: storage full")
        return False
    m.net.event("sms_received", modem=m.msisdn, sender=sender, index=index, text=text)
    if m.settings.cnmi[1] == 1:
        m.urc(f'+CMTI: "SM",{index}')
    return True


def report(m: Sim7600Emulator, mr: int, to: str, scts: float, dt: float, st: int) -> bool:
    """Delivery report for message reference mr (CNMI ds=1 routes it as +CDS).

    False when the modem cannot take it now (off or unregistered): the network retries.
    """
    if not m.registered:
        return False
    if m.settings.cnmi[3] != 1:
        return True  # taken, but not routed to the host: no +CDS
    m.urc(
        f'+CDS: 6,{mr},"{to}",{number_type(to)},"{local_stamp(scts)}","{local_stamp(dt)}",{st}'
    )
    return True


COMMANDS = {
    "+CMGF": cmgf,
    "+CSCS": cscs,
    "+CSMP": csmp,
    "+CNMI": cnmi,
    "+CPMS": cpms,
    "+CMGS": cmgs,
    "+CMGW": cmgw,
    "+CMGR": cmgr,
    "+CMGD": cmgd,
    "+CMGL": cmgl,
}
