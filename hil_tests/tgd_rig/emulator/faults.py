"""Faults an emulated modem can suffer, now (`modem.inject`) or on a timeline (`modem.schedule`).

Each fault is a function `fault(modem, **params)`; its keyword parameters and their
defaults are the fault's documented parameters (docs/emulator.md lists them).
Faults "for the next N" arm a counter that the command code consumes.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import UnknownFault

if TYPE_CHECKING:
    from .modem import Sim7600Emulator


class FaultState:
    """Fault settings of one modem (they survive reboots: they model the world)."""

    def __init__(self) -> None:
        self.no_service = False
        self.denied = False
        self.weak_rsrp_dbm: float | None = None
        self.split: dict[str, Any] | None = None
        self.mqtt_unreachable = False
        self.second_call = "refuse"  # an ATD while a call is active: refuse | hold
        self.data_down = False      # packet data lost, voice and SMS still served
        self.voice_down = False     # circuit-switched domain lost (calls, SMS), data still served
        self._armed: dict[str, list[dict[str, Any]]] = {}

    def arm(self, name: str, count: int, **params: Any) -> None:
        if count < 1:
            raise UnknownFault(f"{name}: count must be at least 1")
        self._armed.setdefault(name, []).extend(dict(params) for _ in range(count))

    def take(self, name: str) -> dict[str, Any] | None:
        """Consume one armed occurrence of `name`, or None."""
        queue = self._armed.get(name)
        if not queue:
            return None
        return queue.pop(0)

    def armed(self, name: str) -> int:
        return len(self._armed.get(name, []))


# -- registration, SIM, radio -----------------------------------------------------------
def no_sim(m: Sim7600Emulator) -> None:
    """SIM removed: CPIN? fails (+CME ERROR: SIM not inserted), no registration."""
    m.sim_present = False
    m.update_registration()


def sim_inserted(m: Sim7600Emulator) -> None:
    m.sim_present = True
    m.update_registration()


def no_service(m: Sim7600Emulator, duration_s: float | None = None) -> None:
    """Coverage lost (stat 2, searching); regained after duration_s if given."""
    m.faults.no_service = True
    m.update_registration()
    if duration_s is not None:
        m.net.later(duration_s, service_back, m)


def registration_denied(m: Sim7600Emulator, duration_s: float | None = None) -> None:
    """The network refuses registration (stat 3)."""
    m.faults.denied = True
    m.update_registration()
    if duration_s is not None:
        m.net.later(duration_s, service_back, m)


def service_back(m: Sim7600Emulator) -> None:
    m.faults.no_service = False
    m.faults.denied = False
    m.update_registration()


def data_down(m: Sim7600Emulator, duration_s: float | None = None) -> None:
    """Packet data lost (still registered for voice and SMS): every HTTP request ends in
    601; back after duration_s if given."""
    m.faults.data_down = True
    if duration_s is not None:
        m.net.later(duration_s, data_up, m)


def data_up(m: Sim7600Emulator) -> None:
    m.faults.data_down = False


def voice_down(m: Sim7600Emulator, duration_s: float | None = None) -> None:
    """Circuit-switched service lost (data still served): calls in progress drop, ATD
    ends in NO CARRIER, AT+CMGS in +CMS ERROR: 331; back after duration_s if given."""
    from .calls import drop_calls_on_radio_loss

    m.faults.voice_down = True
    drop_calls_on_radio_loss(m)
    if duration_s is not None:
        m.net.later(duration_s, voice_up, m)


def voice_up(m: Sim7600Emulator) -> None:
    m.faults.voice_down = False


def weak_signal(m: Sim7600Emulator, rsrp_dbm: float = -118.0) -> None:
    """The serving cell is received at rsrp_dbm (CSQ and CPSI follow)."""
    m.faults.weak_rsrp_dbm = rsrp_dbm


def signal_normal(m: Sim7600Emulator) -> None:
    m.faults.weak_rsrp_dbm = None


def rat(m: Sim7600Emulator, rat: str = "GSM") -> None:
    """Serve the modem on another radio technology (LTE, WCDMA, GSM)."""
    if rat not in ("LTE", "WCDMA", "GSM"):
        raise UnknownFault(f"rat: {rat!r} is not LTE, WCDMA or GSM")
    m.rat = rat
    m.update_registration()


def indoor(m: Sim7600Emulator) -> None:
    """No GNSS fix (no sky); the cell still serves."""
    m.indoor = True


def outdoor(m: Sim7600Emulator) -> None:
    m.indoor = False


def battery(m: Sim7600Emulator, mv: int = 3400) -> None:
    m.battery_mv = int(mv)


# -- calls, SMS, HTTP: the next N ----------------------------------------------------------
def call_busy(m: Sim7600Emulator, count: int = 1) -> None:
    m.faults.arm("call_busy", count)


def call_no_carrier(m: Sim7600Emulator, count: int = 1) -> None:
    m.faults.arm("call_no_carrier", count)


def call_no_answer(m: Sim7600Emulator, count: int = 1) -> None:
    m.faults.arm("call_no_answer", count)


SECOND_CALL_MODES = ("refuse", "hold")


def second_call(m: Sim7600Emulator, mode: str = "refuse") -> None:
    """What the module does with an ATD while a voice call is active (sim7600-at.md:
    unconfirmed for the SIM7600): "refuse" it with +CME ERROR: 3 (operation not
    allowed), or "hold" the active call (+CLCC stat 1) and dial the new one."""
    if mode not in SECOND_CALL_MODES:
        raise UnknownFault(f"second_call: mode {mode!r} is not refuse or hold")
    m.faults.second_call = mode


def sms_error(m: Sim7600Emulator, code: int = 500, count: int = 1) -> None:
    """The next `count` AT+CMGS end in +CMS ERROR: <code>."""
    m.faults.arm("sms_error", count, code=code)


def http_status(m: Sim7600Emulator, status: int = 500, count: int = 1) -> None:
    """The network answers the next `count` requests with HTTP `status` (server not asked)."""
    m.faults.arm("http_status", count, status=status)


def http_error(m: Sim7600Emulator, status: int = 601, count: int = 1) -> None:
    """The next `count` +HTTPACTION carry the modem-side error `status` (6xx/7xx)."""
    if not 600 <= status <= 799:
        raise UnknownFault(f"http_error: status {status} is not a 6xx/7xx modem error")
    m.faults.arm("http_error", count, status=status)


def http_timeout(m: Sim7600Emulator, count: int = 1, reach_server: bool = False) -> None:
    """The next `count` requests time out (705 after the modem's timeout); with
    reach_server the server gets and handles the request but its answer is lost."""
    m.faults.arm("http_timeout", count, reach_server=reach_server)


def http_corrupt(m: Sim7600Emulator, count: int = 1, method: str = "GET") -> None:
    """The next `count` answer bodies to a `method` request reach the host with one byte
    flipped (the middle byte, xor 0xFF): a download damaged on its way (an update's
    bundle: the handset's SHA-256 check must refuse it)."""
    m.faults.arm("http_corrupt", count, method=method.upper())


# -- MQTT broker ----------------------------------------------------------------------------
def mqtt_unreachable(m: Sim7600Emulator, duration_s: float | None = None) -> None:
    """The broker cannot be reached: connections drop (+CMQTTCONNLOST) and every
    AT+CMQTTCONNECT fails (+CMQTTCONNECT: <i>,3) until mqtt_reachable or duration_s."""
    from . import cmd_mqtt

    cmd_mqtt.unreachable(m)
    if duration_s is not None:
        m.net.later(duration_s, mqtt_reachable, m)


def mqtt_reachable(m: Sim7600Emulator) -> None:
    m.faults.mqtt_unreachable = False


def mqtt_connection_lost(m: Sim7600Emulator, index: int = 0) -> None:
    """The broker connection of MQTT client `index` breaks now (+CMQTTCONNLOST: <i>,1;
    no DISCONNECT was sent, so the broker publishes the client's will)."""
    from . import cmd_mqtt

    cmd_mqtt.connection_lost(m, index)


# -- reboots, silence, line noise -------------------------------------------------------
def reboot(m: Sim7600Emulator) -> None:
    """The modem resets now: state lost, RDY again after timing.reset_s."""
    m.reboot("fault")


def reboot_during_call(m: Sim7600Emulator, after_s: float = 1.0) -> None:
    """The modem resets `after_s` after the next ATD."""
    m.faults.arm("reboot_during_call", 1, after_s=after_s)


def reboot_during_http(m: Sim7600Emulator, reach_server: bool = True) -> None:
    """The modem resets during the next HTTPACTION, after (reach_server) or before
    the request reached the server."""
    m.faults.arm("reboot_during_http", 1, reach_server=reach_server)


def silence(m: Sim7600Emulator, duration_s: float | None = None) -> None:
    """The modem hangs: reads and answers nothing for duration_s, or until a PWRKEY power cycle."""
    m.silent_until = math.inf if duration_s is None else time.monotonic() + duration_s


def garbage(m: Sim7600Emulator, length: int = 16, data: bytes | str | None = None) -> None:
    """Noise on the line now: `data`, or `length` random bytes."""
    if data is None:
        payload = bytes(m.net.rng.randrange(256) for _ in range(length))
    else:
        payload = data.encode("latin-1") if isinstance(data, str) else bytes(data)
    m.emit(payload)


def split_writes(m: Sim7600Emulator, max_chunk: int = 4, max_gap_s: float = 0.005) -> None:
    """From now on responses go out in random chunks of 1..max_chunk bytes with small gaps."""
    if max_chunk < 1 or max_gap_s < 0:
        raise UnknownFault("split_writes: max_chunk >= 1 and max_gap_s >= 0")
    m.faults.split = {"max_chunk": max_chunk, "max_gap_s": max_gap_s}


def whole_writes(m: Sim7600Emulator) -> None:
    m.faults.split = None


def urc_in_response(m: Sim7600Emulator, urc: str = "+CPIN: READY", count: int = 1) -> None:
    """The next `count` responses carry `urc` between their lines."""
    m.faults.arm("urc_in_response", count, urc=urc)


def urc(m: Sim7600Emulator, line: str = "RING") -> None:
    """One unsolicited line now."""
    m.urc(line)


def power_off(m: Sim7600Emulator) -> None:
    m._power_off("fault")


def power_on(m: Sim7600Emulator) -> None:
    m._power_on("boot_s")


FAULTS: dict[str, Callable[..., None]] = {
    f.__name__: f
    for f in (
        no_sim, sim_inserted, no_service, registration_denied, service_back, weak_signal,
        data_down, data_up, voice_down, voice_up,
        signal_normal, rat, indoor, outdoor, battery, call_busy, call_no_carrier,
        call_no_answer, second_call, sms_error, http_status, http_error, http_timeout,
        http_corrupt, reboot,
        reboot_during_call, reboot_during_http, silence, garbage, split_writes, whole_writes,
        urc_in_response, urc, power_off, power_on, mqtt_unreachable, mqtt_reachable,
        mqtt_connection_lost,
    )
}


# Value checks done when a fault is scheduled, so a bad timeline fails at once.
_VALUE_CHECKS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "http_error": lambda p: 600 <= p.get("status", 601) <= 799,
    "http_status": lambda p: 100 <= p.get("status", 500) <= 599,
    "http_corrupt": lambda p: str(p.get("method", "GET")).upper() in ("GET", "POST", "HEAD", "DELETE"),
    "rat": lambda p: p.get("rat", "GSM") in ("LTE", "WCDMA", "GSM"),
    "second_call": lambda p: p.get("mode", "refuse") in SECOND_CALL_MODES,
    "split_writes": lambda p: p.get("max_chunk", 4) >= 1 and p.get("max_gap_s", 0) >= 0,
}


def validate(name: str, params: dict[str, Any]) -> None:
    """Refuse an unknown fault or parameters it does not take, before anything happens."""
    fault = FAULTS.get(name)
    if fault is None:
        raise UnknownFault(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    try:
        inspect.signature(fault).bind(None, **params)
    except TypeError as exc:
        raise UnknownFault(f"fault {name}: {exc}") from exc
    for key in ("count",):
        if key in params and (not isinstance(params[key], int) or params[key] < 1):
            raise UnknownFault(f"fault {name}: {key} must be a positive integer")
    check = _VALUE_CHECKS.get(name)
    try:
        ok = check is None or check(params)
    except TypeError:
        ok = False
    if not ok:
        raise UnknownFault(f"fault {name}: bad parameter values {params}")


def apply(m: Sim7600Emulator, name: str, params: dict[str, Any]) -> None:
    validate(name, params)
    FAULTS[name](m, **params)
