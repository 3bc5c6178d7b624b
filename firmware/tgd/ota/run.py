# Updates over the air, the I/O (docs/firmware.md "Updates over the air"): take an
# offer from a heartbeat answer, download the bundle in chunks into a staging file
# (resumable: a Range header from what the file already holds), check its size and
# SHA-256, unpack it into the inactive slot, switch, reset; after the reset, the boot
# self-test that confirms the new slot. The checks themselves are tgd/ota/offer.py's; the
# slots' state is tgd/ota/slot.py's.
#
# The alarm always wins: the download runs in the heartbeat's task, which the app
# cancels when an alarm starts, and it holds the modem for one AT command at a time
# (an AT+HTTPREAD of CHUNK bytes, ~0.2 s at 115200 baud), so the dial goes next.
import gc
import json
import os

import asyncio
from micropython import const

from tgd.modem.errors import ModemError
from tgd.ota import offer, report
from tgd.ota import slot as slots

# bytes per AT+HTTPREAD, received into the AT engine's raw buffer (Sim7600.http_chunk;
# 640 bytes, made at start: nothing is allocated for a download) and written at once:
# an ESP32 UART (2048-byte receive buffer) never overflows behind a slow flash write.
# When the AT engine handed each chunk over as new bytes, a 513-byte block failed now and
# then just after an alarm (MemoryError at_rx, the heap at 48 KB broken up), and the
# download waited out a 10 s command timeout at every heartbeat.
CHUNK = const(512)
WINDOW = const(32768)  # bytes per GET (Range: bytes=N-M): what the modem buffers at once
_GET_MS = const(60000)


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _digest(text):
    import hashlib
    return hashlib.sha256(text.encode() if isinstance(text, str) else b"").digest()


def routes(board):
    """The bundle forms `board` installs (tgd/ota/offer.py check_offer): "app" where it
    has ota_app_write (the ESP32 boards)."""
    return ("mpy", "app") if getattr(board, "ota_app_write", None) is not None else ("mpy",)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


async def sha256_file(path, size):
    """The file's first `size` bytes' SHA-256 (hex); yields every 512 bytes."""
    import hashlib
    h = hashlib.sha256()
    buf = bytearray(512)
    mv = memoryview(buf)
    left = size
    with open(path, "rb") as f:
        while left > 0:
            n = f.readinto(buf)
            if not n:
                break
            n = min(n, left)
            h.update(mv[:n])
            left -= n
            await asyncio.sleep_ms(0)
    from binascii import hexlify
    return hexlify(h.digest()).decode()


async def unpack(stage, size, dest):
    """Write the bundle's files under `dest` (created). Raises offer.OtaError on a
    malformed bundle (then `dest` is half written: it is not booted, and the next
    try clears it)."""
    slots.clear_dir(dest)
    os.mkdir(dest)
    buf = bytearray(512)
    with open(stage, "rb") as f:
        if f.read(len(offer.BUNDLE_MAGIC)) != offer.BUNDLE_MAGIC:
            raise offer.OtaError("bad_hash", "bundle_magic")
        pos = len(offer.BUNDLE_MAGIC)
        while pos < size:
            line = f.readline()
            pos += len(line)
            path, n = offer.entry(line, size - pos)
            parts = path.split("/")
            d = dest
            for p in parts[:-1]:
                d += "/" + p
                if not slots.is_dir(d):
                    os.mkdir(d)
            with open(dest + "/" + path, "wb") as out:
                left = n
                while left > 0:
                    k = f.readinto(memoryview(buf)[:left]) if left < len(buf) else f.readinto(buf)
                    if not k:
                        raise offer.OtaError("bad_hash", "bundle_truncated")
                    out.write(memoryview(buf)[:k])
                    left -= k
                    await asyncio.sleep_ms(0)  # the button loop between blocks
            pos += n


