# Updates over the air, the pure parts and the slots (tgd/ota/offer.py, slot.py,
# run.unpack, overlay.py). The signature check is tgd.crypto.ed25519.verify's; here `verify` is a
# stand-in that accepts one exact (key, message, signature), so that each refusal
# is the handset's own check (the rig tests run the whole path).
import json
import os
from binascii import unhexlify

import tgd.ota
from tgd.ota import offer as ota
from tgd.ota import run as otarun
from tgd.ota import slot as otaslot

PUB = b"\x11" * 32
PUB_HEX = "11" * 32
SIG = "ab" * 64


def manifest(**kw):
    m = {"v": 1, "version": "1.1.0", "route": "mpy", "size": 100, "sha256": "cd" * 32,
         "key": ota.key_id(PUB), "min": "1.0.0"}
    m.update(kw)
    return json.dumps(m)


def offer(text=None, sig=SIG, url="/api/v1/fw/1.1.0/bundle"):
    return {"version": "1.1.0", "manifest": text or manifest(), "sig": sig, "url": url}


def verify_exact(text):
    def verify(pub, msg, sig):
        return pub == PUB and msg == text.encode() and sig == unhexlify(SIG)
    return verify


def refused(update, running="1.0.0", pub=PUB_HEX, verify=None):
    text = update.get("manifest") if isinstance(update, dict) else ""
    try:
        ota.check_offer(update, running, pub, verify or verify_exact(text))
    except ota.OtaError as e:
        return e.args[0], e.args[1]
    return None


def test_versions():
    assert ota.newer("1.1.0", "1.0.0") and ota.newer("1.10.0", "1.9.9") and ota.newer("2", "1.9")
    assert not ota.newer("1.0.0", "1.0.0") and not ota.newer("1.0", "1.0.0")
    assert not ota.newer("x", "1.0.0") and not ota.newer("1.1.0", "") and not ota.newer("1..2", "1")
    assert ota.parse_version("1.2.3.4.5") is None and ota.parse_version("-1") is None


def test_good_offer_is_taken():
    m, url = ota.check_offer(offer(), "1.0.0", PUB_HEX, verify_exact(manifest()))
    assert m["version"] == "1.1.0" and url == "/api/v1/fw/1.1.0/bundle"


def test_signature_is_checked_first():
    assert refused(offer(), verify=lambda p, m, s: False) == ("bad_sig", "signature")
    # a manifest changed after signing
    text = manifest()
    assert refused(offer(manifest(size=101)), verify=verify_exact(text)) == ("bad_sig", "signature")


def test_another_key_is_refused():
    assert refused(offer(), pub="22" * 32, verify=lambda p, m, s: True) == ("bad_sig", "key_id")
    assert refused(offer(), pub="") == ("bad_sig", "no_release_pub")


def test_malformed_offers_are_refused():
    assert refused(None)[0] == "bad_sig"
    assert refused(offer(sig="zz" * 64)) == ("bad_sig", "malformed_offer")
    assert refused(offer(url='/a" b')) == ("bad_sig", "bad_url")
    for bad in ({"route": "elf"}, {"size": 0}, {"size": "1"}, {"sha256": "x"}, {"version": "a"},
                {"v": 2}):
        assert refused(offer(manifest(**bad)), verify=lambda p, m, s: True)[0] == "bad_sig", bad


def test_min_and_newer():
    assert refused(offer(manifest(min="1.0.1")), verify=lambda p, m, s: True) == ("refused", "min_1.0.1")
    assert refused(offer(manifest(version="1.0.0")), verify=lambda p, m, s: True) == ("refused", "not_newer")


def test_bundle_url():
    base = "http://10.0.0.1:8080/api/v1/device/messages"
    assert ota.bundle_url(base, "/api/v1/fw/1.1.0/bundle") == "http://10.0.0.1:8080/api/v1/fw/1.1.0/bundle"
    assert ota.bundle_url(base, "https://cdn/x") == "https://cdn/x"


def test_entry_headers():
    assert ota.entry(b"app.mpy 12\n", 12) == ("app.mpy", 12)
    assert ota.entry(b"lib/x.mpy 0\n", 5) == ("lib/x.mpy", 0)
    for bad in (b"/app.mpy 1\n", b"../x 1\n", b"a/../b 1\n", b"app.mpy 13\n", b"app.mpy\n",
                b"app.mpy 1", b"a b\n", b" 1\n", b"a\x00 1\n"):
        try:
            ota.entry(bad, 12)
        except ota.OtaError as e:
            assert e.args[0] == "bad_hash"
            continue
        raise AssertionError(bad)


def _root():
    root = "/tmp/mpt_ota_%d" % id(PUB)
    otaslot.clear_dir(root)
    os.mkdir(root)
    return root


