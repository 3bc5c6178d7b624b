"""The emulated backend: real firmware on the MicroPython VM, SIM7600 emulator, real server.

Per handset: a flash directory with its config.json, a button FIFO the rig keeps a
writer on, a `Sim7600Emulator` on a pty (with its PWRKEY and DTR FIFOs), and the firmware
process `build/esp32-vm/micropython -X heapsize=48k firmware/main.py` (docs/interfaces.md §1,
"Heap"; the PyPI port at 512k where the ESP32-faithful VM is not built).
Shared: one simulated `Network` (police endpoint at the emergency number; at the SMS
number an emulated SIM7600 read by the server's own SMS gateway loop,
`tgd_server.sms.gateway`) and one real server (`ServerHarness`).

A power cut kills the firmware process (SIGKILL: no cleanup, like a battery pulled)
and powers the emulated modem off; power_on() starts the firmware again on the
same flash, and the firmware must power the modem up itself through PWRKEY.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tgd_flash.micropython_vm import for_firmware

from .devicelog import DeviceLog, LogLine
from .errors import RigError
from .provision import HandsetIdentity, provision_host_handset
from .rig import Handset, Rig
from .server_harness import ServerHarness

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_MAIN = REPO / "firmware" / "main.py"
# The firmware runs on the ESP32-faithful VM (`make esp32-vm`: 32-bit, firmware frozen)
# at 48 KB, or on the PyPI port with a roomy heap that measures nothing where the VM is
# not built (tgd_flash.micropython_vm). TGD_RIG_HEAP overrides the heap (`tools/heap_probe.py`
# bisects it; docs/benchmarks.md "Firmware: memory and size").
HEAP = os.environ.get("TGD_RIG_HEAP")
DEFAULT_SMS_NUMBER = "+687700100"
DEFAULT_EMERGENCY_NUMBER = "17"
FAST_SCALE = 0.05
# The host board's reset (firmware/host/board_host.py RESET_EXIT): the firmware asks to be
# started again, as machine.reset() restarts an ESP32 (an update's switch, a rollback).
RESET_EXIT = 75


def make_timing(timing: Any, fast_scale: float | None = None):
    from .emulator.timing import Timing

    if isinstance(timing, Timing):
        return timing
    if timing == "realistic":
        return Timing.realistic()
    if timing == "fast":
        return Timing.fast(fast_scale or FAST_SCALE)
    raise RigError(f"timing must be 'fast', 'realistic' or a Timing, not {timing!r}")


class EmulatedHandset(Handset):
    def __init__(self, rig: EmulatedRig, identity: HandsetIdentity, workdir: Path, *,
                 track, indoor: bool, battery_mv: int, config: dict[str, Any]):
        # config: the config.json already written into workdir/flash by the provisioning
        self.rig = rig
        self.identity = identity
        self.device_id = identity.device_id
        self.workdir = workdir
        self.flash_dir = workdir / "flash"
        self.button_path = workdir / "button.fifo"
        self.track = track
        self.indoor = indoor
        self.battery_mv = battery_mv
        self.config = config
        self.log = DeviceLog(self.device_id, workdir / "device.log")
        self.modem = None
        self.proc: subprocess.Popen | None = None
        self._button_fd: int | None = None
        self._lock = threading.Lock()
        self._pressed = False
        self.restarts = 0

    # -- life cycle ------------------------------------------------------------------------

    def open(self) -> None:
        from .emulator.modem import Sim7600Emulator

        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.button_path.exists():
            os.mkfifo(self.button_path)
        # Read-write: never blocks on open and keeps the FIFO alive across firmware restarts.
        self._button_fd = os.open(self.button_path, os.O_RDWR)
        self.log.open()
        self.log.subscribe(self._on_line)
        self.modem = Sim7600Emulator(self.rig.net, msisdn=self.identity.special_number,
                                     imei=self.identity.imei, iccid=self.identity.iccid,
                                     imsi=self.identity.imsi, track=self.track, indoor=self.indoor)
        self.modem.battery_mv = self.battery_mv
        self.modem.open(pwrkey_fifo=True)

    def _on_line(self, line: LogLine) -> None:
        self.rig.events.emit("device", "log", self.device_id, t=line.t, line=line)

    def power_on(self) -> None:
        """Start the firmware (the modem stays off until the firmware pulses PWRKEY)."""
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                return
            env = dict(os.environ)
            env.update({"TGD_UART": self.modem.port, "TGD_BUTTON": str(self.button_path),
                        "TGD_FLASH": str(self.flash_dir), "TGD_PWRKEY": self.modem.pwrkey_path,
                        "TGD_DTR": self.modem.dtr_path,
                        "TGD_LOG": self.rig.log_level,
                        "TGD_TIME_SCALE": repr(self.rig.firmware_time_scale)})
            self.modem.flush_host_input()  # what the killed firmware never read
            self.log.note(f"power on (firmware start #{self.restarts + 1})")
            self.proc = subprocess.Popen(
                [self.rig.micropython.executable, "-X", f"heapsize={self.rig.heap}", str(self.rig.firmware_main)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=env, cwd=str(self.rig.firmware_main.parent), start_new_session=True)
            self.restarts += 1
            self.log.source_started()
            proc = self.proc
            self.log.follow(proc.stdout, on_end=lambda: self._on_exit(proc))
        self.rig.events.emit("rig", "power_on", self.device_id)

    def _on_exit(self, proc: subprocess.Popen) -> None:
        """The firmware's stdout ended: a crash unless the rig cut the power."""
        with self._lock:
            if self.proc is not proc:
                return          # power cut: expected
        code = proc.wait()
        if code == RESET_EXIT:
            with self._lock:
                if self.proc is not proc:
                    return
                self.proc = None
            self.log.note("reset (the firmware restarts; the modem stays on)")
            self.rig.events.emit("rig", "reset", self.device_id)
            self.power_on()
            return
        self.log.source_died(f"exit code {code}")

    def power_cut(self) -> None:
        with self._lock:
            proc, self.proc = self.proc, None
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            if proc is not None:
                proc.wait(timeout=10)
                if proc.stdout:
                    proc.stdout.close()
            if self.modem is not None:
                self.modem.power_off()
            self.log.note("power cut")
        self.rig.events.emit("rig", "power_cut", self.device_id)

    def close(self) -> None:
        self.power_cut()
        if self.modem is not None:
            self.modem.close()
        if self._button_fd is not None:
            os.close(self._button_fd)
            self._button_fd = None
        self.log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- button ----------------------------------------------------------------------------

    def _button(self, down: bool) -> float:
        if self._button_fd is None:
            raise RigError("handset not open")
        t = time.monotonic()
        os.write(self._button_fd, b"1" if down else b"0")
        self._pressed = down
        self.rig.events.emit("rig", "press" if down else "release", self.device_id, t=t)
        return t

    def press(self, seconds: float | None = None, wait: bool = True) -> float:
        t = self._button(True)
        if seconds is None:
            return t
        if wait:
            time.sleep(max(0.0, seconds - (time.monotonic() - t)))
            self._button(False)
        else:
            timer = threading.Timer(max(0.0, seconds - (time.monotonic() - t)), self._button,
                                    args=(False,))
            timer.daemon = True
            timer.start()
        return t

    def release(self) -> float:
        return self._button(False)


