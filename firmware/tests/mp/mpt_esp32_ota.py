# heapsize: 96k (the test module is compiled into the heap, then tgd.ota.run and 4 KB blocks)
# Route "app" on the ESP32 boards (docs/firmware.md "Updates over the air"):
# boards/esp32.py Esp32Board.ota_app_write and ota_mark_valid, on the ESP32-faithful VM.
#
# The real `esp32.Partition` writes the chip's flash through ESP-IDF's OTA API: it exists
# on the ESP32 port only and cannot run off a chip. So `esp32` is a stand-in injected into
# sys.modules that records what the board asks of it (which partition, each block written,
# set_boot, mark_app_valid_cancel_rollback); `machine` too, for its watchdog (the unix
# port's `machine` has no WDT). What this checks is the board's side: blocks in order, the
# last padded with 0xFF, set_boot once after the last block and never after a short
# staging file, the watchdog fed at every block. Whether ESP-IDF boots the partition is a
# bench test on a handset (docs/hil.md), not this.
import os
import sys

LOG = []  # what the stand-ins were asked, in order


class _WDT:
    def __init__(self, timeout=0):
        LOG.append(("wdt", timeout))

    def feed(self):
        LOG.append(("feed",))


class _Machine:
    Pin = None  # Esp32Board() reads it; every pin of the base class is None
    WDT = _WDT


class _Partition:
    RUNNING = 0

    def __init__(self, which):
        LOG.append(("partition", which))

    def get_next_update(self):
        LOG.append(("next_update",))
        return self

    def writeblocks(self, block, buf):
        # the real one copies buf into the flash; the board reuses buf for the next block
        LOG.append(("write", block, bytes(buf)))

    def set_boot(self):
        LOG.append(("set_boot",))

    @staticmethod
    def mark_app_valid_cancel_rollback():
        LOG.append(("mark_valid",))


class _Esp32:
    Partition = _Partition


sys.modules["machine"] = _Machine  # before boards.esp32 imports it
sys.modules["esp32"] = _Esp32
from boards.esp32 import Esp32Board  # noqa: E402

ROOT = "/tmp/mpt_esp32_ota_%d" % id(LOG)


def _stage(data):
    try:
        os.mkdir(ROOT)
    except OSError:
        pass
    path = ROOT + "/stage.bin"
    with open(path, "wb") as f:
        f.write(data)
    return path


