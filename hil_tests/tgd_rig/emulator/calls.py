"""Voice calls as the modem and the far end see them: +CLCC states, the far ends
(police endpoint, another emulated modem, a police call-back), and how calls end.

URC order follows the reference's logged sequence: `+CLCC` dialling, `+CLCC`
alerting, `VOICE CALL: BEGIN`, `+CLCC` active, ... `+CLCC` disconnect,
`VOICE CALL: END: hhmmss`. A call that never connected ends with the final
result `BUSY`, `NO CARRIER` or `NO ANSWER` instead.

Call ids are the lowest free one from 1 (27.007's <id>), so a second call while one
is held is `+CLCC: 2,...`. The police endpoint's behaviour (`PoliceEndpoint.behave`)
decides how its side of a call goes: answer (and maybe hang up after N s), never
answer, busy, reject.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .formats import number_type
from .network import PoliceCall, PoliceEndpoint
from .state import CALL_ACTIVE, CALL_ALERTING, CALL_DISCONNECT, CALL_INCOMING, Call

if TYPE_CHECKING:
    from .modem import Sim7600Emulator

RING_PERIOD_S = 3.0


def next_call_id(m: Sim7600Emulator) -> int:
    """The lowest call id no current call of this modem uses."""
    used = {c.call_id for c in m.calls}
    n = 1
    while n in used:
        n += 1
    return n


def clcc_line(call: Call) -> str:
    direction = 0 if call.outgoing else 1
    return (
        f'+CLCC: {call.call_id},{direction},{call.state},0,0,'
        f'"{call.number}",{number_type(call.number)}'
    )


def set_state(m: Sim7600Emulator, call: Call, state: int) -> None:
    call.state = state
    if m.settings.clcc_urc:
        m.urc(clcc_line(call))


def connect(m: Sim7600Emulator, call: Call) -> None:
    call.connected = time.monotonic()
    m.urc("VOICE CALL: BEGIN")
    set_state(m, call, CALL_ACTIVE)


def end_call(m: Sim7600Emulator, call: Call, failure: str | None = None) -> None:
    """The call is over: disconnect state, then END (connected or hung up here) or the failure."""
    if call not in m.calls:
        return
    set_state(m, call, CALL_DISCONNECT)
    m.calls.remove(call)
    if failure is None:
        m.urc(f"VOICE CALL: END: {call.duration_hhmmss()}")
    else:
        m.urc(failure)
    if not m.calls:
        m.settings.vmute = 0
        m.settings.cmut = 0


class PoliceLeg:
    """The police side of a call: rings, answers after its delay, records everything."""

    def __init__(self, m: Sim7600Emulator, call: Call, endpoint: PoliceEndpoint):
        self.m = m
        self.call = call
        self.endpoint = endpoint
        self.record = PoliceCall(caller=m.msisdn, number=call.number, dialled_at=time.monotonic())
        endpoint.calls.append(self.record)
        endpoint._live[id(self)] = self

    def alerting(self, answers: bool) -> None:
        if self.call not in self.m.calls:
            return
        self.record.alerting_at = time.monotonic()
        set_state(self.m, self.call, CALL_ALERTING)
        self.m.net.event("call_alerting", modem=self.m.msisdn, number=self.call.number)
        behaviour = self.endpoint.behaviour
        delay = self.endpoint.answer_after_s
        if behaviour == "reject":
            self.m.later(self.endpoint.reject_after_s, self.reject)
        elif answers and behaviour == "answer" and delay is not None:
            # A configured answer delay wins over the network's no-answer timer.
            self.m.later(delay, self.answer)
        else:
            self.m.later(self.m.net.timing.no_answer_s, self.no_answer)

    def answer(self) -> None:
        if self.call not in self.m.calls:
            return
        self.record.answered_at = time.monotonic()
        connect(self.m, self.call)
        self.m.net.event(
            "call_answered", modem=self.m.msisdn, number=self.call.number, caller=self.m.msisdn
        )
        if self.endpoint.hangup_after_s is not None:
            self.m.later(self.endpoint.hangup_after_s, self.remote_hangup, "police_hangup")

    def reject(self) -> None:
        """The operator rejects the ringing call: the caller gets BUSY (cause 17, UDUB)."""
        if self.call not in self.m.calls or self.call.connected is not None:
            return
        self._ended("rejected")
        fail(self.m, self.call, "BUSY")

    def no_answer(self) -> None:
        if self.call not in self.m.calls or self.call.connected is not None:
            return
        self._ended("no_answer")
        end_call(self.m, self.call, "NO ANSWER")
        self.m.net.event(
            "call_failed", modem=self.m.msisdn, number=self.call.number, reason="no_answer"
        )

    def remote_hangup(self, reason: str) -> None:
        if self.call not in self.m.calls:
            return
        connected = self.call.connected is not None
        self._ended(reason)
        end_call(self.m, self.call, None if connected else "NO CARRIER")
        self.m.net.event(
            "call_ended", modem=self.m.msisdn, number=self.call.number, by="remote",
            duration_s=self.record.duration_s,
        )

    def local_hangup(self, reason: str) -> None:
        self._ended(reason)
        self.m.net.event(
            "call_ended", modem=self.m.msisdn, number=self.call.number, by="local",
            reason=reason, duration_s=self.record.duration_s,
        )

    def _ended(self, reason: str) -> None:
        if self.record.ended_at is None:
            self.record.ended_at = time.monotonic()
            self.record.end_reason = reason
        self.endpoint._live.pop(id(self), None)


class ModemLeg:
    """A call between two emulated modems."""

    def __init__(self, caller: Sim7600Emulator, call: Call, callee: Sim7600Emulator):
        self.caller, self.caller_call, self.callee = caller, call, callee
        self.callee_call: Call | None = None

    def alerting(self, answers: bool) -> None:
        callee = self.callee
        if not callee.registered or callee.calls:
            fail(self.caller, self.caller_call, "BUSY" if callee.calls else "NO CARRIER")
            return
        set_state(self.caller, self.caller_call, CALL_ALERTING)
        self.callee_call = Call(next_call_id(callee), False, self.caller.msisdn, CALL_INCOMING,
                                remote=self)
        callee.calls.append(self.callee_call)
        if callee.settings.clcc_urc:
            callee.urc(clcc_line(self.callee_call))
        self._ring()
        self.caller.later(self.caller.net.timing.no_answer_s, self._no_answer)

    def _ring(self) -> None:
        call = self.callee_call
        if call is None or call not in self.callee.calls or call.state != CALL_INCOMING:
            return
        self.callee.urc("RING")
        if self.callee.settings.clip:
            n = self.caller.msisdn
            if self.caller.clir:   # withheld (27.007 +CLIP: empty number, CLI validity 1)
                self.callee.urc('+CLIP: "",128,,,"",1')
            else:
                self.callee.urc(f'+CLIP: "{n}",{number_type(n)},,,"",0')
        self.callee.later(RING_PERIOD_S * max(self.callee.net.timing.scale, 0.02), self._ring)

    def _no_answer(self) -> None:
        if self.callee_call is not None and self.callee_call.state == CALL_INCOMING:
            end_call(self.callee, self.callee_call, "NO CARRIER")
            fail(self.caller, self.caller_call, "NO ANSWER")

    def answer(self) -> None:
        if self.callee_call is None or self.callee_call not in self.callee.calls:
            return
        connect(self.callee, self.callee_call)
        connect(self.caller, self.caller_call)
        self.caller.net.event(
            "call_answered", modem=self.caller.msisdn, number=self.caller_call.number,
            caller=self.caller.msisdn,
        )

    def local_hangup(self, side: Sim7600Emulator, reason: str) -> None:
        other, other_call = (
            (self.callee, self.callee_call) if side is self.caller
            else (self.caller, self.caller_call)
        )
        if other_call is not None and other_call in other.calls:
            connected = other_call.connected is not None
            end_call(other, other_call, None if connected else "NO CARRIER")
        self.caller.net.event(
            "call_ended", modem=self.caller.msisdn, number=self.caller_call.number,
            by="local" if side is self.caller else "remote", reason=reason,
        )


class PoliceCallBack:
    """The police calls the handset: it rings until ATA, the no-answer timer, or a hang-up."""

    def __init__(self, m: Sim7600Emulator, endpoint: PoliceEndpoint, record: PoliceCall,
                 hangup_after_s: float | None):
        self.m, self.endpoint, self.record = m, endpoint, record
        self.hangup_after_s = hangup_after_s
        self.call: Call | None = None

    def ring(self) -> None:
        m = self.m
        if not m.registered or m.calls:
            self._ended("busy" if m.calls else "unreachable")
            m.net.event("callback_failed", modem=m.msisdn, number=self.endpoint.number)
            return
        self.endpoint._live[id(self)] = self
        self.record.alerting_at = time.monotonic()
        self.call = Call(next_call_id(m), False, self.endpoint.number, CALL_INCOMING, remote=self)
        m.calls.append(self.call)
        if m.settings.clcc_urc:
            m.urc(clcc_line(self.call))
        m.net.event("callback_ringing", modem=m.msisdn, number=self.endpoint.number)
        self._ring_again()
        m.later(m.net.timing.no_answer_s, self._no_answer)

    def _ring_again(self) -> None:
        call = self.call
        if call is None or call not in self.m.calls or call.state != CALL_INCOMING:
            return
        self.m.urc("RING")
        if self.m.settings.clip:
            n = self.endpoint.number
            self.m.urc(f'+CLIP: "{n}",{number_type(n)},,,"",0')
        self.m.later(RING_PERIOD_S * max(self.m.net.timing.scale, 0.02), self._ring_again)

    def _no_answer(self) -> None:
        if self.call is not None and self.call.state == CALL_INCOMING:
            self._ended("no_answer")
            end_call(self.m, self.call, "NO CARRIER")

    def answer(self) -> None:
        if self.call is None or self.call not in self.m.calls:
            return
        self.record.answered_at = time.monotonic()
        connect(self.m, self.call)
        self.m.net.event("callback_answered", modem=self.m.msisdn, number=self.endpoint.number)
        if self.hangup_after_s is not None:
            self.m.later(self.hangup_after_s, self.remote_hangup, "police_hangup")

    def remote_hangup(self, reason: str) -> None:
        if self.call is None or self.call not in self.m.calls:
            return
        connected = self.call.connected is not None
        self._ended(reason)
        end_call(self.m, self.call, None if connected else "NO CARRIER")

    def local_hangup(self, side: Sim7600Emulator, reason: str) -> None:
        self._ended(reason)

    def _ended(self, reason: str) -> None:
        if self.record.ended_at is None:
            self.record.ended_at = time.monotonic()
            self.record.end_reason = reason
        self.endpoint._live.pop(id(self), None)
        self.m.net.event("callback_ended", modem=self.m.msisdn, number=self.endpoint.number,
                         reason=reason, duration_s=self.record.duration_s)


def fail(m: Sim7600Emulator, call: Call, result: str) -> None:
    if call not in m.calls:
        return
    if isinstance(call.remote, PoliceLeg):
        call.remote._ended(result.lower().replace(" ", "_"))
    end_call(m, call, result)
    m.net.event(
        "call_failed", modem=m.msisdn, number=call.number, reason=result.lower().replace(" ", "_")
    )


def hang_up_all(m: Sim7600Emulator, reason: str) -> None:
    for call in list(m.calls):
        leg = call.remote
        end_call(m, call)
        if isinstance(leg, PoliceLeg):
            leg.local_hangup(reason)
        elif isinstance(leg, (ModemLeg, PoliceCallBack)):
            leg.local_hangup(m, reason)


def drop_all_calls(m: Sim7600Emulator, reason: str) -> None:
    """The modem lost power: the far ends see the call end; nothing is sent to the host."""
    for call in list(m.calls):
        m.calls.remove(call)
        leg = call.remote
        if isinstance(leg, PoliceLeg):
            leg.local_hangup(reason)
        elif isinstance(leg, (ModemLeg, PoliceCallBack)):
            leg.local_hangup(m, reason)


def drop_calls_on_radio_loss(m: Sim7600Emulator) -> None:
    """Coverage lost: every call ends, the host sees it end, the far end sees it drop."""
    for call in list(m.calls):
        leg = call.remote
        connected = call.connected is not None
        end_call(m, call, None if connected else "NO CARRIER")
        if isinstance(leg, PoliceLeg):
            leg.local_hangup("radio_lost")
        elif isinstance(leg, (ModemLeg, PoliceCallBack)):
            leg.local_hangup(m, "radio_lost")


