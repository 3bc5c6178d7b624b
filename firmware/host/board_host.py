# The host board: the firmware on a PC under the MicroPython unix port
# (docs/interfaces.md §1). TGD_UART is the modem's serial device (a pty), TGD_BUTTON
# a FIFO (b"1" press, b"0" release), TGD_FLASH a directory or a littlefs2 image,
# TGD_PWRKEY an optional FIFO that mirrors the PWRKEY line.
import asyncio
import os
import time

import select
import termios
from micropython import const

import flash_image

_VMIN = const(6)
_VTIME = const(5)
FLASH_MOUNT = "/flash"
RESET_EXIT = const(75)  # exit status of reset(): "start me again" (not a crash)


class BoardError(Exception):
    pass


def mount_image(path, mount_point):
    """Mount a littlefs2 image file."""
    try:
        flash_image.mount_image(path, mount_point)
    except ValueError as e:  # an image too small to be a flash
        raise BoardError(str(e))


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def open_raw_serial(path):
    """Open a tty raw and non-blocking-ish: reads return what is there."""
    f = open(path, "r+b")
    fd = f.fileno()
    termios.setraw(fd)
    attrs = termios.tcgetattr(fd)
    cc = attrs[6]
    cc[_VMIN] = 0
    cc[_VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return f


class HostBoard:
    name = "host"

    def __init__(self, env=None):
        self._env = env or os.getenv
        self._button = None
        self._button_poll = None
        self._button_level = False
        self._pwrkey = None
        self._dtr = None
        self._uart = None
        self._sleep_poll = None
        self._root = None
        self.motor_on = False

    def _get(self, key, default=None):
        v = self._env(key)
        return v if v else default

    def reset_cause(self):
        return "power_on"

    def log_level(self):
        return self._get("TGD_LOG", "info")

    def timing_scale(self):
        try:
            return float(self._get("TGD_TIME_SCALE", "1"))
        except ValueError:
            return 1.0

    def rtc_unix(self):
        return int(time.time())  # a PC has a real clock

    # -- flash ----------------------------------------------------------------------
    def mount_flash(self):
        if self._root is not None:
            return self._root  # the app restarted: the flash is already there
        path = self._get("TGD_FLASH")
        if path is None:
            raise BoardError("TGD_FLASH is not set")
        if path.endswith("/"):
            path = path[:-1]
        if _is_dir(path):
            self._root = path  # a directory is used as it is
        else:
            mount_image(path, FLASH_MOUNT)
            self._root = FLASH_MOUNT
        return self._root

    # -- modem ----------------------------------------------------------------------
    def open_uart(self):
        path = self._get("TGD_UART")
        if path is None:
            raise BoardError("TGD_UART is not set")
        self._uart = open_raw_serial(path)
        self._sleep_poll = None
        return asyncio.StreamReader(self._uart)

    def pwrkey(self, pressed):
        path = self._get("TGD_PWRKEY")
        if path is None:
            return
        if self._pwrkey is None:
            self._pwrkey = open(path, "r+b")  # read-write: never blocks without a reader
        self._pwrkey.write(b"1" if pressed else b"0")  # unbuffered; flush() would fsync a FIFO

    def dtr(self, level):
        # TGD_DTR: a FIFO the emulator reads, b"1" DTR high (the modem may sleep), b"0" low
        path = self._get("TGD_DTR")
        if path is None:
            return
        if self._dtr is None:
            self._dtr = open(path, "r+b")
        self._dtr.write(b"1" if level else b"0")

    def sleep_ms(self, ms):
        """The light sleep of a PC: wait up to ms for the button FIFO or the modem's UART."""
        if self._sleep_poll is None:
            self._sleep_poll = select.poll()
            for f in (self._button, self._uart):
                if f is not None:
                    self._sleep_poll.register(f, select.POLLIN)
        self._sleep_poll.poll(ms)

    # -- button and motor -----------------------------------------------------------
    def button_pressed(self):
        if self._button is None:
            path = self._get("TGD_BUTTON")
            if path is None:
                return False
            self._button = open(path, "r+b")  # read-write: a closed writer is not an EOF
            self._button_poll = select.poll()
            self._button_poll.register(self._button, select.POLLIN)
            self._sleep_poll = None
        while self._button_poll.poll(0):
            b = self._button.read(1)
            if b == b"1":
                self._button_level = True
            elif b == b"0":
                self._button_level = False
            elif not b:
                break
        return self._button_level

    def motor(self, on):
        self.motor_on = bool(on)

    def battery_mv(self):
        return None  # the modem's AT+CBC tells

    def watchdog_feed(self):
        pass  # a PC process has no watchdog: the rig sees a dead process

    def reset(self):
        """The machine.reset() of a PC: the process ends with RESET_EXIT; whoever runs it
        (the rig, tgd_rig/emulated.py) starts it again on the same flash, the modem
        left on, as an ESP32's reset leaves it."""
        raise SystemExit(RESET_EXIT)  # not an Exception: out of asyncio and main.py
