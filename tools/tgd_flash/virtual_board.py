"""A virtual board: the MicroPython unix port's REPL served on a TCP socket.

Tools reach it exactly like a handset on USB, through pyserial's
``socket://127.0.0.1:PORT`` URL (mpremote accepts it): raw REPL, file
transfer, code execution. The VM runs in a pseudo-terminal with its working
directory and MICROPYPATH set to the board's flash directory, and TGD_UART
pointing at the modem (the SIM7600 emulator's pty), so the firmware modules
uploaded to "flash" import and drive the modem as on the ESP32.

A soft reset (Ctrl-D at the REPL) ends the unix VM; the bridge then starts a
new one, as a real board reboots. The VM keeps running between connections.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

from . import micropython_vm

_CHUNK = 4096
HOST_MODULES = Path(__file__).resolve().parents[2] / "firmware" / "host"


def micropython_executable() -> str:
    """The ESP32-faithful VM where it is built, else the PyPI port (micropython_vm.py).

    Modules uploaded to the board's flash come first on its path, the frozen ones
    after (as on an ESP32, whose sys.path is '', '.frozen', '/lib').
    """
    return micropython_vm.executable()


@dataclass
class VirtualBoard:
    """A MicroPython VM whose REPL is served on 127.0.0.1:<port>."""

    flash_dir: Path
    uart: str | None = None
    # Room for the REPL, uploads, the uploaded .mpy (loaded into RAM, as on a board
    # with PSRAM) and selftest; it measures nothing (the rig measures the heap).
    heapsize: str = "512k"
    extra_env: dict[str, str] = field(default_factory=dict)
    executable: str = field(default_factory=micropython_executable)

    def __post_init__(self) -> None:
        self.flash_dir = Path(self.flash_dir)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._master_fd: int | None = None
        self._banner = b""  # what the VM printed up to its first prompt
        self.boots = 0

    # -- lifecycle -------------------------------------------------------
    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("virtual board not started")
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> VirtualBoard:
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self._listener = listener
        self._boot()
        self._thread = threading.Thread(target=self._serve, name="virtual-board", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # the loops look at _stop every 0.2 s
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._halt_vm()

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the VM ----------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # What was uploaded first, then the frozen modules, then the host board's own
        # (firmware/host/: frozen into the ESP32-faithful VM, never uploaded; the board
        # module of this "board", as boards.lilygo is a LilyGO's)
        env["MICROPYPATH"] = f"{self.flash_dir}:.frozen:{HOST_MODULES}"
        env["TGD_FLASH"] = str(self.flash_dir)
        if self.uart:
            env["TGD_UART"] = self.uart
        env.update(self.extra_env)
        return env

    def _boot(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._proc = subprocess.Popen(
            [self.executable, "-X", f"heapsize={self.heapsize}"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=self.flash_dir,
            env=self._env(),
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self._master_fd = master
        self.boots += 1
        # Until its first prompt the VM may still flush its input (below): a host that
        # connects at once (start() returned) would lose its first Ctrl-C/Ctrl-A.
        self._banner = self._await_prompt()

    def _halt_vm(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None
        if self._master_fd is not None:
            os.close(self._master_fd)
            self._master_fd = None

    def _reboot_if_dead(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self._halt_vm()
            self._boot()

    # -- the bridge ------------------------------------------------------
    def _serve(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener], [], [], 0.2)
            if readable:
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    return
                with conn:
                    self._pump(conn)
            else:
                self._drain_unattended()

    def _drain_unattended(self) -> None:
        """Output nobody reads is dropped (a USB REPL with no host attached)."""
        self._reboot_if_dead()
        fd = self._master_fd
        while fd is not None and select.select([fd], [], [], 0)[0]:
            try:
                if not os.read(fd, _CHUNK):
                    break
            except OSError:
                self._reboot_if_dead()
                break

    def _pump(self, conn: socket.socket) -> None:
        """Bytes both ways; host input waits while the VM leaves the raw REPL.

        On Ctrl-B the unix port leaves the raw REPL and resets its terminal twice
        (tcsetattr TCSAFLUSH) before it prints the friendly banner, discarding what
        arrived meanwhile: mpremote's next Ctrl-C/Ctrl-A (a soft reset sends them at
        once) was lost about one time in ten and the reset failed with "could not
        enter raw repl". A board's USB REPL loses nothing, so the bytes after a
        Ctrl-B are held until the VM's ">>> " (at most 10 s, mpremote's own limit).
        """
        self._reboot_if_dead()
        raw_repl = False
        pending = b""  # host bytes held back
        hold_until = 0.0  # time.monotonic() deadline of the hold, 0 when not holding
        tail = b""  # the VM's last output bytes, to see its prompt
        while not self._stop.is_set():
            fd = self._master_fd
            assert fd is not None
            if hold_until and time.monotonic() >= hold_until:
                hold_until = 0.0
            if pending and not hold_until:
                data, pending = pending, b""
                raw_repl, pending, hold_until = self._forward(fd, data, raw_repl, pending)
                tail = b"" if hold_until else tail
            watch = [fd] if hold_until else [conn, fd]
            readable, _, _ = select.select(watch, [], [], 0.2)
            if conn in readable:
                data = conn.recv(_CHUNK)
                if not data:
                    return
                raw_repl, pending, hold_until = self._forward(fd, data, raw_repl, pending)
                tail = b"" if hold_until else tail
            exited = False
            if fd in readable:
                try:
                    out = os.read(fd, _CHUNK)
                except OSError:
                    out = b""
                if out:
                    try:
                        conn.sendall(out)
                    except OSError:  # the host left (e.g. closed right after its Ctrl-B)
                        return
                    tail = (tail + out)[-8:]
                    if hold_until and tail.endswith(b">>> "):
                        hold_until = 0.0
                else:
                    exited = True
            elif self._proc is not None and self._proc.poll() is not None:
                exited = True
            if exited:
                self._soft_reboot(conn, raw_repl)

    @staticmethod
    def _forward(fd: int, data: bytes, raw_repl: bool, pending: bytes) -> tuple[bool, bytes, float]:
        """Write ``data`` up to a Ctrl-B that leaves the raw REPL; hold back the rest."""
        for i, byte in enumerate(data):
            if byte == 0x02 and raw_repl:
                os.write(fd, data[: i + 1])
                return False, data[i + 1:] + pending, time.monotonic() + 10.0
            raw_repl = _raw_repl_after(bytes([byte]), raw_repl)
        os.write(fd, data)
        return raw_repl, pending, 0.0

    def _soft_reboot(self, conn: socket.socket, raw_repl: bool) -> None:
        """The unix VM exits where a board soft-resets: boot a new one.

        A board soft-reset from the raw REPL prints "soft reboot" and comes
        back in the raw REPL (without running main.py); reproduce that.
        """
        self._halt_vm()
        conn.sendall(b"MPY: soft reboot\r\n")
        self._boot()  # up to its first prompt
        if raw_repl and self._master_fd is not None:
            os.write(self._master_fd, b"\x01")  # a board in the raw REPL prints no banner
        else:
            conn.sendall(self._banner)

    def _await_prompt(self, timeout: float = 10.0) -> bytes:
        """Read the new VM's banner up to its first prompt; return it.

        The unix port flushes its terminal's input when it sets up the REPL (tcsetattr
        TCSAFLUSH), so a Ctrl-A written before the prompt may be lost (a race that the
        faster ESP32-faithful VM loses).
        """
        fd = self._master_fd
        seen = b""
        deadline = time.monotonic() + timeout
        while fd is not None and not seen.endswith(b">>> ") and time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.2)[0]:
                continue
            try:
                out = os.read(fd, _CHUNK)
            except OSError:
                break
            if not out:
                break
            seen = (seen + out)[-4096:]
        return seen


def _raw_repl_after(data: bytes, raw_repl: bool) -> bool:
    """Whether the REPL is in raw mode after the host sent ``data``."""
    for byte in data:
        if byte == 0x01:
            raw_repl = True
        elif byte == 0x02:
            raw_repl = False
    return raw_repl
