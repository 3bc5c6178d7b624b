# The host board: the firmware on a PC under the MicroPython unix port
# (docs/interfaces.md §1). TGD_UART is the modem's serial device (a pty), TGD_BUTTON
# a FIFO (b"1" press, b"0" release), TGD_FLASH a directory or a littlefs2 image,
# TGD_PWRKEY an optional FIFO that mirrors the PWRKEY line.
import os
import time

import select
from micropython import const

_BLOCK_SIZE = const(4096)
_IMAGE_BLOCKS = const(64)     # a 256 KiB flash partition, like a small ESP32 data partition
_VMIN = const(6)
_VTIME = const(5)
FLASH_MOUNT = "/flash"


class BoardError(Exception):
    pass


class FileBlockDevice:
    """A littlefs block device over a file: flash that survives the process, power cuts
    included (every write goes to the file at once)."""

    def __init__(self, path, block_size=_BLOCK_SIZE, blocks=_IMAGE_BLOCKS):
        self.block_size = block_size
        try:
            f = open(path, "r+b")
        except OSError:
            f = open(path, "w+b")
            erased = b"\xff" * block_size
            for _ in range(blocks):
                f.write(erased)
            f.flush()
        f.seek(0, 2)
        self.blocks = f.tell() // block_size
        if self.blocks < 8:
            raise BoardError("flash image too small: " + path)
        self._f = f
        self._erased = b"\xff" * block_size  # allocated once: no 4 KB allocation per erase

    def readblocks(self, num, buf, offset=0):
        self._f.seek(num * self.block_size + offset)
        self._f.readinto(buf)

    def writeblocks(self, num, buf, offset=None):
        self._f.seek(num * self.block_size + (offset or 0))
        self._f.write(buf)
        self._f.flush()

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase
            self._f.seek(arg * self.block_size)
            self._f.write(self._erased)
            self._f.flush()
            return 0
        return 0


def mount_image(path, mount_point):
    import vfs
    bdev = FileBlockDevice(path)
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)  # new or unreadable image: format it, as a blank ESP32
        fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, mount_point)


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def open_raw_serial(path):
    """Open a tty raw and non-blocking-ish: reads return what is there."""
    import termios
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
        import asyncio
        path = self._get("TGD_UART")
        if path is None:
            raise BoardError("TGD_UART is not set")
        return asyncio.StreamReader(open_raw_serial(path))

    def pwrkey(self, pressed):
        path = self._get("TGD_PWRKEY")
        if path is None:
            return
        if self._pwrkey is None:
            self._pwrkey = open(path, "r+b")  # read-write: never blocks without a reader
        self._pwrkey.write(b"1" if pressed else b"0")  # unbuffered; flush() would fsync a FIFO

    def dtr(self, level):
        pass  # the emulated modem does not sleep

    # -- button and motor -----------------------------------------------------------
    def button_pressed(self):
        if self._button is None:
            path = self._get("TGD_BUTTON")
            if path is None:
                return False
            self._button = open(path, "r+b")  # read-write: a closed writer is not an EOF
            self._button_poll = select.poll()
            self._button_poll.register(self._button, select.POLLIN)
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
