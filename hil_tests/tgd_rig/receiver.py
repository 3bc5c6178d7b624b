"""The "police" receiver: a real modem on a serial port that takes the handset's call and SMS.

It speaks the SIM7600 AT dialect (../shared/reference/sim7600-at.md) through pyserial:
`RING` / `+CLIP: "<number>",...` -> a call is ringing (published as `call_ringing`, with
the caller id), `ATA` after `answer_after_s` -> `call_answered`; `+CMTI: "SM",<i>` ->
`AT+CMGR=<i>` -> `sms_delivered` with the sender and the text, then `AT+CMGD=<i>`.

One reader thread owns the port; every line is first checked against the URC
prefixes, and only then handed to the one command in flight. It works the same
on a real modem and on the SIM7600 emulator's pty (how it is tested here).
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable

import serial

from .errors import RigError

_CLIP = re.compile(r'^\+CLIP: "([^"]*)"')
_CMTI = re.compile(r'^\+CMTI: "(\w+)",(\d+)')
_CMGR = re.compile(r'^\+CMGR: "([^"]*)","([^"]*)"')
_FINAL = ("OK", "ERROR", "+CME ERROR", "+CMS ERROR", "NO CARRIER", "BUSY", "NO ANSWER")
_URC_PREFIXES = ("RING", "+CLIP:", "+CMTI:", "VOICE CALL:", "+CLCC:", "+CDS:", "RDY",
                 "+CPIN:", "SMS DONE", "PB DONE", "MISSED_CALL")


class ReceiverError(RigError):
    """The receiver modem did not answer as a SIM7600 should."""


class Receiver:
    def __init__(self, port: str, emit: Callable[..., object], baudrate: int = 115200,
                 answer_after_s: float | None = 3.0, name: str = "receiver"):
        self.port_name = port
        self.baudrate = baudrate
        self.answer_after_s = answer_after_s
        self.name = name
        self._emit = emit          # emit(kind, **data): the rig's event bus
        self._serial: serial.Serial | None = None
        self._answers: queue.Queue[str] = queue.Queue()
        self._cmd_lock = threading.Lock()
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._work: queue.Queue[tuple[str, str]] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._ringing = False
        self.transcript: list[str] = []

    def open(self) -> None:
        self._serial = serial.serial_for_url(self.port_name, baudrate=self.baudrate, timeout=0.1)
        for target in (self._read_loop, self._work_loop):
            thread = threading.Thread(target=target, name=f"{self.name}-{target.__name__}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        self.command("AT", timeout=5, attempts=10)
        for cmd in ("ATE0", "AT+CMEE=2", "AT+CLIP=1", "AT+CMGF=1", 'AT+CSCS="GSM"',
                    "AT+CNMI=2,1,0,0,0"):
            self.command(cmd)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    # -- commands ---------------------------------------------------------------------------

    def command(self, cmd: str, timeout: float = 5.0, attempts: int = 1) -> list[str]:
        """Send one command; the lines of its answer up to OK. ReceiverError otherwise."""
        last: Exception | None = None
        for _ in range(attempts):
            try:
                return self._command_once(cmd, timeout)
            except ReceiverError as exc:
                last = exc
        raise last if last else ReceiverError(cmd)

    def _command_once(self, cmd: str, timeout: float) -> list[str]:
        with self._cmd_lock:
            while not self._answers.empty():
                self._answers.get_nowait()
            self._pending.set()
            try:
                self._write(cmd + "\r")
                lines: list[str] = []
                deadline = time.monotonic() + timeout
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ReceiverError(f"{self.name}: no answer to {cmd} within {timeout} s "
                                            f"(got {lines})")
                    try:
                        line = self._answers.get(timeout=remaining)
                    except queue.Empty:
                        continue
                    if line == cmd:        # echo before ATE0
                        continue
                    if line == "OK":
                        return lines
                    if line.startswith(_FINAL):
                        raise ReceiverError(f"{self.name}: {cmd} -> {line}")
                    lines.append(line)
            finally:
                self._pending.clear()

    def _write(self, text: str) -> None:
        if self._serial is None:
            raise ReceiverError(f"{self.name}: not open")
        self.transcript.append(f"> {text.strip()}")
        self._serial.write(text.encode())

    # -- reading ----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = self._serial.read(256) if self._serial else b""
            except (serial.SerialException, OSError, TypeError):
                break
            if not chunk:
                continue
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.strip(b"\r").decode("utf-8", "replace").strip()
                if line:
                    self.transcript.append(f"< {line}")
                    self._route(line)

    def _route(self, line: str) -> None:
        # NO CARRIER with no command in flight is the end of a call, not an answer.
        if line.startswith(_URC_PREFIXES) or (line == "NO CARRIER" and not self._pending.is_set()):
            self._work.put(("urc", line))
        else:
            self._answers.put(line)

    def _work_loop(self) -> None:
        """URCs are handled here, never in the reader: handling sends commands."""
        while not self._stop.is_set():
            try:
                _, line = self._work.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._on_urc(line)
            except RigError as exc:
                self._emit("receiver_error", error=str(exc))

    def _on_urc(self, line: str) -> None:
        now = time.monotonic()
        clip = _CLIP.match(line)
        if clip:
            if not self._ringing:
                self._ringing = True
                self._emit("call_ringing", t=now, caller=clip.group(1))
                if self.answer_after_s is not None:
                    self._sleep(self.answer_after_s)
                    self.command("ATA", timeout=10)
                    self._emit("call_answered", caller=clip.group(1))
            return
        if line.startswith("VOICE CALL: END") or line == "NO CARRIER":
            if self._ringing:
                self._emit("call_ended")
            self._ringing = False
            return
        cmti = _CMTI.match(line)
        if cmti:
            index = cmti.group(2)
            lines = self.command(f"AT+CMGR={index}", timeout=10)
            sender, text = "", ""
            for i, ln in enumerate(lines):
                m = _CMGR.match(ln)
                if m:
                    sender = m.group(2)
                    text = "\n".join(lines[i + 1:])
                    break
            self._emit("sms_delivered", t=now, sender=sender, text=text)
            self.command(f"AT+CMGD={index}", timeout=10)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)
