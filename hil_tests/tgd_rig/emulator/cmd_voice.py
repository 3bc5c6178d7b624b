"""Voice call commands: ATD, ATA, ATH, AT+CHUP, AT+CLCC, audio settings (calls.py
holds the call states and the far ends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .atparse import EXEC, READ, SET, AtSyntaxError, Command
from .calls import (
    ModemLeg,
    PoliceCallBack,
    PoliceLeg,
    clcc_line,
    fail,
    hang_up_all,
    next_call_id,
    set_state,
)
from .errors import CmeFailure, Refused
from .state import CALL_ACTIVE, CALL_ALERTING, CALL_DIALING, CALL_HELD, CALL_INCOMING, Call

if TYPE_CHECKING:
    from .modem import Sim7600Emulator

_DIAL_CHARS = set("0123456789+*#")


def dial(m: Sim7600Emulator, cmd: Command) -> list[str]:
    raw = cmd.raw.strip()
    if not raw.endswith(";"):
        raise Refused("ATD without ';' is a data call: not supported")
    number = raw[:-1]
    if not number or not set(number) <= _DIAL_CHARS:
        raise AtSyntaxError(f"ATD: bad number {number!r}")
    held = _second_call(m, number)
    if not m.sim_present:
        raise CmeFailure(10)
    if not m.registered:
        raise CmeFailure(30)
    if held is not None:
        _hold(m, held)
    call = Call(next_call_id(m), True, number, CALL_DIALING)
    m.calls.append(call)
    m.net.event("dial", modem=m.msisdn, number=number)
    m.later(0, set_state, m, call, CALL_DIALING)  # after the OK
    reboot = m.faults.take("reboot_during_call")
    if reboot is not None:
        m.later(reboot["after_s"], m.reboot, "fault: reboot during call")
    endpoint = m.net.police.get(number)
    if endpoint is not None and endpoint.behaviour == "busy":
        call.remote = PoliceLeg(m, call, endpoint)  # recorded: the police see a missed call
        m.later(m.draw("call_fail_s"), fail, m, call, "BUSY")
        return ["OK"]
    if m.faults.take("call_busy") is not None:
        m.later(m.draw("call_fail_s"), fail, m, call, "BUSY")
        return ["OK"]
    if m.faults.voice_down or m.faults.take("call_no_carrier") is not None:
        m.later(m.draw("call_fail_s"), fail, m, call, "NO CARRIER")
        return ["OK"]
    answers = m.faults.take("call_no_answer") is None
    callee = m.net.modem(number)
    if endpoint is not None:
        leg: PoliceLeg | ModemLeg = PoliceLeg(m, call, endpoint)
    elif callee is not None and callee is not m:
        leg = ModemLeg(m, call, callee)
    else:
        m.later(m.draw("call_fail_s"), fail, m, call, "NO CARRIER")
        return ["OK"]
    call.remote = leg
    if not answers:
        m.later(m.draw("call_setup_s"), _alert_no_answer, m, call, leg)
    else:
        m.later(m.draw("call_setup_s"), leg.alerting, True)
    return ["OK"]


def _second_call(m: Sim7600Emulator, number: str) -> Call | None:
    """An ATD while a call exists (sim7600-at.md "Voice calls": the module refuses it,
    or puts the active call on hold). -> the call to put on hold, or None.

    Both modes (fault `second_call`, mode "refuse" or "hold") refuse it with
    `+CME ERROR: 3` (operation not allowed) while a call is being set up, rings, or
    is already held: only one active call can be held for another."""
    if not m.calls:
        return None
    if m.faults.second_call == "hold" and len(m.calls) == 1 and m.calls[0].state == CALL_ACTIVE:
        return m.calls[0]
    m.net.event("dial_refused", modem=m.msisdn, number=number,
                calls=[c.state for c in m.calls])
    raise CmeFailure(3)


def _hold(m: Sim7600Emulator, call: Call) -> None:
    """The active call goes on hold (stat 1) so that the new one can be dialled; its far
    end stays connected and hears nothing."""
    call.state = CALL_HELD
    if m.settings.clcc_urc:
        m.later(0, m.urc, clcc_line(call))  # after the OK, before the new call's dialling
    m.net.event("call_held", modem=m.msisdn, number=call.number)


def _alert_no_answer(m: Sim7600Emulator, call: Call, leg: PoliceLeg | ModemLeg) -> None:
    if isinstance(leg, PoliceLeg):
        leg.alerting(False)
    else:
        set_state(m, call, CALL_ALERTING)
        m.later(m.net.timing.no_answer_s, fail, m, call, "NO ANSWER")


def chup(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != EXEC:
        raise AtSyntaxError("CHUP takes no argument")
    hang_up_all(m, "caller_hangup")
    return ["OK"]


def ath(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.args and cmd.arg_int(0, 0, 0) != 0:
        raise AtSyntaxError("ATH<n>")
    if m.settings.cvhu == 0:
        hang_up_all(m, "caller_hangup")
    return ["OK"]


def ata(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != EXEC:
        raise AtSyntaxError("ATA takes no argument")
    for call in m.calls:
        if call.state == CALL_INCOMING and isinstance(call.remote, (ModemLeg, PoliceCallBack)):
            m.later(0, call.remote.answer)
            return ["OK"]
    raise Refused("ATA without an incoming call")


def clcc(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind == EXEC:
        return [*(clcc_line(c) for c in m.calls), "OK"]
    if cmd.kind == READ:
        return [f"+CLCC: {1 if m.settings.clcc_urc else 0}", "OK"]
    if cmd.kind != SET:
        return ["+CLCC: (0-1)", "OK"]
    cmd.nargs(1, 1)
    m.settings.clcc_urc = cmd.arg_int(0, 0, 1) == 1
    return ["OK"]


def _int_setting(name: str, attr: str, high: int, in_call_only: bool = False):
    def handler(m: Sim7600Emulator, cmd: Command) -> list[str]:
        if cmd.kind == READ:
            return [f"{name}: {int(getattr(m.settings, attr))}", "OK"]
        if cmd.kind != SET:
            raise AtSyntaxError(f"{name}: read or set only")
        cmd.nargs(1, 1)
        value = cmd.arg_int(0, 0, high)
        if in_call_only and not m.calls:
            raise Refused(f"{name} outside a call")
        setattr(m.settings, attr, value)
        return ["OK"]

    return handler


COMMANDS = {
    "D": dial,
    "A": ata,
    "H": ath,
    "+CHUP": chup,
    "+CLCC": clcc,
    "+CVHU": _int_setting("+CVHU", "cvhu", 1),
    "+CLIP": _int_setting("+CLIP", "clip", 1),
    "+CLVL": _int_setting("+CLVL", "clvl", 5),
    "+VMUTE": _int_setting("+VMUTE", "vmute", 1, in_call_only=True),
    "+CMUT": _int_setting("+CMUT", "cmut", 1, in_call_only=True),
}