class Updater:
    """One step's (tgd/ota/__init__.py Updates.step makes one per step and lets it go):
    what it needs between steps is in the flash (tgd/ota/slot.py's state, offer.json,
    stage.bin) or in `memo` (the app's Updates: the new offer, the manifest checked)."""

    def __init__(self, memo):
        app = memo.app
        self.memo = memo
        self.dev = app.dev
        self._free = app.release_ended  # () -> True when it let the ended alarm go
        self.board = app.board
        self.root = app.root
        self._idle = app.idle  # () -> True when no alarm is open and the button is up
        self.state = slots.load(self.root)
        self.offer_ = None
        self._stored = None  # offer.json's manifest text (verified before it was stored)
        try:
            with open(self._path("checked.txt")) as f:
                memo.seen = _digest(f.read())  # checked at this boot's start (check_parked)
            _remove(self._path("checked.txt"))  # this boot's only: a roll-back takes it again
        except OSError:
            pass
        self._load_offer()

    def _path(self, name):
        return self.root + "/ota/" + name

    def _load_offer(self):
        try:
            with open(self._path("offer.json")) as f:
                o = json.load(f)
            self.offer_ = (json.loads(o["manifest"]), o["url"])
            self._stored = o["manifest"]
        except (OSError, ValueError, KeyError, TypeError):
            self.offer_ = None

    def _result(self, res, version, why=None):
        self.state = slots.set_result(self.root, res, version)
        self.memo.last = report(self.state)
        if why is None:
            self.dev.log.event("OTA", res=res, ver=version)
        else:
            self.dev.log.event("OTA", res=res, ver=version, why=why)

    async def _take(self, update):
        """Check an offer (offer.check_offer) and store it, or record why not."""
        dev = self.dev
        text = update.get("manifest") if isinstance(update, dict) else None
        if isinstance(text, str) and (text == self._stored or _digest(text) == self.memo.seen):
            return  # checked already (taken, or refused): Ed25519 is not run every heartbeat
        from tgd.crypto.ed25519 import verify  # pure-Python Ed25519, on an offer only
        def check():
            return offer.check_offer(update, dev.fw, dev.cfg["release_pub"], verify,
                                     routes(self.board))
        gc.collect()
        try:
            m, url = check()
        except MemoryError:
            # Ed25519 in pure Python wants ~14 KB of heap at once; after an alarm the
            # ended alarm's objects leave less: the app lets them go (its journal has
            # all), then one more try; else again with the next heartbeat's offer.
            m = None
            if self._free is not None and self._free():
                gc.collect()
                try:
                    m, url = check()
                except MemoryError:
                    m = None
                except offer.OtaError as e:
                    self._refused(e, update, text)
                    return
            ver = update.get("version") if isinstance(update, dict) else None
            if m is None and self.state.get("park") == ver:
                self.memo.seen = _digest(text)  # parked once already: until a newer offer, no more
                dev.log.event("OTA", res="deferred", why="memory")
                return
            if m is None:
                # checked at the start of the next boot, the heap empty (main.py ->
                # check_parked): parked in the flash, then a reset when she is idle
                text = json.dumps(update)  # first: a MemoryError here leaves no file
                slots._mkdir(self.root + "/ota")  # a handset never updated has none yet
                with open(self._path("park.tmp"), "w") as f:
                    f.write(text)
                os.rename(self._path("park.tmp"), self._path("park.json"))
                text = None
                self.state = slots.set_park(self.root, ver)
                dev.log.event("OTA", res="deferred", why="memory", step="verify_at_boot")
                await self._reset(True)
                return
        except offer.OtaError as e:
            self._refused(e, update, text)
            return
        self.memo.seen = _digest(text)
        st = self.state
        if st["res"] == "selftest_failed" and st["ver"] == m["version"]:
            return  # it failed its self-test here once: not again (a newer one will do)
        if self.offer_ is not None and self.offer_[0]["version"] == m["version"]:
            return  # the same release, already being downloaded (after a reboot)
        slots._mkdir(self.root + "/ota")
        _remove(self._path("stage.bin"))
        with open(self._path("offer.tmp"), "w") as f:
            f.write(json.dumps({"manifest": update["manifest"], "url": url}))
        os.rename(self._path("offer.tmp"), self._path("offer.json"))
        self.offer_ = (m, url)
        self._stored = update["manifest"]
        self._result("downloading", m["version"])

    def _refused(self, e, update, text):
        self.memo.seen = _digest(text)
        ver = update.get("version") if isinstance(update, dict) else None
        ver = ver if isinstance(ver, str) else ""
        if e.args[1] == "not_newer":
            # what it runs already (a roll-out still offering it): the report keeps
            # saying how the last update went
            self.dev.log.event("OTA", res="refused", ver=ver, why="not_newer")
            return
        self._result(e.args[0], ver, e.args[1])

    def _drop_offer(self):
        _remove(self._path("offer.json"))
        _remove(self._path("stage.bin"))
        self.offer_ = None

    def _ready(self):
        """Why not now (None: go): an alarm open, the battery low or unknown."""
        if not self._idle():
            return "alarm"
        bat = self.dev.bat
        if not isinstance(bat, int) or bat < self.dev.cfg["ota_min_bat_mv"]:
            return "battery"
        return None

    async def step(self):
        """After a delivered heartbeat (data is up): download, verify, install, switch,
        reset. Returns when deferred or failed (the next heartbeat tries again)."""
        st = self.state
        memo = self.memo
        if st["trial"] is not None and st["boot"] != st["trial"] and not memo.halted:
            await self._reset()  # switched, and an alarm came before the reset: now
        if _size(self._path("park.json")) >= 0:
            await self._reset(True)  # parked, and an alarm came before the reset: now
            return
        if memo.new is not None:
            update, memo.new = memo.new, None
            await self._take(update)
        if self.offer_ is None or memo.halted or st["trial"] is not None:
            return
        m, url = self.offer_
        why = self._ready()
        if why is not None:
            if self.state.get("res") != "deferred":
                self._result("deferred", m["version"], why)
            return
        if self.state.get("res") != "downloading":
            self._result("downloading", m["version"])
        if not await self._download(m, url):
            return
        stage = self._path("stage.bin")
        log = self.dev.log
        log.event("OTA", step="verify", ver=m["version"])
        if await sha256_file(stage, m["size"]) != m["sha256"]:
            self._drop_offer()
            self._result("bad_hash", m["version"], "sha256")
            return
        if not self._idle():
            return  # an alarm came while hashing: the staged file waits
        slot = slots.inactive(self.state)
        log.event("OTA", step="write", slot=slot)
        try:
            if m["route"] == "app":
                # the new image boots its own frozen modules: an older .mpy set left in
                # this slot's folder would be loaded over them (tgd/ota/overlay.py)
                slots.clear_dir(slots.slot_dir(self.root, slot))
                try:
                    self.board.ota_app_write(stage, m["size"])  # esp32.Partition (boards/esp32.py)
                except OSError as e:
                    # ESP-IDF refused the image (set_boot), or the board has no OTA app
                    # partition: tried again at every heartbeat, it rewrote the partition
                    # each time and never said why
                    raise offer.OtaError("bad_hash", "app_write:%s" % (e.args[0] if e.args else ""))
            else:
                await unpack(stage, m["size"], slots.slot_dir(self.root, slot))
        except offer.OtaError as e:
            self._drop_offer()
            self._result(e.args[0], m["version"], e.args[1])
            return
        while not self._idle():
            # a hold under way (it may become an alarm, which cancels this task) or an
            # alarm: never reset under her finger
            await asyncio.sleep_ms(50)
        log.event("OTA", step="switch", slot=slot, ver=m["version"])
        slots.arm(self.root, slot, m["version"])
        self.state = slots.load(self.root)
        self._drop_offer()
        await self._reset()

    async def _reset(self, mark=False):
        while not self._idle():  # checked again after the flash writes; then no await
            await asyncio.sleep_ms(50)
        if mark:
            slots.mark_reset(self.root)  # a hold begun during the reboot counts
        self.board.reset()

    async def _download(self, m, url):
        """Fill stage.bin up to m["size"]; True when complete."""
        dev = self.dev
        stage = self._path("stage.bin")
        size = m["size"]
        have = _size(stage)
        if have < 0 or have > size:
            _remove(stage)
            have = 0
        full = offer.bundle_url(dev.cfg["server_url"], url)
        modem = dev.modem
        dev.log.event("OTA", step="download", have=have, size=size)
        while have < size:
            end = min(size, have + WINDOW) - 1
            try:
                status, length = await modem.http_get(full, "Range: bytes=%d-%d" % (have, end),
                                                      _GET_MS)
                if status == 200 and have == 0 and length == size:
                    end = size - 1  # a server without Range: the whole bundle, read it all
                elif status != 206 or length != end - have + 1:
                    await modem.http_done()
                    dev.log.event("OTA", step="download", status=status, length=length)
                    return False
                off = 0
                buf = modem.at.raw_buffer  # every chunk comes into it, written before the next
                while off < length and have < size:
                    n = min(CHUNK, length - off)
                    dev.log.debug("OTA_MEM", free=gc.mem_free(), have=have)
                    view = memoryview(buf)[:n]
                    if await modem.http_chunk(off, view) != n:
                        raise ModemError("short_read")
                    with open(stage, "ab") as f:
                        f.write(view)
                    off += n
                    have += n
                    await asyncio.sleep_ms(0)  # the button loop and an alarm go first
                await modem.http_done()
            except ModemError as e:
                dev.log.error("ota_download", e)
                try:
                    await modem.http_done()
                except ModemError:
                    pass
                return False
        dev.log.event("OTA", step="downloaded", size=size)
        return True


