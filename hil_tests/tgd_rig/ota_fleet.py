"""Over-the-air updates on the rig: test releases, and a fleet updated by the REAL server.

Test releases (also what `tests/ota_testkit.py` re-exports for the OTA tests' test
server):

- `Keys()`: a release key pair made in the test (the release tools' own Ed25519,
  tools/tgd_flash/release_sign.py); the handset gets `pub_hex`, the server trusts it.
- `make_release(version, keys, ...)`: a `.mpy`-set release of the modules that change
  (tgd/device.py with `version`, plus `extra_sources`), compiled by the VM's mpy-cross
  and packed, manifested and signed with the release tools' own functions
  (tools/tgd_flash/release_file.py). A whole-tree release (`tgd-flash release`) does
  not run from a slot at 48 KB (docs/firmware.md "Updates over the air"): a delta does.
- `failing_selftest_sources()`: a release whose new firmware fails its boot self-test.

The rig's real server (`EmulatedRig.server`, a `ServerHarness`), the way a technician
drives it (docs/technician.md "Releases and roll-outs"):

- `trust(server, keys)`: `tgd-server release trust release.pub` on the server's database
  and var directory (the real command, in a subprocess).
- `upload(server, release)`: `POST /api/v1/releases` with the technician token, by the
  code of `tgd-flash release-upload` (tgd_flash.serverapi.upload_release).
- `start_rollout(server, version, canary, stages, canary_timeout_s)`, `rollout_status`,
  `wait_rollout(server, phase)`: `POST /api/v1/rollouts`, `GET /api/v1/rollouts/current`.
- `fleet_handset(rig, keys, device_id)`: a handset provisioned and registered on the
  real server, with `release_pub`, powered on and READY.
- What the server holds, read from its database: `messages` (every accepted signed
  message, verbatim, in arrival order), `seqs`, `first_heartbeat` (fw and `ota` a
  heartbeat reported), `wait_heartbeats`, `offered` (the release a handset was offered,
  and when); `alarm_reaches_17` (an alarm through to the police and the server).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tgd_flash import release_file, release_sign

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
MPY_CROSS = REPO / "build" / "esp32-vm" / "mpy-cross"
TGD_SERVER = Path(sys.executable).parent / "tgd-server"


# --- test releases --------------------------------------------------------------------

class Keys:
    """A release key pair: the handset gets `pub_hex`; `sign(msg)` -> 64 bytes (Ed25519)."""

    def __init__(self, seed: bytes | None = None):
        self.seed = seed or os.urandom(32)
        self.pub = release_sign.public_key(self.seed)

    @property
    def pub_hex(self) -> str:
        return self.pub.hex()

    @property
    def key_id(self) -> str:
        return release_sign.key_id(self.pub)

    def sign(self, msg: bytes) -> bytes:
        return release_sign.sign(self.seed, msg)


MPY_CACHE = REPO / "build" / "ota-mpy-cache"   # compiled test modules (the campaign's releases)
_mpy_cross_id: str | None = None


def _cache_key(name: str, source: str) -> str:
    """The same module compiled by the same mpy-cross: the same .mpy (a rebuilt VM, a
    changed source or version string: another key)."""
    global _mpy_cross_id
    if _mpy_cross_id is None:
        _mpy_cross_id = hashlib.sha256(MPY_CROSS.read_bytes()).hexdigest()
    return hashlib.sha256(f"{_mpy_cross_id}\0{name}\0{source}".encode()).hexdigest()


def compile_mpy(name: str, source: str) -> bytes:
    """`name`: the module's path in the firmware tree (tgd/device.py), as the release
    tool compiles it (-s: a traceback names that path). Cached in build/ota-mpy-cache/
    by mpy-cross, path and source: a campaign makes a release per update step."""
    cached = MPY_CACHE / (_cache_key(name, source) + ".mpy")
    if cached.exists():
        return cached.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / name.replace("/", "__")
        src.write_text(source)
        out = Path(tmp) / (src.name[:-3] + ".mpy")
        subprocess.run([str(MPY_CROSS), "-o", str(out), "-s", name, str(src)], check=True,
                       capture_output=True)
        data = out.read_bytes()
    MPY_CACHE.mkdir(parents=True, exist_ok=True)
    tmp_file = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp_file.write_bytes(data)
    tmp_file.replace(cached)   # two processes may compile the same module: either wins
    return data


def bundle_bytes(files: dict[str, bytes]) -> bytes:
    return release_file.pack_bundle(sorted(files.items()))


def versioned_device(version: str) -> str:
    src = (FIRMWARE / "tgd" / "device.py").read_text()
    new, n = re.subn(r'^FW_VERSION = "[^"]*"', f'FW_VERSION = "{version}"', src, flags=re.M)
    assert n == 1
    return new


@dataclass
class Release:
    version: str
    manifest: str
    sig: bytes
    bundle: bytes
    files: dict[str, bytes] = field(default_factory=dict)

    def offer(self, url: str | None = None) -> dict:
        """The heartbeat answer's `update` (docs/protocol.md "Updates")."""
        return {"version": self.version, "manifest": self.manifest, "sig": self.sig.hex(),
                "url": url or f"/api/v1/fw/{self.version}/bundle"}

    def tgdrel(self) -> bytes:
        """The release file: manifest line, signature line (hex), bundle."""
        return self.manifest.encode() + b"\n" + self.sig.hex().encode() + b"\n" + self.bundle


