"""What the OTA rig tests share: test releases, their keys, and a tiny device server.

- Releases (Keys, make_release, failing_selftest_sources: tgd_rig/ota_fleet.py, which
  the real server's roll-out test uses as well) follow docs/protocol.md "Updates":
  manifest (canonical JSON) + signature + bundle
  (b"TGDB1\\n", then "<path> <size>\\n" + bytes per file), the bundle a .mpy set
  compiled by build/esp32-vm/mpy-cross from the firmware's own sources with a few
  changes (the version string, a fault on purpose): the modules whose .mpy differ from
  the factory firmware's (this checkout's firmware/, frozen into the rig's VM), as
  `tgd-flash release --base` picks them (tgd_flash.release.delta_files; the whole tree
  does not run from a slot at 48 KB, docs/firmware.md "Updates over the air"), with
  the release tools' own bundle, manifest and signing functions.
- Keys and signatures: the release tools' own Ed25519 (tools/tgd_flash/release_sign.py,
  the firmware's curve) and manifest (release_file.py), as `tgd-flash release` writes
  them; the handset verifies with firmware/tgd/crypto/ed25519.py.
- `OtaServer`: the device endpoint the handset is pointed to (a real HTTP server on
  127.0.0.1): it answers every message ok:true (an alarm as the test decides), offers
  the update in heartbeat answers (or in every answer, to prove the handset only takes
  it from a heartbeat's), and serves the bundle with Range (206), as the contract's
  GET /api/v1/fw/<version>/bundle does. A test server rather than the real one: each
  test decides the offer and the alarm's answers per handset, and corrupts or withholds
  what it serves (the real server's side has its own tests, tools/tests and server/).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The test releases live in tgd_rig/ota_fleet.py (the rig's real-server roll-out uses them
# too); re-exported here for the OTA tests.
from tgd_rig.ota_fleet import (  # noqa: F401
    FIRMWARE,
    MPY_CROSS,
    REPO,
    Keys,
    Release,
    bundle_bytes,
    compile_mpy,
    failing_selftest_sources,
    make_release,
    versioned_device,
)


def firmware_env() -> dict[str, str]:
    """Environment the firmware process needs for updates: nothing beyond the rig's."""
    return {}


class OtaServer:
    """The handset's server for the OTA tests (127.0.0.1, a free port)."""

    def __init__(self):
        self.messages: list[dict] = []
        self.gets: list[tuple[str, str | None, int]] = []   # (path, Range, status)
        self.release: Release | None = None
        self.offer_in_every_answer = False
        self.offering = False
        self.served_bundle: bytes | None = None   # None: the release's own bytes
        self.alarm_state = "received"   # the default answer to an alarm's messages
        self.alarm_states: dict[str, str] = {}   # per device, over the default
        self.bytes_sent = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body, ctype="application/json", headers=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    msg = json.loads(raw)
                except ValueError:
                    return self._send(400, b'{"ok":false,"error":"bad_json"}')
                with server._lock:
                    server.messages.append(msg)
                answer = {"ok": True, "seq": msg.get("seq"), "cmds": []}
                if msg.get("aid"):
                    state = server.alarm_states.get(msg.get("dev"), server.alarm_state)
                    answer["alarm"] = {"aid": msg["aid"], "state": state}
                rel = server.release
                if rel is not None and server.offering and (
                        msg.get("type") == "heartbeat" or server.offer_in_every_answer):
                    answer["update"] = rel.offer()
                self._send(200, json.dumps(answer).encode())

            def do_GET(self):
                rel = server.release
                m = re.fullmatch(r"/api/v1/fw/([0-9.]+)/bundle", self.path)
                rng = self.headers.get("Range")
                if rel is None or m is None or m.group(1) != rel.version:
                    server.gets.append((self.path, rng, 404))
                    return self._send(404, b'{"ok":false,"error":"unknown_version"}')
                data = server.served_bundle if server.served_bundle is not None else rel.bundle
                r = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
                if r is None:
                    server.gets.append((self.path, rng, 200))
                    server.bytes_sent += len(data)
                    return self._send(200, data, "application/octet-stream")
                start = int(r.group(1))
                end = min(int(r.group(2)) if r.group(2) else len(data) - 1, len(data) - 1)
                if start >= len(data):
                    server.gets.append((self.path, rng, 416))
                    return self._send(416, b"", "application/octet-stream")
                part = data[start:end + 1]
                server.gets.append((self.path, rng, 206))
                server.bytes_sent += len(part)
                self._send(206, part, "application/octet-stream",
                           [("Content-Range", f"bytes {start}-{end}/{len(data)}")])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/device/messages"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> OtaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def of(self, device_id: str, mtype: str | None = None) -> list[dict]:
        with self._lock:
            return [m for m in self.messages if m.get("dev") == device_id
                    and (mtype is None or m.get("type") == mtype)]

    def bundle_gets(self) -> list[tuple[str, str | None, int]]:
        return [g for g in self.gets if g[0].endswith("/bundle")]


def point_handset(handset, server: OtaServer, keys: Keys, **settings) -> None:
    """Rewrite the provisioned config.json: this server, the release key, settings."""
    path = handset.flash_dir / "config.json"
    cfg = json.loads(path.read_text())
    cfg["server_url"] = server.url
    cfg["release_pub"] = keys.pub_hex
    cfg.update(settings)
    path.write_text(json.dumps(cfg))


HOLD_MS = 600


def uart_timing(scale: float = 0.05):
    """The rig's fast timing, but the modem's UART at its real 115200 baud: a download
    then takes as long as on a handset (the UART, not LTE, is the bottleneck)."""
    from dataclasses import replace

    from tgd_rig.emulator.timing import Timing
    return replace(Timing.fast(scale), uart_bps=115200.0)


def ota_handset(rig, server: OtaServer, keys: Keys, device_id: str, **settings):
    """A handset pointed at `server` with `keys`' public key, powered on and READY."""
    handset = rig.add_handset(device_id, config={"trigger_hold_ms": HOLD_MS,
                                                 "heartbeat_interval_s": 60})
    point_handset(handset, server, keys, **settings)
    handset.power_on()
    handset.expect("READY", timeout=30)
    return handset


def alarm_reaches_17(rig, handset, server: OtaServer, close: bool = True) -> dict:
    """Hold the button; the police (17) answer a call from her; the alarm's message
    reaches the server. Returns the server's alarm message. `close`: the server then
    closes it and the handset ends it."""
    mark = rig.events.mark()
    server.alarm_states[handset.device_id] = "received"
    handset.press(HOLD_MS / 1000 + 0.2, wait=False)
    alarm = handset.expect("ALARM", timeout=10)
    rig.wait_call(30, since=mark, caller=handset.identity.special_number)
    aid = alarm.get("aid")
    deadline = __import__("time").monotonic() + 20
    while not [m for m in server.of(handset.device_id, "alarm") if m.get("aid") == aid]:
        assert __import__("time").monotonic() < deadline, "the alarm never reached the server"
        __import__("time").sleep(0.1)
    if close:
        server.alarm_states[handset.device_id] = "closed"
        handset.expect("ALARM_END", timeout=30, aid=aid)
    return [m for m in server.of(handset.device_id, "alarm") if m.get("aid") == aid][0]


def seqs(server: OtaServer, device_id: str) -> list[int]:
    return [m["seq"] for m in server.of(device_id)]
