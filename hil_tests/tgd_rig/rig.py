"""One rig interface, two backends (emulated, serial).

A test or a scenario talks to a `Rig` and its `Handset`s and never to a backend's
internals:

    with EmulatedRig(workdir, timing="fast") as rig:      # or SerialRig.from_toml(path)
        h = rig.add_handset("NC0001")
        h.power_on(); h.log.expect("READY", timeout=30)
        h.press(2.5)
        call = rig.wait_call(timeout=30)
        sms = rig.wait_sms(timeout=60)
        alarms = rig.server_alarms(h.device_id)

Everything that happens (a press, a log line, a dial, an answered call, a delivered
SMS, an alarm or a position at the server) is also published on `rig.events`, an
`EventBus` of `RigEvent`s: the report is computed from it, and a demo can print it
as it happens (`rig.events.subscribe(print)`).
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .devicelog import DeviceLog
from .errors import Unsupported, WaitTimeout

# RigEvent kinds the report reads (source in parentheses):
#   press, release, power_cut, power_on (rig); log (device: data["line"] is the LogLine);
#   dial, call_answered, call_ended, call_failed, sms_delivered (network or receiver);
#   server_alarm, server_position (server: data has aid, fix).


@dataclass(frozen=True)
class RigEvent:
    t: float                    # host time.monotonic()
    source: str                 # rig, device, network, server, receiver
    kind: str
    device: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.data.items() if k != "line")
        if "line" in self.data:
            extra = self.data["line"].raw
        return f"{self.t:.3f} {self.source}/{self.kind} {self.device or '-'} {extra}".rstrip()


class EventBus:
    """An append-only list of RigEvents with listeners and blocking waits."""

    def __init__(self) -> None:
        self._events: list[RigEvent] = []
        self._cond = threading.Condition()
        self._listeners: list[Callable[[RigEvent], None]] = []

    def publish(self, event: RigEvent) -> None:
        with self._cond:
            self._events.append(event)
            listeners = list(self._listeners)
            self._cond.notify_all()
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken printer must not stop the rig
                pass

    def emit(self, source: str, kind: str, device: str | None = None, t: float | None = None,
             **data: Any) -> RigEvent:
        event = RigEvent(time.monotonic() if t is None else t, source, kind, device, data)
        self.publish(event)
        return event

    def subscribe(self, listener: Callable[[RigEvent], None]) -> Callable[[], None]:
        """Call `listener(event)` for every event from now on; returns an unsubscribe function."""
        with self._cond:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    def mark(self) -> int:
        with self._cond:
            return len(self._events)

    def snapshot(self, since: int = 0) -> list[RigEvent]:
        with self._cond:
            return list(self._events[since:])

    def wait_for(self, predicate: Callable[[RigEvent], bool], timeout: float, since: int = 0,
                 what: str = "an event") -> RigEvent:
        deadline = time.monotonic() + timeout
        index = since
        with self._cond:
            while True:
                while index < len(self._events):
                    event = self._events[index]
                    index += 1
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(f"timed out after {timeout:.1f} s waiting for {what}")
                self._cond.wait(remaining)


class Handset(abc.ABC):
    """One handset under test: its button, its power, its log."""

    device_id: str
    log: DeviceLog
    can_power_cycle: bool = True   # False: a board without a supply relay (already running)

    @abc.abstractmethod
    def press(self, seconds: float | None = None, wait: bool = True) -> float:
        """Press the button; release after `seconds` (None: hold until release()).

        Returns the host time of the press. With wait=False, returns at once and a
        timer releases the button.
        """

    @abc.abstractmethod
    def release(self) -> float:
        """Release the button; returns the host time of the release."""

    @abc.abstractmethod
    def power_cut(self) -> None:
        """Cut the power of the whole handset (controller and modem) at once."""

    @abc.abstractmethod
    def power_on(self) -> None:
        """Give the power back: the firmware boots from its flash as after a cut."""

    def bounce(self, pattern: list[float]) -> None:
        """Alternate press/release durations (s), starting with a press: contact bounce."""
        for i, seconds in enumerate(pattern):
            if i % 2 == 0:
                self.press()
            else:
                self.release()
            time.sleep(seconds)
        self.release()

    def expect(self, event: str | None = None, timeout: float = 10.0, **kwargs: Any):
        return self.log.expect(event, timeout=timeout, **kwargs)


class Rig(abc.ABC):
    """A set of handsets, the network they are on, and the server they talk to."""

    backend: str
    events: EventBus

    def __init__(self) -> None:
        self.events = EventBus()
        self.handsets: dict[str, Handset] = {}

    def __enter__(self) -> Rig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def handset(self, device_id: str | None = None) -> Handset:
        if device_id is None:
            if len(self.handsets) != 1:
                raise KeyError("name the handset: the rig has "
                               f"{len(self.handsets)} handsets")
            return next(iter(self.handsets.values()))
        return self.handsets[device_id]

    def wait_call(self, timeout: float = 60.0, since: int = 0, answered: bool = True,
                  caller: str | None = None) -> RigEvent:
        """The first call that reached the police (answered, unless answered=False)."""
        kind = "call_answered" if answered else "dial"

        def match(ev: RigEvent) -> bool:
            return ev.kind == kind and (caller is None or ev.data.get("caller") == caller)
        return self.events.wait_for(match, timeout, since, f"a call ({kind})")

    def wait_sms(self, timeout: float = 60.0, since: int = 0, sender: str | None = None) -> RigEvent:
        """The first AML SMS delivered to the SMS number."""

        def match(ev: RigEvent) -> bool:
            return ev.kind == "sms_delivered" and (sender is None or ev.data.get("sender") == sender)
        return self.events.wait_for(match, timeout, since, "an SMS delivered")

    def wait_server_alarm(self, device_id: str, timeout: float = 60.0, since: int = 0) -> RigEvent:
        return self.events.wait_for(lambda ev: ev.kind == "server_alarm" and ev.device == device_id,
                                    timeout, since, f"an alarm of {device_id} at the server")

    @abc.abstractmethod
    def server_alarms(self, device_id: str | None = None) -> list[dict[str, Any]]:
        """The server's alarms (all states), through its REST API with an operator token."""

    @abc.abstractmethod
    def close_alarm(self, alarm_id: int, note: str = "closed by the HIL rig") -> None:
        """Close an alarm on the server, as a police operator would."""

    @abc.abstractmethod
    def ack_alarm(self, alarm_id: int) -> None:
        """Acknowledge an alarm on the server (help is coming), as a police operator would."""

    def inject(self, device_id: str, fault: str, at_s: float = 0.0, **params: Any) -> None:
        """Schedule an emulator fault `at_s` seconds from now on the handset's modem."""
        raise Unsupported(f"the {self.backend} backend cannot inject faults ({fault})")
