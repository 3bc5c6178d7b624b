"""The simulated mobile network: subscribers, police endpoints, SMS routing, real HTTP.

All emulator state lives in one asyncio loop run by `Network` in a background thread;
modems, calls and SMS are touched only from that loop, so there are no locks in the
protocol code. Public methods that other threads call hop into the loop first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cells import Cell, load_cells
from .timing import Timing

if TYPE_CHECKING:
    from .modem import Sim7600Emulator

# Modem-side HTTP status codes put in +HTTPACTION when no HTTP answer came back
# (SIM7600 HTTP manual: 601 network error, 603 DNS error; 7xx operation errors).
HTTP_NETWORK_ERROR = 601
HTTP_DNS_ERROR = 603
HTTP_TIMEOUT = 705
HTTP_CONNECT_FAILED = 714


DEFAULT = object()  # "use the timing's default" for optional delays


class NetworkNotStarted(RuntimeError):
    """A modem was opened on a network whose loop is not running: call net.start()."""


class EventTimeout(TimeoutError):
    """wait_event() gave up; the message lists the events seen."""


@dataclass
class PoliceCall:
    caller: str  # caller id as the police operator sees it (the handset's MSISDN)
    number: str  # the number dialled
    dialled_at: float  # time.monotonic()
    alerting_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None  # caller_hangup, police_hangup, no_answer, caller_lost
    direction: str = "in"  # "in": the handset called; "out": a police call-back
    callee: str | None = None  # the handset's number for a call-back

    @property
    def duration_s(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at


POLICE_BEHAVIOURS = ("answer", "never_answer", "busy", "reject")


def _check_delay(name: str, value: Any) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
    ):
        raise ValueError(f"{name} must be None or a number >= 0, got {value!r}")


@dataclass
class PoliceEndpoint:
    """A number that rings, answers after `answer_after_s` (None: never) and records calls.

    `behaviour` (set with `behave()`) is how the operators treat the next calls:
    "answer" (after answer_after_s, then hang up after hangup_after_s, None: never),
    "never_answer" (rings until the network's no-answer timer: NO ANSWER),
    "busy" (BUSY after timing.call_fail_s, never rings), "reject" (rings
    reject_after_s, then the operator rejects it: BUSY).
    """

    number: str
    answer_after_s: float | None
    hangup_after_s: float | None = None
    calls: list[PoliceCall] = field(default_factory=list)
    behaviour: str = "answer"
    reject_after_s: float = 2.0
    _net: Network | None = field(default=None, repr=False)
    _live: dict[int, Any] = field(default_factory=dict, repr=False)

    def behave(self, behaviour: str = "answer", *, answer_after_s: Any = DEFAULT,
               hangup_after_s: float | None = None, reject_after_s: float = 2.0) -> None:
        """How the operators treat the calls from now on (calls in progress keep theirs).

        behave("answer", answer_after_s=3, hangup_after_s=10): answer after 3 s, hang up
        10 s later; hangup_after_s=None: never hang up. answer_after_s defaults to the
        current value. behave("never_answer"), behave("busy"), behave("reject",
        reject_after_s=2). A bad name or value raises ValueError and changes nothing."""
        if behaviour not in POLICE_BEHAVIOURS:
            raise ValueError(
                f"police behaviour must be one of {', '.join(POLICE_BEHAVIOURS)}, got {behaviour!r}"
            )
        answer = self.answer_after_s if answer_after_s is DEFAULT else answer_after_s
        for name, value in (("answer_after_s", answer), ("hangup_after_s", hangup_after_s),
                            ("reject_after_s", reject_after_s)):
            _check_delay(name, value)
        if reject_after_s is None:
            raise ValueError("reject_after_s must be a number >= 0, got None")
        if behaviour == "answer" and answer is None:
            raise ValueError("behaviour answer needs answer_after_s (never_answer: never)")

        def apply() -> None:
            self.behaviour = behaviour
            self.answer_after_s = answer
            self.hangup_after_s = hangup_after_s
            self.reject_after_s = reject_after_s

        if self._net is not None and self._net._loop is not None:
            self._net.call_in_loop(apply)
        else:
            apply()

    def hangup(self) -> None:
        """The operator hangs up every call in progress."""
        if self._net is None:
            return
        self._net.call_in_loop(self._hangup_all)

    def _hangup_all(self) -> None:
        for call in list(self._live.values()):
            call.remote_hangup("police_hangup")

    def call_back(self, msisdn: str, hangup_after_s: float | None = None) -> PoliceCall:
        """The operator calls the handset back (it rings: RING, +CLIP; ATA answers)."""
        if self._net is None:
            raise NetworkNotStarted("police endpoint not attached to a network")
        return self._net.call_in_loop(self._call_back, msisdn, hangup_after_s)

    def _call_back(self, msisdn: str, hangup_after_s: float | None) -> PoliceCall:
        from .calls import PoliceCallBack

        record = PoliceCall(caller=self.number, number=msisdn, dialled_at=time.monotonic(),
                            direction="out", callee=msisdn)
        self.calls.append(record)
        target = self._net.modem(msisdn) if self._net else None
        if target is None:
            record.ended_at = time.monotonic()
            record.end_reason = "unknown_number"
            return record
        PoliceCallBack(target, self, record, hangup_after_s).ring()
        return record


@dataclass
class SmsSink:
    """An SMS number outside the emulated modems (e.g. a gateway hooked to the server)."""

    number: str
    callback: Callable[[str, str, float], None] | None
    received: list[tuple[str, str, float]] = field(default_factory=list)


@dataclass
class _PendingSms:
    sender: Sim7600Emulator
    sender_number: str
    to: str
    text: str
    mr: int
    want_report: bool
    submitted_epoch: float


class Network:
    def __init__(
        self,
        timing: Timing | None = None,
        cells: list[Cell] | None = None,
        seed: int = 1,
    ):
        self.timing = timing or Timing.realistic()
        # The APN packet data needs (OPT-NC: "mobilis"); None: any PDP context will do.
        self.required_apn: str | None = None
        self.cells = cells if cells is not None else load_cells()
        self.rng = random.Random(seed)
        self.events: list[dict[str, Any]] = []
        self.police: dict[str, PoliceEndpoint] = {}
        self.sms_sinks: dict[str, SmsSink] = {}
        self._modems: dict[str, Sim7600Emulator] = {}
        self._events_cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending_sms: list[_PendingSms] = []

    # -- loop ----------------------------------------------------------------
    def start(self) -> None:
        if self._loop is not None:
            return
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._http_pool = concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="net-http")

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="sim-network", daemon=True)
        self._thread.start()
        ready.wait(5)

    def stop(self) -> None:
        if self._loop is None:
            return
        for modem in list(self._modems.values()):
            modem.close()
        loop = self._loop
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(5)
        loop.close()
        if self._http_pool:
            self._http_pool.shutdown(wait=False, cancel_futures=True)
        self._loop = None
        self._thread = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise NetworkNotStarted("Network.start() was not called")
        return self._loop

    def in_loop(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def call_in_loop(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
        """Run fn(*args) in the network loop and return its result (re-raising its error)."""
        if self.in_loop():
            return fn(*args)
        result: concurrent.futures.Future = concurrent.futures.Future()

        def runner() -> None:
            try:
                result.set_result(fn(*args))
            except BaseException as exc:  # handed back to the calling thread
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(runner)
        return result.result(timeout)

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        """Schedule fn in the loop (must be called from the loop)."""
        return self.loop.call_later(max(0.0, delay), fn, *args)

    def draw(self, name: str) -> float:
        return self.timing.draw(name, self.rng)

    # -- events --------------------------------------------------------------
    def event(self, kind: str, **data: Any) -> dict[str, Any]:
        entry = {"t": time.monotonic(), "kind": kind, **data}
        with self._events_cond:
            self.events.append(entry)
            self._events_cond.notify_all()
        return entry

    def events_of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        with self._events_cond:
            return [
                e
                for e in self.events
                if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())
            ]

    def wait_event(
        self, kind: str, timeout: float = 10.0, since: float = 0.0, **match: Any
    ) -> dict[str, Any]:
        """First event of `kind` at or after monotonic time `since` whose keys match."""
        deadline = time.monotonic() + timeout
        with self._events_cond:
            while True:
                for e in self.events:
                    if (
                        e["kind"] == kind
                        and e["t"] >= since
                        and all(e.get(k) == v for k, v in match.items())
                    ):
                        return e
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "\n".join(str(e) for e in self.events[-30:])
                    raise EventTimeout(
                        f"no {kind} event matching {match} within {timeout} s; last events:\n{seen}"
                    )
                self._events_cond.wait(remaining)

    # -- subscribers ---------------------------------------------------------
    def add_police(
        self,
        number: str = "17",
        answer_after_s: float | None | object = DEFAULT,
        hangup_after_s: float | None = None,
    ) -> PoliceEndpoint:
        """A police endpoint; answer_after_s defaults to timing.police_answer_s, None never answers."""
        if answer_after_s is DEFAULT:
            answer_after_s = self.timing.police_answer_s
        for name, value in (("answer_after_s", answer_after_s), ("hangup_after_s", hangup_after_s)):
            _check_delay(name, value)
        if not number or not set(number) <= set("0123456789+*#"):
            raise ValueError(f"not a dialable number: {number!r}")
        if number in self.police or number in self._modems:
            raise ValueError(f"number {number} already belongs to a subscriber")
        endpoint = PoliceEndpoint(number, answer_after_s, hangup_after_s, _net=self)  # type: ignore[arg-type]
        self.police[number] = endpoint
        return endpoint

    def add_sms_sink(
        self, number: str, callback: Callable[[str, str, float], None] | None = None
    ) -> SmsSink:
        """Route SMS to `number` to a callback(sender, text, epoch) instead of a modem."""
        sink = SmsSink(number, callback)
        self.sms_sinks[number] = sink
        return sink

    def attach(self, modem: Sim7600Emulator) -> None:
        if modem.msisdn in self._modems and self._modems[modem.msisdn] is not modem:
            raise ValueError(f"MSISDN {modem.msisdn} already attached")
        if modem.msisdn in self.police:
            raise ValueError(f"MSISDN {modem.msisdn} is a police endpoint")
        self._modems[modem.msisdn] = modem

    def detach(self, modem: Sim7600Emulator) -> None:
        if self._modems.get(modem.msisdn) is modem:
            del self._modems[modem.msisdn]

    def modem(self, number: str) -> Sim7600Emulator | None:
        return self._modems.get(number)

    # -- SMS -----------------------------------------------------------------
    def submit_sms(
        self, sender: Sim7600Emulator, to: str, text: str, mr: int, want_report: bool
    ) -> None:
        """The SMSC accepted a message: deliver it a few seconds later (loop only)."""
        pending = _PendingSms(sender, sender.msisdn, to, text, mr, want_report, time.time())
        self.event("sms_submitted", modem=sender.msisdn, to=to, mr=mr, text=text)
        self.later(self.draw("sms_delivery_s"), self._try_deliver, pending)

    def _try_deliver(self, sms: _PendingSms) -> None:
        target = self._modems.get(sms.to)
        sink = self.sms_sinks.get(sms.to)
        delivered_epoch = time.time()
        if target is not None:
            if not target.receive_sms(sms.sender_number, sms.text, sms.submitted_epoch):
                # Recipient off, out of coverage or storage full: the SMSC retries.
                self.later(max(1.0 * self.timing.scale, 0.05), self._try_deliver, sms)
                return
        elif sink is not None:
            sink.received.append((sms.sender_number, sms.text, delivered_epoch))
            if sink.callback is not None:
                try:
                    sink.callback(sms.sender_number, sms.text, delivered_epoch)
                except Exception as exc:  # a failing sink must not stop the network
                    self.event("sms_sink_error", to=sms.to, error=repr(exc))
        self.event("sms_delivered", modem=sms.sender_number, to=sms.to, mr=sms.mr, text=sms.text)
        if sms.want_report:
            self._try_report(sms, delivered_epoch)

    def _try_report(self, sms: _PendingSms, delivered_epoch: float) -> None:
        """The status report is itself a message: retried until the sender can take it."""
        if not sms.sender.sms_report(sms.mr, sms.to, sms.submitted_epoch, delivered_epoch, 0):
            if sms.sender.port is None:
                return  # the sender's modem was closed for good
            self.later(max(1.0 * self.timing.scale, 0.05), self._try_report, sms, delivered_epoch)

    # -- HTTP ----------------------------------------------------------------
    def http_request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout_s: float,
        done: Callable[[int, bytes], None],
    ) -> None:
        """Perform the request for real in a worker thread; done(status, body) runs in the loop."""
        loop = self.loop

        def work() -> tuple[int, bytes]:
            return perform_http(method, url, body, headers, timeout_s)

        future = loop.run_in_executor(self._http_pool, work)

        def finished(fut: asyncio.Future) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is not None:
                done(HTTP_NETWORK_ERROR, b"")
            else:
                done(*fut.result())

        future.add_done_callback(finished)


def perform_http(
    method: str, url: str, body: bytes | None, headers: dict[str, str], timeout_s: float
) -> tuple[int, bytes]:
    """One real HTTP exchange; network failures become the modem's 6xx/7xx codes."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    # The modem's default SSL configuration does not check the server certificate
    # (AT+CSSLCFG authmode 0); the firmware's HTTPS is no stricter on the bench.
    context = ssl._create_unverified_context() if url.lower().startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read() or b""
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, socket.gaierror):
            return HTTP_DNS_ERROR, b""
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return HTTP_TIMEOUT, b""
        if isinstance(reason, ConnectionRefusedError):
            return HTTP_CONNECT_FAILED, b""
        return HTTP_NETWORK_ERROR, b""
    except TimeoutError:
        return HTTP_TIMEOUT, b""
    except (ConnectionError, OSError, ValueError, http.client.HTTPException):
        return HTTP_NETWORK_ERROR, b""
