"""The serial backend: a real board, a real modem as the police receiver, a real server.

The hardware is described in a TOML file (hil_tests/rig.example.toml, copied to
hil_tests/rig.toml on a bench), never in code:

- the board's console port: the firmware's event lines (docs/interfaces.md §2);
- the button: the RTS (or DTR) line of a USB-serial adapter, through a transistor
  or an optocoupler across the button (docs/hil.md has the wiring);
- optionally the supply: a relay on another modem line, for power cuts;
- the receiver: a second SIM7600 whose number is the handset's emergency number
  (and SMS number), driven by `Receiver`;
- the server the board is provisioned for, read through its REST API with an
  operator token taken from the environment (never from the file).

What a real network cannot do on demand (faults) raises `Unsupported`; the tests
skip those on this backend.
"""

from __future__ import annotations

import os
import threading
import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import serial

from .devicelog import DeviceLog
from .errors import RigConfigError, RigError, Unsupported
from .receiver import Receiver
from .rig import Handset, Rig

_LINES = ("rts", "dtr")


def _iso_to_monotonic(text: str | None, offset: float) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp() + offset
    except ValueError:
        return None


class ModemLine:
    """One modem-control line of a USB-serial adapter used as a digital output."""

    def __init__(self, port: serial.Serial, line: str, active_high: bool):
        self.port, self.line, self.active_high = port, line, active_high

    def set(self, active: bool) -> None:
        setattr(self.port, self.line, active if self.active_high else not active)