def check_parked(root, board=None):
    """At the start of a boot, before the app (main.py): an offer parked by _take when
    the heap was short is checked now, with the heap empty, for the routes `board`
    installs; taken (offer.json) or its refusal recorded. Nothing of it stays imported."""
    path = root + "/ota/park.json"
    try:
        with open(path) as f:
            update = json.load(f)
    except (OSError, ValueError, MemoryError):
        update = None
    # once, whatever it held: a park that cannot be read must not reset the handset again
    # at every heartbeat (a heap probe run: a MemoryError writing it left it empty, and
    # the handset reset 93 times in 11 s, a block of sequence numbers each)
    _remove(path)
    if update is None:
        slots.set_park(root, None)
        return
    from tgd.log import Log
    text = update.get("manifest") if isinstance(update, dict) else None
    if isinstance(text, str):
        with open(root + "/ota/checked.txt", "w") as f:
            f.write(text)  # the app's Updater does not check this manifest again
    from tgd import config
    from tgd.crypto.ed25519 import verify
    from tgd.device import FW_VERSION
    cfg = config.load(root + "/config.json")[0]
    st = slots.load(root)
    try:
        m, url = offer.check_offer(update, FW_VERSION, cfg["release_pub"], verify, routes(board))
    except offer.OtaError as e:
        ver = update.get("version") if isinstance(update, dict) else ""
        ver = ver if isinstance(ver, str) else ""
        Log().event("OTA", res=e.args[0], ver=ver, why=e.args[1], step="boot_check")
        slots.set_park(root, None)  # checked: a later offer may be parked again
        if e.args[1] != "not_newer":
            slots.set_result(root, e.args[0], ver)
        return
    slots.set_park(root, None)  # checked: a later offer may be parked again
    if st["res"] == "selftest_failed" and st["ver"] == m["version"]:
        return
    _remove(root + "/ota/stage.bin")
    with open(root + "/ota/offer.tmp", "w") as f:
        f.write(json.dumps({"manifest": text, "url": url}))
    os.rename(root + "/ota/offer.tmp", root + "/ota/offer.json")
    slots.set_result(root, "downloading", m["version"])
    Log().event("OTA", res="downloading", ver=m["version"], step="boot_check")