def test_slots_switch_confirm_and_roll_back():
    root = _root()
    st, path, trial = otaslot.boot(root)
    assert path is None and not trial and st["active"] == "a"  # never updated: factory
    os.mkdir(root + "/ota")
    os.mkdir(root + "/ota/b")
    otaslot.arm(root, "b", "1.1.0")
    st, path, trial = otaslot.boot(root)  # first boot of the new slot
    assert trial and path == root + "/ota/b" and st["boot"] == "b"
    st, path, trial = otaslot.boot(root)  # never confirmed (power cut, hang): roll back
    assert not trial and path is None and st["res"] == "rolled_back" and st["boot"] == "a"
    otaslot.arm(root, "b", "1.1.0")
    otaslot.boot(root)
    st = otaslot.confirm(root)
    assert st["active"] == "b" and st["res"] == "ok"
    st, path, trial = otaslot.boot(root)
    assert path == root + "/ota/b" and not trial and otaslot.inactive(st) == "a"
    assert tgd.ota.report(st) == {"slot": "b", "res": "ok", "ver": "1.1.0"}
    otaslot.arm(root, "a", "1.2.0")
    otaslot.boot(root)
    st = otaslot.fail(root, "selftest_failed")
    st, path, trial = otaslot.boot(root)
    assert path == root + "/ota/b" and st["res"] == "selftest_failed" and st["boot"] == "b"
    otaslot.clear_dir(root)


def test_torn_state_write_keeps_the_old_state():
    root = _root()
    os.mkdir(root + "/ota")
    otaslot.arm(root, "b", "1.1.0")
    with open(root + "/ota/state.tmp", "w") as f:
        f.write('{"active":"b","tr')  # power cut while writing the next state
    st = otaslot.load(root)
    assert st["trial"] == "b" and st["active"] == "a"
    otaslot.clear_dir(root)


def _bundle(files):
    out = bytearray(ota.BUNDLE_MAGIC)
    for name, data in files:
        out += ("%s %d\n" % (name, len(data))).encode() + data
    return bytes(out)


async def test_unpack_writes_each_file_and_refuses_bad_bundles():
    root = _root()
    data = _bundle([("device.mpy", b"M" * 1300), ("lib/x.mpy", b""), ("a.mpy", b"abc")])
    with open(root + "/stage.bin", "wb") as f:
        f.write(data)
    await otarun.unpack(root + "/stage.bin", len(data), root + "/slot")
    with open(root + "/slot/device.mpy", "rb") as f:
        assert f.read() == b"M" * 1300
    with open(root + "/slot/a.mpy", "rb") as f:
        assert f.read() == b"abc"
    assert os.stat(root + "/slot/lib/x.mpy")[6] == 0
    for bad in (b"TGDB2\n", _bundle([("../x", b"1")]), _bundle([("x", b"12")])[:-1] + b""):
        with open(root + "/stage.bin", "wb") as f:
            f.write(bad)
        try:
            await otarun.unpack(root + "/stage.bin", len(bad) + (1 if bad.endswith(b"1") else 0),
                                root + "/slot")
        except ota.OtaError as e:
            assert e.args[0] == "bad_hash"
            continue
        raise AssertionError(bad)
    otaslot.clear_dir(root)


async def test_sha256_of_the_staged_size_only():
    root = _root()
    with open(root + "/f", "wb") as f:
        f.write(b"abc" + b"x" * 2000)
    assert await otarun.sha256_file(root + "/f", 3) == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    otaslot.clear_dir(root)


def test_unload_lets_the_update_modules_go_and_keeps_a_slots_own():
    import gc
    import sys
    __import__("tgd.ota.run")  # as a step imports them (no name kept: unload frees them)
    __import__("tgd.crypto.ed25519")
    tgd.ota.unload()
    for name in ("tgd.ota.run", "tgd.ota.offer", "tgd.ota.slot", "tgd.crypto.ed25519",
                 "tgd.crypto.sha512"):
        assert name not in sys.modules, name
    assert "run" not in tgd.ota.__dict__ and "slot" not in tgd.ota.__dict__
    gc.collect()
    before = gc.mem_alloc()
    __import__("tgd.ota.run")  # again, as a step does
    tgd.ota.unload()
    gc.collect()
    assert gc.mem_alloc() - before < 256, gc.mem_alloc() - before  # what stays (1,952 B loaded)

    class SlotModule:  # a module the running slot loaded from its folder (overlay.py)
        __file__ = "/flash/ota/b/tgd/ota/offer.mpy"
    sys.modules["tgd.ota.offer"] = SlotModule
    tgd.ota.unload()
    assert sys.modules.get("tgd.ota.offer") is SlotModule  # the running firmware stays
    del sys.modules["tgd.ota.offer"]


def test_a_park_that_cannot_be_read_is_dropped_once():
    # an empty or torn park.json (a MemoryError while writing it) must not make every
    # later heartbeat reset the handset: the boot's check drops it, whatever it holds
    root = _root()
    os.mkdir(root + "/ota")
    for content in ("", "{\"version\": \"1.1", "[1, 2]"):
        otaslot.set_park(root, "1.1.0")
        with open(root + "/ota/park.json", "w") as f:
            f.write(content)
        otarun.check_parked(root)
        assert otarun._size(root + "/ota/park.json") < 0, content
        assert otaslot.load(root)["park"] is None, content
