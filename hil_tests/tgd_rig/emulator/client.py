"""A minimal AT user of a modem port (pyserial), for tests and for poking an emulator by hand.

It reads raw bytes so tests can check responses byte for byte; `expect()` fails
with what it got and the modem's transcript.
"""

from __future__ import annotations

import time

import serial


class ExpectTimeout(AssertionError):
    """expect() did not see the bytes in time; the message shows the buffer."""


class AtClient:
    def __init__(self, port: str, transcript=None, baudrate: int = 115200):
        self.serial = serial.Serial(port, baudrate=baudrate, timeout=0.02)
        self.buffer = bytearray()
        self._transcript = transcript

    def close(self) -> None:
        self.serial.close()

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.serial.write(data)

    def send(self, command: str) -> None:
        self.write(command + "\r")

    def _pump(self) -> None:
        # read(n) waits for n bytes or the timeout: ask for what is there, at least one.
        data = self.serial.read(max(1, self.serial.in_waiting))
        if data:
            self.buffer.extend(data)

    def expect(self, wanted: bytes | str, timeout: float = 5.0) -> bytes:
        """Wait until `wanted` is in the buffer; return and consume everything up to its end."""
        if isinstance(wanted, str):
            wanted = wanted.encode("latin-1")
        deadline = time.monotonic() + timeout
        while True:
            i = self.buffer.find(wanted)
            if i >= 0:
                end = i + len(wanted)
                out = bytes(self.buffer[:end])
                del self.buffer[:end]
                return out
            if time.monotonic() > deadline:
                where = ""
                if self._transcript is not None:
                    where = "\ntranscript:\n" + self._transcript.format(40)
                raise ExpectTimeout(
                    f"did not see {wanted!r} within {timeout} s; buffer {bytes(self.buffer)!r}"
                    + where
                )
            self._pump()

    def command(self, command: str, timeout: float = 5.0) -> bytes:
        """Send a command and return everything up to its final OK/ERROR line (inclusive)."""
        self.send(command)
        deadline = time.monotonic() + timeout
        finals = (b"\r\nOK\r\n", b"\r\nERROR\r\n", b"+CME ERROR", b"+CMS ERROR")
        while True:
            for final in finals:
                i = self.buffer.find(final)
                if i >= 0:
                    end = self.buffer.find(b"\r\n", i + 2) + 2 if final[0:1] == b"+" else i + len(final)
                    if end >= 2:
                        out = bytes(self.buffer[:end])
                        del self.buffer[:end]
                        return out
            if time.monotonic() > deadline:
                return self.expect(b"\r\nOK\r\n", 0)  # raises with the buffer
            self._pump()

    def read_for(self, seconds: float) -> bytes:
        """Everything that arrives within `seconds` (for checking that nothing comes)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump()
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


def boot(modem, timeout: float = 5.0) -> AtClient:
    """Open the modem, power it on, return a client that has seen the boot URCs and whose
    modem is registered (tests and the rig's quick checks)."""
    if modem.port is None:
        modem.open()
    client = AtClient(modem.port, modem.transcript)
    since = time.monotonic()
    modem.power_on()
    client.expect(b"PB DONE\r\n", timeout)
    if modem.sim_present:
        modem.net.wait_event("registration", timeout, since=since, modem=modem.msisdn, stat=1)
    return client
