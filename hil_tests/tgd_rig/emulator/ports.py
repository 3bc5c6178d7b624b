"""The emulator's side of the line: a pseudo-terminal, or a real serial port (pyserial).

Both deliver received bytes to a callback in the network loop and write bytes
without ever blocking the loop for long.
"""

from __future__ import annotations

import asyncio
import os
import termios
import threading
import time
import tty
from collections.abc import Callable

Receiver = Callable[[bytes], None]


class PtyPort:
    """os.openpty(); the host opens `path` (the slave). We keep a slave fd open so the
    master never reports EIO when the host closes and reopens it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receiver: Receiver):
        self._loop = loop
        self._receiver = receiver
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[6][termios.VMIN] = 0
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        loop.add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if data:
            self._receiver(data)

    def write(self, data: bytes) -> int:
        """Write what the tty takes now; returns the count (0 when its buffer is full)."""
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0

    def flush_input_of_host(self) -> None:
        """Discard what the host has not read yet (a host that restarts sees a clean line)."""
        termios.tcflush(self._slave, termios.TCIFLUSH)

    def close(self) -> None:
        try:
            self._loop.remove_reader(self.master)
        except (ValueError, RuntimeError):
            pass
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class SerialPort:
    """A real serial port (pyserial URL or device), read by a thread."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, receiver: Receiver, url: str, baudrate: int = 115200
    ):
        import serial  # pyserial

        self._loop = loop
        self._receiver = receiver
        self._serial = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
        self.path = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name=f"emu-{url}", daemon=True)
        self._thread.start()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._serial.read(4096)
            except Exception:
                time.sleep(0.1)
                continue
            if data:
                self._loop.call_soon_threadsafe(self._receiver, bytes(data))

    def write(self, data: bytes) -> int:
        return self._serial.write(data) or 0

    def flush_input_of_host(self) -> None:
        pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self._serial.close()


class PwrkeyFifo:
    """FIFO the firmware writes `1` (PWRKEY pulled low) and `0` (released) into."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, path: str, on_level: Callable[[bool], None]
    ):
        self._loop = loop
        self.path = path
        self._on_level = on_level
        if not os.path.exists(path):
            os.mkfifo(path)
        # Read-write so that a writer closing does not turn into an endless EOF.
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 64)
        except (BlockingIOError, InterruptedError):
            return
        for byte in data:
            if byte == ord("1"):
                self._on_level(True)
            elif byte == ord("0"):
                self._on_level(False)

    def close(self) -> None:
        try:
            self._loop.remove_reader(self._fd)
        except (ValueError, RuntimeError):
            pass
        os.close(self._fd)
        try:
            os.unlink(self.path)
        except OSError:
            pass