class EmulatedRig(Rig):
    backend = "emulated"

    def __init__(self, workdir: Path | str | None = None, timing: Any = "fast",
                 fast_scale: float | None = None, seed: int = 1,
                 emergency_number: str = DEFAULT_EMERGENCY_NUMBER,
                 sms_number: str = DEFAULT_SMS_NUMBER, police_answer_after_s: float = 3.0,
                 log_level: str = "info", database_url: str | None = None,
                 cells_csv: Path | str | None = None, server_port: int = 0,
                 firmware_main: Path | None = None, heap: str | None = None):
        super().__init__()
        self.firmware_main = Path(firmware_main or FIRMWARE_MAIN)   # another build, e.g. a release
        # another firmware tree runs on the PyPI port (the VM would run its frozen copy)
        self.micropython = for_firmware(self.firmware_main)
        self.heap = heap or HEAP or self.micropython.heap
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tgd-rig-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.timing_name = timing if isinstance(timing, str) else "custom"
        self.timing = timing
        self.fast_scale = fast_scale
        self.seed = seed
        self.emergency_number = emergency_number
        self.sms_number = sms_number
        self.police_answer_after_s = police_answer_after_s
        self.log_level = log_level
        # The firmware's own delays (backoffs, AML deadline, heartbeat period) shrink with the
        # emulator's, so a fast run keeps the proportions of a real one.
        self.firmware_time_scale = make_timing(timing, fast_scale).scale
        self.cells_csv = Path(cells_csv) if cells_csv else None
        self.server = ServerHarness(self.workdir / "server", bus=self.events,
                                    database_url=database_url, cells_csv=self.cells_csv,
                                    port=server_port)
        self.net = None
        self.police = None
        self.sms_sink = None
        self.handsets: dict[str, EmulatedHandset] = {}  # type: ignore[assignment]
        self._sms_queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._gateway_stop = threading.Event()
        self.gateway_modem = None
        self._threads: list[threading.Thread] = []
        self._msisdn_to_device: dict[str, str] = {}
        self._index_lock = threading.Lock()
        self._last_index = 0   # never reused: numbers stay unique after remove_handset()
        self._started = False

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        from .emulator.network import Network

        if self._started:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server.start()
        from .emulator.cells import load_cells

        # the network and the server must know the same cells
        self.net = Network(timing=make_timing(self.timing, self.fast_scale), seed=self.seed,
                           cells=load_cells(self.cells_csv))
        self.net.start()
        self.police = self.net.add_police(self.emergency_number,
                                          answer_after_s=self.police_answer_after_s)
        self._start_sms_gateway()
        for target in (self._pump_network, self._pump_sms):
            thread = threading.Thread(target=target, name=target.__name__, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._started = True

    def _start_sms_gateway(self) -> None:
        """The server's real SMS gateway on an emulated SIM7600 at the SMS number.

        Falls back to a network sink feeding the SMS ingest directly when the
        server has no gateway module."""
        try:
            from tgd_server.sms.gateway import GatewayConfig, SmsGateway
            from tgd_server.sms.modem import AtModem
        except ImportError:
            self.sms_sink = self.net.add_sms_sink(self.sms_number, self._on_sms)
            return
        from .emulator.modem import Sim7600Emulator

        modem = Sim7600Emulator(self.net, msisdn=self.sms_number, imei="861234567899999",
                                iccid="8968701000009999999", imsi="546010000099999",
                                name="sms-gateway")
        modem.open(pwrkey_fifo=False)
        modem.power_on()
        self.gateway_modem = modem
        gateway = SmsGateway(AtModem(modem.port), self._gateway_deliver,
                             GatewayConfig(sweep_interval_s=5.0))
        thread = threading.Thread(target=gateway.run, args=(self._gateway_stop,),
                                  name="sms-gateway", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _gateway_deliver(self, sender: str, text: str, received_at) -> object:
        from tgd_server import db
        from tgd_server.sms.ingest_sms import ingest_aml_sms

        with self.server.app.app_context():
            result = ingest_aml_sms(sender, text, received_at, factory=db.session_factory())
        self.events.emit("server", "server_sms", self._msisdn_to_device.get(sender),
                         sender=sender, status=(result.answer or {}).get("status"))
        return result

    def stop(self) -> None:
        if not self._started:
            return
        for handset in list(self.handsets.values()):
            handset.close()
        self._gateway_stop.set()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.net is not None:
            self.net.stop()
        self.server.stop()
        self._started = False
        if self._tmp is not None:
            self._tmp.cleanup()

    def add_handset(self, device_id: str, *, track=None, lat: float = -22.2758, lon: float = 166.4580,
                    indoor: bool = False, battery_mv: int = 3987, config: dict[str, Any] | None = None,
                    special_number: str | None = None, register: bool = True) -> EmulatedHandset:
        """Provision, register and open a handset (its firmware is not started: power_on())."""
        from .emulator.track import Track

        with self._index_lock:
            if device_id in self.handsets:
                raise RigError(f"handset {device_id} already exists")
            self._last_index += 1
            index = self._last_index
        identity = HandsetIdentity.generate(device_id, index, special_number)
        workdir = self.workdir / "handsets" / device_id
        with self.server._api_lock:   # one technician: registrations go one at a time
            cfg = provision_host_handset(
                workdir / "flash", identity, server_url=self.server.ingest_url,
                sms_number=self.sms_number, emergency_number=self.emergency_number,
                base_url=self.server.base_url if register else None,
                tech_token=self.server.tech_token if register else None, settings=config,
                on_server_error=self.server.server_errors.append)
        handset = EmulatedHandset(self, identity, workdir,
                                  track=track or Track.fixed(lat, lon), indoor=indoor,
                                  battery_mv=battery_mv, config=cfg)
        handset.open()
        self.handsets[device_id] = handset
        self._msisdn_to_device[identity.special_number] = device_id
        return handset

    def remove_handset(self, device_id: str) -> None:
        """Stop a handset for good (its firmware, its modem); its log file stays."""
        handset = self.handsets.pop(device_id)
        handset.close()

    # -- what the network and the server saw -------------------------------------------------

    def _pump_network(self) -> None:
        """Forward the network's events (their own monotonic times) to the rig's bus."""
        seen = 0
        while not self._stop.is_set():
            events = self.net.events
            while seen < len(events):
                ev = dict(events[seen])
                seen += 1
                kind = ev.pop("kind")
                t = ev.pop("t")
                device = self._msisdn_to_device.get(ev.get("modem") or ev.get("caller") or "")
                if kind == "sms_delivered":
                    ev["sender"] = ev.get("modem")
                self.events.emit("network", kind, device, t=t, **ev)
            self._stop.wait(0.005)

    def _on_sms(self, sender: str, text: str, epoch: float) -> None:
        # Runs in the network loop: hand over to a thread, the loop must not wait on SQL.
        self._sms_queue.put((sender, text, epoch))

    def _pump_sms(self) -> None:
        """Without the gateway module: each AML SMS goes to the server's SMS ingest."""
        while not self._stop.is_set():
            try:
                sender, text, epoch = self._sms_queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                from datetime import UTC, datetime

                from tgd_server.sms.ingest_sms import ingest_aml_sms

                with self.server.app.app_context():
                    ingest_aml_sms(sender, text, datetime.fromtimestamp(epoch, UTC))
            except Exception as exc:  # noqa: BLE001 - reported, and the rig goes on
                self.events.emit("rig", "sms_gateway_error", self._msisdn_to_device.get(sender),
                                 error=repr(exc))

    # -- Rig operations --------------------------------------------------------------------------

    def server_alarms(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self.server.alarms(device_id)

    def close_alarm(self, alarm_id: int, note: str = "closed by the HIL rig") -> None:
        self.server.close_alarm(alarm_id, note)

    def ack_alarm(self, alarm_id: int) -> None:
        self.server.ack_alarm(alarm_id)

    def inject(self, device_id: str, fault: str, at_s: float = 0.0, **params: Any) -> None:
        modem = self.handsets[device_id].modem
        # the emulator counts fault times from the modem's creation
        modem.schedule(modem.uptime_s + at_s, fault, **params)
        self.events.emit("rig", "fault", device_id, fault=fault, at_s=at_s, **params)
