"""A staged roll-out on the rig: three handsets updated by the REAL tgd-server.

The real firmware (VM, 48 KB) of three emulated handsets talks to the rig's real server
(the Flask app, SQLite), not to a test double. A release key is made in the test; the
server trusts its public key (`tgd-server release trust`), the handsets are provisioned
with it (`release_pub`). A signed `.mpy`-set release is uploaded (`POST /api/v1/releases`,
by `tgd-flash release-upload`'s code) and a roll-out started (`POST /api/v1/rollouts`,
canary RO001, then `stages [100]`: all the others).

- It completes: the canary alone is offered the release (in a heartbeat answer), updates,
  comes back on 1.1.0 with `ota.res` ok; only then are the two others offered it, and
  update. Each ends on 1.1.0 (heartbeat `fw`, `ota` {"slot":"b","res":"ok","ver":"1.1.0"}),
  its journal intact: the server accepted every sequence number once, in increasing
  order, across the update, and an alarm afterwards reaches 17.
- A canary whose new firmware fails its boot self-test rolls back by itself (fw 1.0.0,
  `ota` res selftest_failed) and the roll-out pauses by itself; the two others are never
  offered the release, and an alarm of the canary still reaches 17.
"""

from __future__ import annotations

import time

import pytest
from rig_testkit import needs_firmware

from tgd_rig import ota_fleet as fleet
from tgd_rig.emulated import EmulatedRig

CANARY, OTHERS = "RO001", ("RO002", "RO003")
OK = {"slot": "b", "res": "ok", "ver": "1.1.0"}


@pytest.fixture
def fleet_rig(rig_workdir):
    """The rig (fast timing, real server), a release key the server trusts, and three
    handsets READY on 1.0.0 with its public key."""
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        keys = fleet.Keys()
        assert keys.key_id in fleet.trust(rig.server, keys)
        handsets = {d: fleet.fleet_handset(rig, keys, d) for d in (CANARY, *OTHERS)}
        yield rig, keys, handsets


def on_new_version(msg: dict) -> bool:
    return msg.get("fw") == "1.1.0" and msg.get("ota") == OK


def assert_journal_goes_through(rig, device_id: str, before: dict | None, fw: str) -> None:
    """Every sequence number accepted once, in increasing order; an alarm now reaches 17."""
    after = fleet.alarm_reaches_17(rig, rig.handsets[device_id])
    assert after["fw"] == fw
    if before is not None:
        assert after["aid"] != before["aid"] and after["seq"] > before["seq"]
    seqs = fleet.seqs(rig.server, device_id)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), (device_id, seqs)


def test_a_staged_rollout_updates_the_canary_then_the_rest(fleet_rig):
    rig, keys, handsets = fleet_rig
    canary = handsets[CANARY]
    before = fleet.alarm_reaches_17(rig, canary)   # a journal with an alarm in it
    # The canary is off when the roll-out starts: the others beat twice meanwhile, and
    # must not be offered the release (its whole update on the canary otherwise fits
    # between two of their heartbeats, and this could not fail).
    canary.power_cut()
    release = fleet.make_release("1.1.0", keys)
    assert fleet.upload(rig.server, release)["version"] == "1.1.0"
    status = fleet.start_rollout(rig.server, "1.1.0", CANARY, stages=(100,))
    assert status["phase"] == "canary"
    for device in OTHERS:
        fleet.wait_heartbeats(rig.server, device, 2)
        assert fleet.offered(rig.server, device) is None, f"{device} offered before the canary"
    assert fleet.rollout_status(rig.server)["phase"] == "canary"
    canary.power_on()
    t0 = time.monotonic()

    canary.expect("OTA", timeout=30, step="download")
    canary.expect("OTA", timeout=60, step="switch", slot="b", ver="1.1.0")
    canary.expect("BOOT", timeout=20, fw="1.1.0")
    valid = canary.expect("OTA", timeout=30, step="selftest", res="ok", ver="1.1.0")
    came_back = fleet.first_heartbeat(rig.server, CANARY, on_new_version, timeout=30)
    fleet.wait_rollout(rig.server, "complete", timeout=30)

    for device in OTHERS:
        handsets[device].expect("OTA", timeout=60, step="selftest", res="ok", ver="1.1.0")
    print(f"roll-out on the real server: canary valid {valid.t - t0:.1f} s after its power-on, "
          f"all three on 1.1.0 after {time.monotonic() - t0:.1f} s (heartbeat every 3 s)")
    for device, handset in handsets.items():
        beat = fleet.first_heartbeat(rig.server, device, on_new_version, timeout=30)
        assert beat["ota"] == OK
        version, at = fleet.offered(rig.server, device)
        assert version == "1.1.0"
        if device != CANARY:
            # not offered before the canary came back on the new version with a valid boot
            assert at >= came_back["_received_at"], (device, at, came_back["_received_at"])
            first = handset.log.find("OTA")[0]
            assert first.t > valid.t, f"{device} took the release before the canary's valid boot"
    status = fleet.rollout_status(rig.server)
    assert (status["offered"], status["on_version"], status["failed"]) == (3, 3, 0), status

    assert_journal_goes_through(rig, CANARY, before, "1.1.0")
    for device in OTHERS:
        assert_journal_goes_through(rig, device, None, "1.1.0")


def test_a_canary_that_fails_its_self_test_rolls_back_and_pauses_the_rollout(fleet_rig):
    rig, keys, handsets = fleet_rig
    canary = handsets[CANARY]
    broken = fleet.make_release("1.1.0", keys, extra_sources=fleet.failing_selftest_sources())
    fleet.upload(rig.server, broken)
    fleet.start_rollout(rig.server, "1.1.0", CANARY, stages=(100,))

    canary.expect("OTA", timeout=60, step="switch", slot="b", ver="1.1.0")
    canary.expect("BOOT", timeout=20, fw="1.1.0")
    canary.expect("OTA", timeout=30, step="selftest", res="selftest_failed")
    canary.expect("BOOT", timeout=20, fw="1.0.0")   # the old slot again, by itself
    canary.expect("READY", timeout=30)
    beat = fleet.first_heartbeat(rig.server, CANARY,
                                 lambda m: (m.get("ota") or {}).get("res") == "selftest_failed")
    assert beat["fw"] == "1.0.0"
    assert beat["ota"] == {"slot": "a", "res": "selftest_failed", "ver": "1.1.0"}
    status = fleet.wait_rollout(rig.server, "paused", timeout=30)
    assert CANARY in status["reason"] and "selftest_failed" in status["reason"], status

    # the others keep beating on 1.0.0 and are never offered it: three more heartbeats each
    for device in OTHERS:
        fleet.wait_heartbeats(rig.server, device, 3)
        assert fleet.offered(rig.server, device) is None
        assert not handsets[device].log.find("OTA"), f"{device} took a paused roll-out's release"
        assert {m["fw"] for m in fleet.messages(rig.server, device, "heartbeat")} == {"1.0.0"}
    status = fleet.rollout_status(rig.server)
    assert status["phase"] == "paused"
    assert (status["offered"], status["on_version"], status["failed"]) == (1, 0, 1), status
    assert_journal_goes_through(rig, CANARY, None, "1.0.0")