def _image(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def _run(data, size):
    board = Esp32Board()
    del LOG[:]
    try:
        board.ota_app_write(_stage(data), size)
    except OSError as e:
        return e
    return None


def test_the_image_is_written_in_order_the_last_block_padded_then_set_boot():
    image = _image(2 * 4096 + 100)
    assert _run(image, len(image)) is None
    writes = [e for e in LOG if e[0] == "write"]
    assert [e[1] for e in writes] == [0, 1, 2], [e[1] for e in writes]
    assert writes[0][2] == image[:4096] and writes[1][2] == image[4096:8192]
    last = writes[2][2]
    assert len(last) == 4096 and last[:100] == image[8192:]
    assert last[100:] == b"\xff" * 3996  # not the previous block's bytes
    assert LOG[:2] == [("partition", 0), ("next_update",)], LOG[:2]
    assert LOG[-1] == ("set_boot",) and LOG.count(("set_boot",)) == 1
    assert LOG.count(("feed",)) == 3  # once a block: a 1 MB image takes longer than a feed


def test_an_image_of_whole_blocks_is_not_padded():
    image = _image(2 * 4096)
    assert _run(image, len(image)) is None
    writes = [e for e in LOG if e[0] == "write"]
    assert [(e[1], e[2]) for e in writes] == [(0, image[:4096]), (1, image[4096:])]
    assert LOG[-1] == ("set_boot",)


def test_a_staging_file_shorter_than_its_size_raises_and_never_boots():
    image = _image(5000)
    e = _run(image, 9000)  # the manifest said 9000, the file holds 5000
    assert isinstance(e, OSError), e
    assert ("set_boot",) not in LOG, LOG
    e = _run(b"", 100)
    assert isinstance(e, OSError) and ("set_boot",) not in LOG


def test_mark_valid_cancels_the_rollback_once():
    board = Esp32Board()
    del LOG[:]
    board.ota_mark_valid()
    assert LOG == [("mark_valid",)], LOG


# -- the whole install step of route "app" (tgd/ota/run.py Updater.step) ----------------


class _Memo:
    """tgd.ota.Updates as the step sees it (the app's few hundred bytes)."""

    def __init__(self, app):
        self.app = app
        self.new = None
        self.seen = None
        self.halted = False
        self.last = None


class _Dev:
    def __init__(self):
        from tgd.log import Log
        self.log = Log(sink=lambda line: None)
        self.fw = "1.0.0"
        self.bat = 4100
        self.cfg = {"server_url": "https://tgd.example/api/v1/ingest", "ota_min_bat_mv": 3500}
        self.modem = None  # the bundle is staged whole already: no download


class _App:
    def __init__(self, root):
        self.dev = _Dev()
        self.board = Esp32Board()
        self.root = root
        self.release_ended = None

    def idle(self):
        return True


def _write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


async def test_an_app_update_boots_the_new_image_without_an_old_slot_over_it():
    """A handset that ran two `mpy` updates holds the first one's modules in its inactive
    slot folder; the app image goes into the other partition and that slot is armed: the
    next boot must run the new image's own frozen firmware, not an old `.mpy` set loaded
    over it (tgd/ota/overlay.py)."""
    import json
    import hashlib
    from binascii import hexlify
    from tgd.ota import slot as slots
    from tgd.ota.run import Updater
    root = ROOT + "/app"
    slots.clear_dir(root)
    os.mkdir(root)
    os.mkdir(root + "/ota")
    for d in ("/ota/a", "/ota/a/tgd", "/ota/b", "/ota/b/tgd"):
        os.mkdir(root + d)
    _write(root + "/ota/a/tgd/device.mpy", b"release 1.2.0")  # the running slot
    _write(root + "/ota/b/tgd/device.mpy", b"release 1.1.0")  # an older one, inactive
    slots.save(root, {"active": "a", "trial": None, "tried": 0, "res": "ok", "ver": "1.2.0",
                      "boot": "a", "rst": 0, "park": None})
    image = _image(4096 + 10)
    m = {"v": 1, "version": "2.0.0", "route": "app", "size": len(image), "min": "0.0.0",
         "sha256": hexlify(hashlib.sha256(image).digest()).decode(), "key": "0" * 16}
    # taken and downloaded already (tgd/ota/run.py _take, _download): offer.json, stage.bin
    _write(root + "/ota/offer.json", json.dumps({"manifest": json.dumps(m),
                                                 "url": "/api/v1/fw/2.0.0/bundle"}), "w")
    _write(root + "/ota/stage.bin", image)
    app = _App(root)
    del LOG[:]
    _Machine.reset = staticmethod(lambda: LOG.append(("reset",)))
    await Updater(_Memo(app)).step()
    assert [e[1] for e in LOG if e[0] == "write"] == [0, 1], LOG
    assert LOG[-2:] == [("set_boot",), ("reset",)], LOG[-2:]
    st, path, trial = slots.boot(root)  # main.py's next boot
    assert trial and st["boot"] == "b", st
    assert path is None, path  # no folder: the new image's frozen modules, bare
    slots.clear_dir(root)


# An app release 2.0.0 signed by the test key bytes(range(32)) (tgd_flash.release_file
# build_app_release; no key lives in the repository, this one is public test data).
_PUB = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
_MANIFEST = ('{"key":"56475aa75463474c","min":"0.0.0","route":"app","sha256":"db35650fa0660fd9'
             'f7b3b379a2b6e07bd1bcb33b700120835d200c75395208c8","size":100,"v":1,"version":"2.0.0"}')
_SIG = ("73d21fa9a870a5e3c40320ccfee740d9c17f97638f496429e227f43e1de4a3ea"
        "3170c18ca7000c6ef29499a724a834a4226c3ca54df2ecae8e7de9856f821000")


def test_an_app_offer_parked_for_the_boot_is_taken_on_an_esp32_board():
    """An offer whose Ed25519 check ran out of heap is parked and checked at the start of
    the next boot (main.py -> tgd.ota.run.check_parked): on an ESP32 board with the
    routes that board installs, as the app's own check does (an "app" offer was refused
    there as bad_sig/manifest_fields, and the failure paused the roll-out)."""
    import json
    from main import _boot_slot
    from tgd.ota import slot as slots
    root = ROOT + "/park"
    slots.clear_dir(root)
    os.mkdir(root)
    os.mkdir(root + "/ota")
    _write(root + "/config.json", json.dumps({
        "device_id": "NC0001", "key": "ab" * 32, "server_url": "https://tgd.example/api/v1/ingest",
        "release_pub": _PUB}), "w")
    update = {"version": "2.0.0", "manifest": _MANIFEST, "sig": _SIG,
              "url": "/api/v1/fw/2.0.0/bundle"}
    _write(root + "/ota/park.json", json.dumps(update), "w")
    slots.set_park(root, "2.0.0")
    _boot_slot(Esp32Board(), root)
    st = slots.load(root)
    assert (st["res"], st["ver"], st["park"]) == ("downloading", "2.0.0", None), st
    with open(root + "/ota/offer.json") as f:
        assert json.load(f)["manifest"] == _MANIFEST

    class HostLike:  # a board without ota_app_write (the host board): "mpy" only
        def mount_flash(self):
            return root
    os.remove(root + "/ota/offer.json")
    _write(root + "/ota/park.json", json.dumps(update), "w")
    slots.set_park(root, "2.0.0")
    _boot_slot(HostLike(), root)
    st = slots.load(root)
    assert (st["res"], st["park"]) == ("bad_sig", None), st
    slots.clear_dir(root)


async def test_an_image_the_partition_refuses_is_dropped_and_reported_once():
    """esp32.Partition.set_boot raises OSError when ESP-IDF finds the image invalid (and
    get_next_update when the board has no OTA app partition): the offer and the staged
    image are dropped and the failure reported, not written again at every heartbeat."""
    import json
    import hashlib
    from binascii import hexlify
    from tgd.ota import slot as slots
    from tgd.ota.run import Updater
    root = ROOT + "/refused"
    slots.clear_dir(root)
    os.mkdir(root)
    os.mkdir(root + "/ota")
    image = _image(100)
    m = {"v": 1, "version": "2.0.0", "route": "app", "size": len(image), "min": "0.0.0",
         "sha256": hexlify(hashlib.sha256(image).digest()).decode(), "key": "0" * 16}
    _write(root + "/ota/offer.json", json.dumps({"manifest": json.dumps(m),
                                                 "url": "/api/v1/fw/2.0.0/bundle"}), "w")
    _write(root + "/ota/stage.bin", image)

    def refuse(self):
        LOG.append(("set_boot_refused",))
        raise OSError(-5379)  # ESP_ERR_OTA_VALIDATE_FAILED
    real = _Partition.set_boot
    _Partition.set_boot = refuse
    _Machine.reset = staticmethod(lambda: LOG.append(("reset",)))
    del LOG[:]
    try:
        await Updater(_Memo(_App(root))).step()
    finally:
        _Partition.set_boot = real
    assert ("set_boot_refused",) in LOG and ("reset",) not in LOG, LOG
    st = slots.load(root)
    assert (st["res"], st["ver"], st["trial"]) == ("bad_hash", "2.0.0", None), st
    for name in ("offer.json", "stage.bin"):
        try:
            os.stat(root + "/ota/" + name)
        except OSError:
            continue
        raise AssertionError(name + " left: the next heartbeat writes it again")
    slots.clear_dir(root)