class SerialHandset(Handset):
    def __init__(self, rig: SerialRig, cfg: dict[str, Any], workdir: Path):
        self.rig = rig
        self.cfg = cfg
        self.device_id = cfg["board"]["device_id"]
        truth = cfg.get("truth")
        self.truth = (float(truth["lat"]), float(truth["lon"])) if truth else None
        self.log = DeviceLog(self.device_id, workdir / f"{self.device_id}.log")
        self._console: serial.Serial | None = None
        self._button: ModemLine | None = None
        self._power: ModemLine | None = None
        self._ports: dict[str, serial.Serial] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _port(self, name: str) -> serial.Serial:
        if name not in self._ports:
            self._ports[name] = serial.serial_for_url(name, do_not_open=True)
            self._ports[name].rts = False   # set before opening: no glitch on the button
            self._ports[name].dtr = False
            self._ports[name].open()
        return self._ports[name]

    def open(self) -> None:
        board, button = self.cfg["board"], self.cfg["button"]
        self.log.open()
        self.log.subscribe(lambda ln: self.rig.events.emit("device", "log", self.device_id,
                                                            t=ln.t, line=ln))
        self._button = ModemLine(self._port(button["port"]), button.get("line", "rts"),
                                 button.get("active_high", True))
        self._button.set(False)
        if "power" in self.cfg:
            power = self.cfg["power"]
            self._power = ModemLine(self._port(power["port"]), power.get("line", "dtr"),
                                    power.get("active_high", True))
        self.can_power_cycle = self._power is not None
        self._console = serial.serial_for_url(board["console"], baudrate=board.get("baudrate", 115200),
                                              timeout=0.1)
        self._thread = threading.Thread(target=self._read_console, name="console", daemon=True)
        self._thread.start()

    def _read_console(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = self._console.read(256)
            except (serial.SerialException, OSError):
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                self.log.feed(raw.decode("utf-8", "replace"))

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._button:
            self._button.set(False)
        for port in [self._console, *self._ports.values()]:
            if port is not None:
                port.close()
        self.log.close()

    def _set_button(self, down: bool) -> float:
        t = time.monotonic()
        self._button.set(down)
        self.rig.events.emit("rig", "press" if down else "release", self.device_id, t=t)
        return t

    def press(self, seconds: float | None = None, wait: bool = True) -> float:
        t = self._set_button(True)
        if seconds is None:
            return t
        if wait:
            time.sleep(max(0.0, seconds - (time.monotonic() - t)))
            self._set_button(False)
        else:
            timer = threading.Timer(seconds, self._set_button, args=(False,))
            timer.daemon = True
            timer.start()
        return t

    def release(self) -> float:
        return self._set_button(False)

    def power_cut(self) -> None:
        if self._power is None:
            raise Unsupported("no [power] relay in the rig file: power cuts need one")
        self._power.set(True)
        self.log.note("power cut (relay)")
        self.rig.events.emit("rig", "power_cut", self.device_id)

    def power_on(self) -> None:
        if self._power is not None:
            self._power.set(False)
            self.log.note("power on (relay)")
        self.rig.events.emit("rig", "power_on", self.device_id)


class SerialRig(Rig):
    backend = "serial"

    def __init__(self, cfg: dict[str, Any], workdir: Path | None = None):
        super().__init__()
        self.cfg = cfg
        self.workdir = Path(workdir or Path.cwd() / "var" / "rig-serial")
        self.sms_number = cfg["receiver"].get("number")
        self.base_url = cfg["server"]["base_url"].rstrip("/")
        self.token = os.environ.get(cfg["server"].get("operator_token_env", "TGD_RIG_OPERATOR_TOKEN"), "")
        self.receiver: Receiver | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._seen_alarms: set[int] = set()
        self._seen_positions: set[int] = set()

    @classmethod
    def from_toml(cls, path: Path | str) -> SerialRig:
        path = Path(path)
        if not path.exists():
            raise RigConfigError(f"{path}: no rig description (copy hil_tests/rig.example.toml)")
        try:
            cfg = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise RigConfigError(f"{path}: not valid TOML: {exc}") from None
        validate_rig_config(cfg, str(path))
        return cls(cfg)

    def start(self) -> None:
        if not self.token:
            raise RigConfigError("no operator token: set the environment variable named by "
                                 "server.operator_token_env")
        self.workdir.mkdir(parents=True, exist_ok=True)
        handset = SerialHandset(self, self.cfg, self.workdir)
        rcv = self.cfg["receiver"]
        self.receiver = Receiver(rcv["port"], self._receiver_event, rcv.get("baudrate", 115200),
                                 rcv.get("answer_after_s", 3.0))
        try:
            handset.open()
            self.handsets[handset.device_id] = handset
            self.receiver.open()
        except (serial.SerialException, OSError) as exc:
            if handset.device_id not in self.handsets:
                handset.close()
            self.stop()
            raise RigConfigError(f"a port of the rig cannot be opened ({exc}): check the "
                                 "cables and the names in hil_tests/rig.toml") from exc
        self._poller = threading.Thread(target=self._poll_server, name="server-poll", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller:
            self._poller.join(timeout=5)
        if self.receiver:
            self.receiver.close()
        for handset in self.handsets.values():
            handset.close()

    def _receiver_event(self, kind: str, t: float | None = None, **data: Any) -> None:
        device = self.cfg["board"]["device_id"]
        if kind == "sms_delivered":
            data.setdefault("to", self.sms_number)
        self.events.emit("receiver", kind, device, t=t, **data)

    def _poll_server(self) -> None:
        """Alarms and positions as the server stored them (its times, on this host's clock)."""
        device = self.cfg["board"]["device_id"]
        offset = time.monotonic() - time.time()
        while not self._stop.wait(0.5):
            try:
                alarms = self.server_alarms(device)
            except RigError:
                continue
            for alarm in alarms:
                if alarm["id"] not in self._seen_alarms:
                    self._seen_alarms.add(alarm["id"])
                    t = _iso_to_monotonic(alarm.get("created_at"), offset)
                    self.events.emit("server", "server_alarm", device, t=t, aid=alarm.get("aid"),
                                     alarm_id=alarm["id"])
                for pos in alarm.get("positions", []):
                    if pos["id"] in self._seen_positions:
                        continue
                    self._seen_positions.add(pos["id"])
                    t = _iso_to_monotonic(pos.get("received_at"), offset)
                    fix = {"method": pos.get("method"), "lat": pos.get("lat"), "lon": pos.get("lon"),
                           "acc": pos.get("acc_m")}
                    self.events.emit("server", "server_position", device, t=t, aid=alarm.get("aid"),
                                     alarm_id=alarm["id"], fix=fix)

    @property
    def trigger_hold_ms(self) -> int:
        """The hold the board was provisioned with ([board] trigger_hold_ms, default 2000)."""
        return int(self.cfg["board"].get("trigger_hold_ms", 2000))

    def _api(self, method: str, path: str, body: dict | None = None) -> Any:
        import json
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                payload = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise RigError(f"server {self.base_url}: {method} {path}: {exc}") from exc
        try:
            return json.loads(payload) if payload else None
        except ValueError as exc:
            raise RigError(f"server {self.base_url}: {method} {path}: not JSON") from exc

    def server_alarms(self, device_id: str | None = None) -> list[dict[str, Any]]:
        path = "/api/v1/alarms?state=all" + (f"&device={device_id}" if device_id else "")
        answer = self._api("GET", path)
        if not isinstance(answer, dict) or "alarms" not in answer:
            raise RigError(f"server {self.base_url}: unexpected alarm list {answer!r:.200}")
        return answer["alarms"]

    def ack_alarm(self, alarm_id: int) -> None:
        self._api("POST", f"/api/v1/alarms/{alarm_id}/ack")

    def close_alarm(self, alarm_id: int, note: str = "closed by the HIL rig") -> None:
        """End an alarm as a police operator would, so the board goes back to idle."""
        self._api("POST", f"/api/v1/alarms/{alarm_id}/close", {"note": note})


def validate_rig_config(cfg: dict[str, Any], where: str) -> None:
    """Every key the serial backend needs, with a message naming the missing one."""
    required = {"board": ("console", "device_id"), "button": ("port",),
                "receiver": ("port", "number"), "server": ("base_url",)}
    for table, keys in required.items():
        if not isinstance(cfg.get(table), dict):
            raise RigConfigError(f"{where}: [{table}] is missing")
        for key in keys:
            if not isinstance(cfg[table].get(key), str) or not cfg[table][key]:
                raise RigConfigError(f"{where}: {table}.{key} is missing (a string)")
    for table in ("button", "power"):
        if table in cfg and cfg[table].get("line", "rts" if table == "button" else "dtr") not in _LINES:
            raise RigConfigError(f"{where}: {table}.line must be one of {_LINES}")
    if "truth" in cfg:
        truth = cfg["truth"]
        if not all(isinstance(truth.get(k), int | float) for k in ("lat", "lon")):
            raise RigConfigError(f"{where}: [truth] needs lat and lon (numbers)")
