"""A small AT client for the gateway's SIM7600 (CPython, pyserial): text-mode SMS only.

One reader owns the port: every line is first checked against the URC prefixes and
queued for `next_urc()`, unless it belongs to the command in flight (its own
`+CMD:` prefix); only then is it taken as part of the answer. A `RDY` in the
middle of a command means the modem rebooted: `ModemRebooted` is raised at once.

Bytes are decoded as Latin-1 so that no byte, however garbled, can fail decoding
(in text mode with AT+CSCS="GSM" every AML character is plain ASCII).
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import serial

log = logging.getLogger("tgd.sms.modem")

URC_PREFIXES = (
    "+CMTI:", "+CDS:", "+CDSI:", "+CMT:", "RDY", "+CPIN:", "SMS DONE", "PB DONE", "RING",
    "+CLIP:", "+CREG:", "+CGREG:", "+CEREG:", "+CGEV:", "VOICE CALL", "+CLCC:", "+CIEV:",
    "NO CARRIER", "+CGPS:", "+CMQTT", "+HTTP_", "+CPSI:", "+CNMP:", "+CFUN:",
)
_FINAL_OK = "OK"
_FINAL_ERRORS = ("+CME ERROR:", "+CMS ERROR:", "NO CARRIER", "BUSY", "NO ANSWER")
# Received messages carry a time stamp; stored outgoing ones ("STO UNSENT") do not.
_CMGR_HEADER = re.compile(r'\+CMGR: "([A-Z ]+)","([^"]*)"(?:,[^,]*,"([^"]*)")?')
_CMGL_HEADER = re.compile(r'\+CMGL: (\d+),"([A-Z ]+)","([^"]*)"(?:,[^,]*,"([^"]*)")?')
_CMTI = re.compile(r'\+CMTI: "(\w+)",(\d+)')
_CPMS = re.compile(r'\+CPMS: (?:"\w+",)?(\d+),(\d+)')
_SCTS = re.compile(r"(\d\d)/(\d\d)/(\d\d),(\d\d):(\d\d):(\d\d)([+-]\d\d)")


class ModemError(Exception):
    """Base of every gateway-modem failure."""


class AtTimeout(ModemError):
    def __init__(self, command: str, partial: list[str]) -> None:
        super().__init__(f"no final result for AT{command} (got {partial[-5:]!r})")
        self.partial = partial


class AtError(ModemError):
    def __init__(self, command: str, line: str) -> None:
        super().__init__(f"AT{command} -> {line}")
        self.line = line


class CmsError(AtError):
    """`+CMS ERROR: <code>` (SMS); `code` is an int when numeric, else the verbose text."""

    def __init__(self, command: str, line: str) -> None:
        super().__init__(command, line)
        value = line.split(":", 1)[1].strip()
        self.code: int | str = int(value) if value.isdigit() else value


class ModemRebooted(ModemError):
    """RDY arrived: the modem restarted and lost its volatile settings."""


@dataclass(frozen=True)
class StoredSms:
    index: int
    status: str  # REC UNREAD, REC READ, STO UNSENT, STO SENT
    sender: str  # originator, or the destination of a stored outgoing message
    scts: datetime | None  # service-centre time stamp, UTC
    text: str

    @property
    def received(self) -> bool:
        """A message that came in (not one written on this SIM to be sent)."""
        return self.status.startswith("REC")


class AtModem:
    """Blocking AT client over a pyserial port or URL (`/dev/ttyUSB2`, `socket://h:p`, a pty)."""

    def __init__(self, port: str, baudrate: int = 115200) -> None:
        self.port = port
        self.baudrate = baudrate
        self._serial: serial.SerialBase | None = None
        self._buffer = bytearray()
        self._urcs: deque[str] = deque()

    # --- port ------------------------------------------------------------------

    def open(self) -> None:
        self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.05)
        self._buffer.clear()

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def __enter__(self) -> AtModem:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_line(self, deadline: float) -> str | None:
        """Next non-empty-or-empty line before `deadline`, or None. Strips \\r\\n."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                raw = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                # With AT+CSCS="GSM" the modem sends GSM 03.38 codes: 0x00 is '@'.
                line = raw.replace(b"\r", b"").replace(b"\x00", b"@").decode("latin-1")
                if line:
                    log.debug("<- %r", line)
                return line
            if time.monotonic() >= deadline:
                return None
            chunk = self._serial.read(max(1, self._serial.in_waiting))
            if chunk:
                self._buffer.extend(chunk)

    def _write(self, data: bytes) -> None:
        log.debug("-> %r", data)
        self._serial.write(data)
        self._serial.flush()

    # --- commands -----------------------------------------------------------------

    def command(self, cmd: str, timeout: float = 5.0) -> list[str]:
        """Send `AT<cmd>`, return the answer's lines (without echo, blanks and OK).

        Raises AtTimeout, AtError, CmsError or ModemRebooted. URCs seen meanwhile are
        queued for `next_urc()`.
        """
        own_prefix = _response_prefix(cmd)
        self._write(f"AT{cmd}\r".encode("latin-1"))
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            line = self._read_line(deadline)
            if line is None:
                raise AtTimeout(cmd, lines)
            if line == f"AT{cmd}":
                continue  # echo (before ATE0)
            if line == "RDY":
                self._urcs.append(line)
                raise ModemRebooted(f"RDY during AT{cmd}")
            if _is_urc(line) and not (own_prefix and line.startswith(own_prefix)):
                self._urcs.append(line)
                continue
            if line == _FINAL_OK:
                return _strip_blank_edges(lines)
            if line.startswith("+CMS ERROR:"):
                raise CmsError(cmd, line)
            if line == "ERROR" or line.startswith("+CME ERROR:"):
                raise AtError(cmd, line)
            lines.append(line)

    def next_urc(self, timeout: float) -> str | None:
        """The next unsolicited line (queued or read within `timeout`), or None."""
        if self._urcs:
            return self._urcs.popleft()
        deadline = time.monotonic() + timeout
        while True:
            line = self._read_line(deadline)
            if line is None:
                return None
            if line.strip():
                return line  # anything unprompted: the caller decides (garbage included)

    def resync(self, attempts: int = 5, timeout: float = 1.0, settle_s: float = 0.3) -> bool:
        """After a timeout, a reboot or garbage: drop the input, check that `AT` answers
        OK, and that no late answer follows.

        The answer to a command given up on (a timeout, RDY in the middle) can still
        be on its way. Taken for `AT`'s own OK it would shift every later answer by
        one command (AT+CPMS? would read the previous command's OK). So after `AT`
        answers, the line must stay free of final result codes for `settle_s`;
        otherwise the check starts again. URCs seen meanwhile are kept.
        """
        for _ in range(attempts):
            self._buffer.clear()
            self._serial.reset_input_buffer()
            try:
                self.command("", timeout=timeout)
            except ModemRebooted:
                raise
            except ModemError:
                continue
            if self._quiet_after_answer(settle_s):
                return True
        return False

    def _quiet_after_answer(self, settle_s: float) -> bool:
        """True when no final result code arrives within `settle_s` (a stale answer)."""
        deadline = time.monotonic() + settle_s
        while True:
            line = self._read_line(deadline)
            if line is None:
                return True
            if line == "RDY":
                self._urcs.append(line)
                raise ModemRebooted("RDY while resynchronising")
            if line == _FINAL_OK or line == "ERROR" or line.startswith(_FINAL_ERRORS):
                log.debug("late answer %r while resynchronising: checking again", line)
                return False
            if _is_urc(line):
                self._urcs.append(line)

    # --- SMS ----------------------------------------------------------------------

    def read_sms(self, index: int, timeout: float = 5.0) -> StoredSms | None:
        """AT+CMGR=<index>; None when the slot is empty."""
        lines = self.command(f"+CMGR={index}", timeout=timeout)
        for position, line in enumerate(lines):
            match = _CMGR_HEADER.match(line)
            if match:  # anything before the header is line noise
                status, sender, scts = match.groups(default="")
                # A real SIM7600 puts the text right after the header line; tolerate a
                # blank line there (framing every line with \r\n on both sides).
                text = "\n".join(_strip_blank_edges(lines[position + 1:]))
                return StoredSms(index, status, sender, parse_scts(scts), text)
        if any(line.strip() for line in lines):
            raise AtError(f"+CMGR={index}", f"no +CMGR header in {lines[:3]!r}")
        return None

    def list_sms(self, which: str = "ALL", timeout: float = 20.0) -> list[StoredSms]:
        """AT+CMGL="ALL": every stored message (text mode)."""
        lines = self.command(f'+CMGL="{which}"', timeout=timeout)
        found: list[StoredSms] = []
        current: tuple | None = None
        body: list[str] = []
        for line in lines + ["+CMGL: end"]:
            header = _CMGL_HEADER.match(line)
            if header or line == "+CMGL: end":
                if current is not None:
                    index, status, sender, scts = current
                    text = "\n".join(_strip_blank_edges(body))
                    found.append(StoredSms(int(index), status, sender, parse_scts(scts), text))
                current, body = (header.groups(default="") if header else None), []
            elif current is not None:
                body.append(line)
        return found

    def delete_sms(self, index: int) -> None:
        self.command(f"+CMGD={index}")

    def storage_use(self) -> tuple[int, int]:
        """(used, capacity) of the message storage being read (AT+CPMS?)."""
        for line in self.command("+CPMS?"):
            match = _CPMS.match(line)
            if match:
                return int(match.group(1)), int(match.group(2))
        raise AtError("+CPMS?", "no +CPMS line in the answer")


def parse_cmti(line: str) -> int | None:
    """Index announced by `+CMTI: "SM",<index>`, or None when the line is not one."""
    match = _CMTI.fullmatch(line.strip())
    return int(match.group(2)) if match else None


def parse_scts(value: str) -> datetime | None:
    """`yy/MM/dd,hh:mm:ss±zz` (zone in quarter hours) -> aware UTC datetime, None if odd."""
    match = _SCTS.fullmatch(value.strip())
    if not match:
        return None
    yy, mo, dd, hh, mi, ss, zone = (int(g) for g in match.groups())
    try:
        local = datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=UTC)
    except ValueError:
        return None
    return local - timedelta(minutes=15 * zone)


def _response_prefix(cmd: str) -> str | None:
    """`+CMGR=3` -> `+CMGR:` (a line with it answers the command, even if URC-like)."""
    match = re.match(r"(\+\w+)", cmd)
    return match.group(1) + ":" if match else None


def _is_urc(line: str) -> bool:
    return line.startswith(URC_PREFIXES)


def _strip_blank_edges(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]