def make_release(version: str, keys: Keys, *, min_version: str = "1.0.0",
                 extra_sources: dict[str, str] | None = None,
                 signer: Keys | None = None, pad: int = 0) -> Release:
    """A .mpy-set release: tgd/device.py with `version`, plus `extra_sources` (path in
    the firmware tree, e.g. tgd/aml.py -> source), each compiled by the VM's mpy-cross
    into the bundle as the package layout has it (tgd/device.mpy). It overlays the frozen
    firmware (tgd/ota/overlay.py, docs/firmware.md "Updates over the air"). `signer`: sign
    with another key than the one named in the manifest (a forged release). `pad`: that
    many random bytes in a data file `pad.bin`, for a download that lasts (a full .mpy
    set is ~70 KB)."""
    sources = {"tgd/device.py": versioned_device(version)}
    sources.update(extra_sources or {})
    files = {name[:-3] + ".mpy": compile_mpy(name, src) for name, src in sources.items()}
    if pad:
        files["pad.bin"] = os.urandom(pad)
    bundle = bundle_bytes(files)
    manifest = release_file.canonical(
        release_file.make_manifest(version, bundle, keys.pub, min_version)).decode()
    sig = (signer or keys).sign(manifest.encode())
    return Release(version, manifest, sig, bundle, files)


def failing_selftest_sources() -> dict[str, str]:
    """tgd/aml.py whose encode() raises: the new firmware's dry alarm path fails its
    self-test (tgd/ota/run.py dry_alarm), so the handset rolls back by itself."""
    src = (FIRMWARE / "tgd" / "aml.py").read_text()
    src += ("\n\ndef encode(*args, **kwargs):  # a broken release (test)\n"
            "    raise AmlError('broken on purpose by the OTA test release')\n")
    return {"tgd/aml.py": src}


# --- the rig's real server ------------------------------------------------------------

def server_env(server) -> dict[str, str]:
    """The environment `tgd-server` commands need to act on the rig's server: its
    database and its var directory (where `release trust` writes release_pubs)."""
    env = dict(os.environ)
    env["TGD_DATABASE_URL"] = server.app.config["TGD_DATABASE_URL"]
    env["TGD_VAR_DIR"] = server.app.config["TGD_VAR_DIR"]
    env.pop("TGD_RELEASE_PUBS", None)
    return env