async def boot_check(app):
    """The first boot of a new slot: the self-test that confirms it. Config loaded
    (not safe mode), the modem answers AT, the alarm path runs dry (its message built
    and signed, its AML text built, the number dialable: nothing sent, nothing
    dialled). Pass: the slot is confirmed. Fail: the next boot runs the old slot; the
    reset waits for the end of an open alarm."""
    dev = app.dev
    root = app.root
    why = None
    try:
        if dev.safe:
            why = "config"
        else:
            await asyncio.wait_for_ms(dev.ready.wait(), dev.timing.s(120))
            await dev.modem.at.send("AT")
            why = dry_alarm(dev)
    except Exception as e:  # noqa: BLE001 - any fault is a failed self-test
        why = "%s:%s" % (type(e).__name__, e)
    if why is None:
        app.ota.last = report(slots.confirm(root))
        app.ota.trial = False  # confirmed: the next offer is taken (campaign replay
        # second_update_ignored_until_a_reboot)
        mark = getattr(app.board, "ota_mark_valid", None)
        if mark is not None:
            mark()
        dev.log.event("OTA", step="selftest", res="ok", ver=dev.fw)
        return
    app.ota.halted = True
    app.ota.last = report(slots.fail(root, "selftest_failed"))
    dev.log.event("OTA", step="selftest", res="selftest_failed", why=why)
    while not app.idle():
        await asyncio.sleep_ms(200)  # an alarm first: the reset waits for its end
    app.board.reset()


def dry_alarm(dev):
    """The alarm's path without sending anything: None when it would work, else why."""
    from tgd import aml, message
    from tgd.alarm import Alarm  # noqa: F401 - importable
    cfg = dev.cfg
    number = cfg["emergency_number"]
    if not number or not (number[1:] if number[0] == "+" else number).isdigit():
        return "emergency_number"
    body = message.build("alarm", cfg["device_id"], 1, dev.clock.now(), dev.fw, None, None,
                         None, None, aid="selftest", at=dev.clock.now(), call="dialing",
                         sms="pending")
    if len(message.sign(cfg["key"], body)) != 64:
        return "signature"
    cell = dev.cell or {}
    text = aml.encode(None, dev.imei or "000000000000000", cell.get("mcc"), cell.get("mnc"),
                      dev.clock.now())
    if not text or len(text) >= 160:
        return "aml"
    return None
