"""Updates over the air: what the handset refuses, on the rig (real firmware, VM, 48 KB).

A bad signature, a release signed with another key, a download damaged on the way
(the emulator's http_corrupt fault), a release whose `min` is above the running
firmware, and a new firmware that fails its boot self-test (rolled back). Each time
nothing runs but the old firmware (fw 1.0.0), the heartbeat reports why in `ota`,
and, where it matters, no slot was written. Each test fails when its check is removed
(docs/firmware.md "Updates over the air" says how that was checked).
"""

from __future__ import annotations

import time

from ota_testkit import (
    Keys,
    OtaServer,
    alarm_reaches_17,
    failing_selftest_sources,
    make_release,
    ota_handset,
)

from tgd_rig.emulator import faults


def reported(server: OtaServer, device_id: str, res: str, timeout: float = 20.0,
             fw: str = "1.0.0") -> dict:
    """The first heartbeat of firmware `fw` whose `ota` says `res`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in server.of(device_id, "heartbeat"):
            if (m.get("ota") or {}).get("res") == res and m.get("fw") == fw:
                return m
        time.sleep(0.1)
    raise AssertionError(f"no heartbeat reported ota.res={res}: "
                         f"{[m.get('ota') for m in server.of(device_id, 'heartbeat')]}")


def nothing_installed(handset) -> None:
    ota = handset.flash_dir / "ota"
    assert not (ota / "b").exists(), "a refused release was written into a slot"
    state = (ota / "state.json").read_text() if (ota / "state.json").exists() else "{}"
    assert '"trial": "b"' not in state and '"trial":"b"' not in state, state


def offer_and_wait(rig, server, handset, release, res: str) -> dict:
    server.release = release
    server.offering = True
    handset.expect("OTA", timeout=30, res=res)
    beat = reported(server, handset.device_id, res)
    assert beat["fw"] == "1.0.0"
    return beat


def test_a_bad_signature_is_refused(ota_rig):
    rig, server = ota_rig
    keys = Keys()
    handset = ota_handset(rig, server, keys, "OR001")
    good = make_release("1.1.0", keys)
    # the signature of another manifest (the size changed after signing: tampered)
    other = make_release("1.1.0", keys, pad=10)
    tampered = type(good)(good.version, good.manifest, other.sig, good.bundle)
    beat = offer_and_wait(rig, server, handset, tampered, "bad_sig")
    assert beat["ota"] == {"slot": "a", "res": "bad_sig", "ver": "1.1.0"}
    assert server.bundle_gets() == [], "downloaded before the signature was checked"
    nothing_installed(handset)
    alarm_reaches_17(rig, handset, server)


def test_a_release_signed_with_another_key_is_refused(ota_rig):
    rig, server = ota_rig
    keys, theirs = Keys(), Keys()
    handset = ota_handset(rig, server, keys, "OR002")
    # a complete, well-formed release of another key (its manifest names that key)
    offer_and_wait(rig, server, handset, make_release("1.1.0", theirs), "bad_sig")
    # and one that names our key but is signed with theirs
    server.offering = False
    mark = handset.log.mark()
    server.release = make_release("1.1.1", keys, signer=theirs)
    server.offering = True
    handset.expect("OTA", timeout=30, since=mark, res="bad_sig", ver="1.1.1")
    assert server.bundle_gets() == []
    nothing_installed(handset)


def test_a_corrupted_download_is_refused_before_anything_is_written(ota_rig):
    rig, server = ota_rig
    keys = Keys()
    handset = ota_handset(rig, server, keys, "OR003")
    rig.inject("OR003", "http_corrupt", method="GET")
    offer_and_wait(rig, server, handset, make_release("1.1.0", keys, pad=3000), "bad_hash")
    assert [e for e in rig.events.snapshot() if e.kind == "http_corrupted"]
    nothing_installed(handset)
    assert not (handset.flash_dir / "ota" / "stage.bin").exists(), "the bad download was kept"


def test_a_release_above_its_min_is_refused(ota_rig):
    rig, server = ota_rig
    keys = Keys()
    handset = ota_handset(rig, server, keys, "OR004")
    offer_and_wait(rig, server, handset, make_release("2.0.0", keys, min_version="1.5.0"),
                   "refused")
    assert server.bundle_gets() == []
    nothing_installed(handset)


def test_a_firmware_that_fails_its_self_test_is_rolled_back(ota_rig):
    rig, server = ota_rig
    keys = Keys()
    handset = ota_handset(rig, server, keys, "OR005")
    before = alarm_reaches_17(rig, handset, server)
    server.release = make_release("1.2.0", keys, extra_sources=failing_selftest_sources())
    server.offering = True
    handset.expect("OTA", timeout=30, step="switch", slot="b", ver="1.2.0")
    handset.expect("BOOT", timeout=20, fw="1.2.0")
    handset.expect("OTA", timeout=30, step="selftest", res="selftest_failed")
    handset.expect("BOOT", timeout=20, fw="1.0.0")   # the old slot again
    handset.expect("READY", timeout=30)
    beat = reported(server, "OR005", "selftest_failed")
    assert beat["fw"] == "1.0.0" and beat["ota"] == {"slot": "a", "res": "selftest_failed",
                                                     "ver": "1.2.0"}
    # still offered: it is not taken again
    time.sleep(2)
    assert len([g for g in server.bundle_gets()]) == 1
    after = alarm_reaches_17(rig, handset, server)
    assert after["aid"] != before["aid"] and after["seq"] > before["seq"]


def test_the_emulator_fault_is_known():
    assert "http_corrupt" in faults.FAULTS
