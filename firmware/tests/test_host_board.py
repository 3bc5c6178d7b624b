"""The whole firmware as a process on the host board (docs/interfaces.md §1).

`micropython firmware/main.py` runs with TGD_UART on the SIM7600 emulator's pty
(hil_tests/tgd_rig/emulator), TGD_BUTTON a FIFO, TGD_FLASH a directory or a
littlefs2 image, TGD_PWRKEY the emulator's PWRKEY FIFO. A small HTTP endpoint in
this file checks each message's HMAC and answers as docs/protocol.md says; the
full server is exercised by the HIL rig (hil_tests/).

The VM is the ESP32-faithful one (`make esp32-vm`: 32-bit, firmware frozen) at 48 KB,
the PyPI port with a roomy heap where it is not built (tgd_flash.micropython_vm).
HOST_HEAP (env TGD_TEST_HEAP) overrides the heap; `tools/heap_probe.py` bisects it
(docs/firmware.md "Memory").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tgd_flash.micropython_vm import executable as micropython_bin
from tgd_flash.micropython_vm import firmware_heap

emulator = pytest.importorskip("tgd_rig.emulator")

FIRMWARE = Path(__file__).resolve().parents[1]
MAIN = FIRMWARE / "main.py"
HOST_HEAP = os.environ.get("TGD_TEST_HEAP") or firmware_heap()
KEY = "5a" * 32
SMS_NUMBER = "+687700100"
FW_TIME_SCALE = "0.1"   # backoffs, AML deadline and track interval at a tenth
EMU_SCALE = 0.05        # the emulator's network and modem delays


class Endpoint:
    """The data channel's far end: verifies signatures, answers per protocol.md."""

    def __init__(self):
        self.messages: list[dict] = []
        self.bad_signatures = 0
        self.state = "received"
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sig = self.headers.get("X-TGD-Signature", "")
                good = hmac.compare_digest(
                    sig, hmac.new(bytes.fromhex(KEY), body, hashlib.sha256).hexdigest())
                if not good:
                    outer.bad_signatures += 1
                    self._answer(401, {"ok": False, "error": "bad_signature"})
                    return
                msg = json.loads(body)
                with outer.lock:
                    outer.messages.append(msg)
                    answer = {"ok": True, "seq": msg["seq"], "cmds": []}
                    if "aid" in msg:
                        answer["alarm"] = {"aid": msg["aid"], "state": outer.state}
                self._answer(200, answer)

            def _answer(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v1/device/messages"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_type(self, mtype):
        with self.lock:
            return [m for m in self.messages if m["type"] == mtype]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Handset:
    """One emulated handset: the emulator's modem and the firmware process."""

    def __init__(self, net, workdir: Path, flash: Path):
        self.net = net
        self.workdir = workdir
        self.flash = flash
        self.button = workdir / "button.fifo"
        os.mkfifo(self.button)
        self.button_fd = os.open(self.button, os.O_RDWR)
        self.modem = emulator.Sim7600Emulator(
            net, msisdn="+687751001", imei="357365093474415", iccid="8968701000000000001",
            imsi="546010000000001", track=emulator.Track.fixed(-22.2758, 166.4580))
        self.modem.open(pwrkey_fifo=True)
        self.proc = None
        self.lines: list[str] = []
        self.events: queue.Queue = queue.Queue()
        self.boots = 0

    def start(self):
        env = dict(os.environ, TGD_UART=self.modem.port, TGD_BUTTON=str(self.button),
                   TGD_FLASH=str(self.flash), TGD_PWRKEY=self.modem.pwrkey_path,
                   TGD_TIME_SCALE=FW_TIME_SCALE)
        self.modem.flush_host_input()
        self.proc = subprocess.Popen(
            [micropython_bin(), "-X", f"heapsize={HOST_HEAP}", str(MAIN)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(self.workdir))
        self.boots += 1
        self.mark = len(self.lines)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc):
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            self.lines.append(line)

    def kill(self):
        """A power cut: the firmware dies at once and the modem loses power."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
        self.modem.power_off()

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.modem.close()
        os.close(self.button_fd)

    def press(self, seconds: float):
        os.write(self.button_fd, b"1")
        time.sleep(seconds)
        os.write(self.button_fd, b"0")

    def parsed(self, since: int = 0):
        out = []
        for line in self.lines[since:]:
            parts = line.split(" ")
            if len(parts) < 2 or not parts[0].isdigit():
                out.append((None, line, {}))
                continue
            fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
            out.append((int(parts[0]), parts[1], fields))
        return out

    def expect(self, event: str, timeout: float = 45.0, since: int | None = None, **match):
        """The first log line of `event` (after `since`) whose keys match."""
        start = self.mark if since is None else since
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (_, name, fields) in enumerate(self.parsed(start)):
                if name == event and all(fields.get(k) == str(v) for k, v in match.items()):
                    return start + i, fields
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.02)
        tail = "\n".join(self.lines[-40:])
        raise AssertionError(f"no {event} {match} within {timeout} s; firmware log tail:\n{tail}")

    def names(self, since: int = 0):
        return [name for _, name, _ in self.parsed(since)]


@pytest.fixture
def world(tmp_path):
    net = emulator.Network(timing=emulator.Timing.fast(EMU_SCALE), cells=emulator.load_cells(),
                           seed=7)
    net.start()
    police = net.add_police("17", answer_after_s=0.5)
    sms = net.add_sms_sink(SMS_NUMBER)
    endpoint = Endpoint()
    handsets = []

    def make(flash_kind="dir", config=True):
        work = tmp_path / f"h{len(handsets)}"
        work.mkdir()
        if flash_kind == "dir":
            flash = work / "flash"
            flash.mkdir()
            if config:
                (flash / "config.json").write_text(json.dumps(config_for(endpoint)))
        else:
            flash = work / "flash.img"
            if config:
                write_config_into_image(flash, config_for(endpoint))
        h = Handset(net, work, flash)
        handsets.append(h)
        return h

    yield {"net": net, "police": police, "sms": sms, "endpoint": endpoint, "make": make}
    for h in handsets:
        h.close()
    endpoint.close()
    net.stop()


def config_for(endpoint):
    return {"config_version": 1, "device_id": "NC0001", "key": KEY,
            "special_number": "+687751001", "emergency_number": "17", "sms_number": SMS_NUMBER,
            "server_url": endpoint.url, "apn": "mobilis", "transport": "http",
            "trigger_hold_ms": 2000, "heartbeat_interval_s": 1800, "track_interval_s": 10,
            "call_retries": 5, "alarm_timeout_s": 14400}


def write_config_into_image(image: Path, cfg: dict):
    """Format a littlefs2 image and write config.json with the firmware's own block device."""
    script = (
        "import sys\nsys.path.insert(0, %r)\n"
        "from board_host import mount_image\nmount_image(%r, '/flash')\n"
        "f = open('/flash/config.json', 'w')\nf.write(%r)\nf.close()\n"
    ) % (str(FIRMWARE / "host"), str(image), json.dumps(cfg))
    subprocess.run([micropython_bin(), "-c", script], check=True, timeout=60)


def read_file_from_image(image: Path, name: str) -> str:
    script = (
        "import sys\nsys.path.insert(0, %r)\n"
        "from board_host import mount_image\nmount_image(%r, '/flash')\n"
        "print(open('/flash/' + %r).read())\n"
    ) % (str(FIRMWARE / "host"), str(image), name)
    return subprocess.run([micropython_bin(), "-c", script], check=True, timeout=30,
                          capture_output=True, text=True).stdout


def alarm_path(world, h):
    """Boot, hold 2 s, and follow every channel to delivery."""
    h.start()
    h.expect("BOOT", timeout=15)
    h.expect("READY", timeout=60)
    h.press(2.3)
    i_alarm, alarm = h.expect("ALARM", resumed=0)
    names = h.names(i_alarm)
    i_dial, dial = h.expect("DIAL", since=i_alarm)
    assert dial["n"] == "17"
    # the dial is the first thing after the journal: no modem command before it
    assert [n for n in names[1:names.index("DIAL")] if n not in ("VIBRATE", "BUTTON")] == []
    h.expect("CALL", since=i_alarm, state="active")
    h.expect("DATA", since=i_alarm, type="alarm", status="200")
    h.expect("FIX", since=i_alarm, m="G", timeout=60)
    h.expect("SMS", since=i_alarm, state="delivered", timeout=60)
    endpoint = world["endpoint"]
    first = endpoint.of_type("alarm")[0]
    assert first["aid"] == alarm["aid"] and first["dev"] == "NC0001"
    assert endpoint.bad_signatures == 0
    text = world["sms"].received[0][1]
    assert text.startswith('A"ML=1;') and f"ml={len(text)}" in text
    police = world["police"].calls
    assert len(police) == 1 and police[0].caller == "+687751001"
    # acknowledgement from the console -> one "help is coming" vibration
    endpoint.state = "acknowledged"
    h.expect("ACKED", since=i_alarm, state="acknowledged", timeout=60)
    h.expect("VIBRATE", since=i_alarm, pattern="help")
    endpoint.state = "closed"
    h.expect("ALARM_END", since=i_alarm, reason="closed", timeout=60)
    assert len([n for n in h.names(i_alarm) if n == "VIBRATE"]) == 2  # short, then help once
    seqs = [m["seq"] for m in endpoint.messages]
    assert len(seqs) == len(set(seqs))
    assert {m["aid"] for m in endpoint.messages if "aid" in m} == {alarm["aid"]}
    return alarm


def test_alarm_path_with_flash_directory(world):
    h = world["make"]("dir")
    alarm_path(world, h)
    journal = (h.flash / "journal.log").read_text()
    assert alarm_text(journal, "open") and alarm_text(journal, "end")


def test_alarm_path_with_littlefs_image(world):
    h = world["make"]("image")
    alarm_path(world, h)
    h.kill()
    journal = read_file_from_image(h.flash, "journal.log")
    assert alarm_text(journal, "open") and alarm_text(journal, "end")


def alarm_text(journal: str, kind: str) -> bool:
    return f'"r": "{kind}"' in journal


def test_short_presses_never_alarm(world):
    h = world["make"]("dir")
    h.start()
    h.expect("READY", timeout=60)
    for _ in range(3):
        h.press(1.2)
        time.sleep(0.3)
    for _ in range(20):  # contact chatter
        h.press(0.01)
    time.sleep(2.5)
    names = h.names()
    assert "ALARM" not in names and "DIAL" not in names
    assert names.count("BUTTON") >= 6
    assert world["police"].calls == []


def test_power_cut_mid_alarm_resumes_the_same_alarm(world):
    h = world["make"]("image")
    h.start()
    h.expect("READY", timeout=60)
    h.press(2.3)
    _, alarm = h.expect("ALARM", resumed=0)
    h.expect("DIAL")
    h.kill()
    h.start()
    i, resumed = h.expect("ALARM", resumed=1)
    assert resumed["aid"] == alarm["aid"]
    h.expect("DIAL", since=i, timeout=60)
    h.expect("DATA", since=i, status="200", timeout=60)
    aids = {m["aid"] for m in world["endpoint"].messages if "aid" in m}
    assert aids == {alarm["aid"]}
    assert "ALARM" not in [n for n in h.names(i + 1)]  # never a second alarm


def test_safe_mode_still_calls_and_texts(world):
    h = world["make"]("dir", config=False)
    h.start()
    h.expect("SAFE_MODE", reason="no_config_file")
    h.expect("READY", timeout=60)
    h.press(2.3)
    i, _ = h.expect("ALARM")
    h.expect("DIAL", since=i)
    h.expect("CALL", since=i, state="active")
    assert world["endpoint"].messages == []  # no server identity: no data messages


def test_a_confirmed_slot_that_no_longer_loads_boots_the_whole_factory_firmware(world):
    # an update slot confirmed long ago whose files are now damaged: one module loads, the
    # next cannot. Never half a release over the factory firmware: this boot runs the
    # frozen one, whole, says so, and her alarm goes as always.
    from test_ota_overlay import MPY_CROSS, compile_to
    if not MPY_CROSS.exists():
        pytest.skip("no mpy-cross of the ESP32-faithful VM (make esp32-vm)")
    h = world["make"]("dir")
    slot = h.flash / "ota" / "b"
    device = (FIRMWARE / "tgd" / "device.py").read_text()
    compile_to(slot, "tgd/device.py", device.replace('FW_VERSION = "1.0.0"', 'FW_VERSION = "9.9.9"'))
    compile_to(slot, "tgd/aml.py", "raise ValueError('damaged')\n")
    (h.flash / "ota" / "state.json").write_text(json.dumps(
        {"active": "b", "trial": None, "tried": 0, "res": "ok", "ver": "9.9.9", "boot": "b"}))
    alarm_path(world, h)  # boots, holds, follows every channel
    _, boot = h.expect("BOOT", timeout=1, since=0)
    assert boot["fw"] == "1.0.0"
    h.expect("OTA", timeout=1, since=0, res="rolled_back", why="slot_load:ValueError", slot="b")
    state = json.loads((h.flash / "ota" / "state.json").read_text())
    assert state["res"] == "rolled_back"