def tgd_server(server, *args: str) -> str:
    """Run `tgd-server ARGS` on the rig's server (as on the server's shell); its output
    line(s). Fails with the command's own error line."""
    done = subprocess.run([str(TGD_SERVER), *args], env=server_env(server), capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"tgd-server {' '.join(args)}: exit {done.returncode}: "
                             f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def trust(server, keys: Keys) -> str:
    """`tgd-server release trust release.pub`: the running server accepts releases signed
    by `keys` from now on (read at each upload, no restart)."""
    pub = Path(server.app.config["TGD_VAR_DIR"]).parent / f"release-{keys.key_id}.pub"
    pub.write_text(keys.pub_hex + "\n")
    return tgd_server(server, "release", "trust", str(pub))


def upload(server, release: Release) -> dict:
    """The `.tgdrel` to `POST /api/v1/releases` with the technician token, by the code of
    `tgd-flash release-upload`; the server's answer (version, size, sha256, url)."""
    from tgd_flash.serverapi import ServerTarget, upload_release

    with server._api_lock:   # the rig is one client: its calls go one at a time
        return upload_release(ServerTarget(server.base_url, server.tech_token), release.tgdrel())


def start_rollout(server, version: str, canary: str, stages=(100,),
                  canary_timeout_s: int = 600) -> dict:
    """`POST /api/v1/rollouts`: the canary first; when it comes back on `version` with
    `ota.res` ok, stage by stage (`stages`, percentages ending with 100; (100,): all the
    others at once). `canary_timeout_s` (60 at least): the canary's limit, and each
    stage's length. The roll-out's status."""
    return server.request("POST", "/api/v1/rollouts", server.tech_token,
                          {"version": version, "canary": canary, "stages": list(stages),
                           "canary_timeout_s": canary_timeout_s}, expect=(201,))


def rollout_status(server) -> dict | None:
    """`GET /api/v1/rollouts/current` (phase, stage, reason, offered, on_version, failed),
    or None when no roll-out is under way."""
    answer = server.request("GET", "/api/v1/rollouts/current", server.tech_token,
                            expect=(200, 404))
    return answer if answer and answer.get("ok", True) is not False else None


def wait_rollout(server, phase: str, timeout: float = 60.0) -> dict:
    """Poll the roll-out's status until its phase is `phase`; the status."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = rollout_status(server)
        if status is not None and status["phase"] == phase:
            return status
        time.sleep(0.3)
    raise AssertionError(f"the roll-out never became {phase} within {timeout:.0f} s: {status}")


def fleet_handset(rig, keys: Keys, device_id: str, *, hold_ms: int = 600,
                  heartbeat_interval_s: int = 60, start: bool = True, **config: Any):
    """A handset provisioned (its config's `release_pub`: the public key of `keys`, as
    `tgd-flash provision --release-pub` writes it) and registered on the rig's real
    server; powered on and READY unless `start` is False. `heartbeat_interval_s` is in
    firmware time (the rig's fast timing shrinks it: 60 -> 3 s)."""
    handset = rig.add_handset(device_id, config={"trigger_hold_ms": hold_ms,
                                                 "heartbeat_interval_s": heartbeat_interval_s,
                                                 "release_pub": keys.pub_hex, **config})
    if start:
        handset.power_on()
        handset.expect("READY", timeout=30)
    return handset


# --- what the server holds ------------------------------------------------------------

def _read(server, fn: Callable):
    from tgd_server import db

    with server.app.app_context():
        session = db.session_factory()()
        try:
            return fn(session)
        finally:
            session.close()


def messages(server, device_id: str, mtype: str | None = None) -> list[dict]:
    """Every message of `device_id` the server accepted (verbatim, device_messages), in
    the order it stored them; each with `_received_at` (a UTC datetime) added."""
    from sqlalchemy import select

    from tgd_server.models import DeviceMessage

    def read(session):
        q = select(DeviceMessage).where(DeviceMessage.device_id == device_id)
        if mtype is not None:
            q = q.where(DeviceMessage.type == mtype)
        return [(r.body, r.received_at) for r in session.scalars(q.order_by(DeviceMessage.id))]

    out = []
    for body, at in _read(server, read):
        msg = json.loads(body)
        msg["_received_at"] = at
        out.append(msg)
    return out


def seqs(server, device_id: str) -> list[int]:
    """The sequence numbers the server accepted from `device_id`, in arrival order."""
    return [m["seq"] for m in messages(server, device_id)]


def first_heartbeat(server, device_id: str, where: Callable[[dict], bool],
                    timeout: float = 60.0) -> dict:
    """The first accepted heartbeat of `device_id` for which `where(message)` holds
    (e.g. lambda m: m.get("fw") == "1.1.0"), waiting up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in messages(server, device_id, "heartbeat") if where(m)]
        if found:
            return found[0]
        if time.monotonic() >= deadline:
            last = [(m.get("fw"), m.get("ota")) for m in messages(server, device_id, "heartbeat")]
            raise AssertionError(f"{device_id}: no such heartbeat within {timeout:.0f} s; "
                                 f"its last (fw, ota): {last[-5:]}")
        time.sleep(0.3)


def wait_heartbeats(server, device_id: str, count: int, timeout: float = 30.0) -> list[dict]:
    """Wait until the server has accepted `count` more heartbeats of `device_id` than it
    holds now (each answered by the roll-out as it stands); those heartbeats."""
    start = len(messages(server, device_id, "heartbeat"))
    deadline = time.monotonic() + timeout
    while True:
        beats = messages(server, device_id, "heartbeat")[start:]
        if len(beats) >= count:
            return beats
        if time.monotonic() >= deadline:
            raise AssertionError(f"{device_id}: {len(beats)} heartbeat(s) in {timeout:.0f} s, "
                                 f"not {count}")
        time.sleep(0.3)


def offered(server, device_id: str) -> tuple[str, datetime] | None:
    """(version, when first offered) of the last release the roll-out offered
    `device_id` in a heartbeat answer, or None: never offered anything."""
    from tgd_server.models import DeviceOta

    def read(session):
        row = session.get(DeviceOta, device_id)
        if row is None or row.offered_version is None:
            return None
        return row.offered_version, row.offered_at

    return _read(server, read)


# --- the journal ----------------------------------------------------------------------

def alarm_reaches_17(rig, handset, hold_ms: int = 600, close: bool = True) -> dict:
    """Hold the button: the police (17) answer a call from her and her alarm's signed
    message reaches the real server. Returns that message as the server stored it (its
    seq, fw, aid). `close`: the server's operator then closes the alarm through the REST
    API, and the handset ends it."""
    mark, log_mark = rig.events.mark(), handset.log.mark()
    handset.press(hold_ms / 1000 + 0.2, wait=False)
    aid = handset.log.expect("ALARM", timeout=10, since=log_mark).get("aid")
    rig.wait_call(30, since=mark, caller=handset.identity.special_number)
    deadline = time.monotonic() + 30
    while True:
        stored = [m for m in messages(rig.server, handset.device_id, "alarm") if m.get("aid") == aid]
        if stored:
            break
        if time.monotonic() >= deadline:
            raise AssertionError(f"{handset.device_id}: alarm {aid} never reached the server")
        time.sleep(0.2)
    if close:
        alarm = [a for a in rig.server_alarms(handset.device_id) if a.get("aid") == aid]
        assert len(alarm) == 1, f"{handset.device_id}: alarms with aid {aid}: {alarm}"
        rig.close_alarm(alarm[0]["id"])
        handset.log.expect("ALARM_END", timeout=30, since=log_mark, aid=aid)
    return stored[0]
