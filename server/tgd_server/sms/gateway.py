"""The SMS gateway loop: a SIM7600 on a serial port receives the handsets' AML SMS.

    tgd-server sms-gateway --port /dev/ttyUSB2

Policy (the modem client below it only speaks AT):
- initialise: ATE0, CMEE=2, CMGF=1 (text), CSCS="GSM", CPMS="SM","SM","SM",
  CNMI=2,1,0,0,0 so that every new message is announced by `+CMTI: "SM",<i>`;
- then sweep: AT+CMGL="ALL" reads whatever arrived while nobody listened;
- on `+CMTI`: AT+CMGR=<i>, hand the message to `deliver` (which commits it to the
  database), and only then AT+CMGD=<i>. A message whose delivery failed stays on
  the modem and is tried again at the next sweep: nothing is ever lost; one that
  was stored but whose AT+CMGD failed is only deleted when it is read again;
- a sweep also runs every `sweep_interval_s` (a +CMTI drowned in line noise) and
  whenever the storage is found full (the network holds messages while it is full
  and sends them once there is room);
- `RDY` (the modem rebooted), a time-out, an error or garbage: resynchronise,
  initialise again and sweep; a serial port that vanished is reopened.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import serial

from .modem import AtModem, ModemError, ModemRebooted, StoredSms, parse_cmti

log = logging.getLogger("tgd.sms.gateway")

# deliver(sender, text, received_at) stores the SMS durably or raises.
Deliver = Callable[[str, str, datetime], object]

_REMEMBERED_MAX = 1000
INIT_COMMANDS = ("E0", "+CMEE=2", "+CMGF=1", '+CSCS="GSM"', '+CPMS="SM","SM","SM"',
                 "+CNMI=2,1,0,0,0")


@dataclass
class GatewayConfig:
    sweep_interval_s: float = 60.0
    command_timeout_s: float = 5.0
    list_timeout_s: float = 30.0
    boot_wait_s: float = 30.0  # after RDY, SMS commands wait for "SMS DONE"
    backoff_s: tuple[float, ...] = (0.5, 1, 2, 5, 10, 30)
    # A JSON file rewritten after every sweep and every problem, so that a dead SMS
    # channel is seen (console, monitoring) before it is needed. None: no file.
    status_path: Path | None = None


@dataclass
class GatewayStats:
    delivered: int = 0
    deleted: int = 0
    delivery_failures: int = 0
    reboots: int = 0
    resyncs: int = 0
    sweeps: int = 0
    storage_full: int = 0
    garbage_lines: int = 0


class SmsGateway:
    def __init__(self, modem: AtModem, deliver: Deliver, config: GatewayConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.modem = modem
        self.deliver = deliver
        self.config = config or GatewayConfig()
        self.stats = GatewayStats()
        self._clock = clock
        self._needs_init = True
        self._next_sweep = 0.0
        self._failures = 0
        # (sender, text, SMSC time) of messages stored but not yet deleted from the modem
        self._stored_not_deleted: OrderedDict[tuple, None] = OrderedDict()
        self._stop = threading.Event()  # run() installs the caller's
        self._storage: tuple[int | None, int | None] = (None, None)
        self._last_ok_at: str | None = None

    # --- the loop ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set. Opens (and reopens) the port itself."""
        self._stop = stop
        while not stop.is_set():
            try:
                self.modem.open()
                log.info("gateway modem port %s open", self.modem.port)
                self._needs_init = True
                while not stop.is_set():
                    self.step()
            except (serial.SerialException, OSError) as err:
                log.error("gateway serial port %s failed: %s", self.modem.port, err)
                self.write_status("port_error", str(err))
            finally:
                self.modem.close()
            stop.wait(self._backoff())
        self.write_status("stopped")

    def step(self, wait_s: float = 0.5) -> None:
        """One turn: (re)initialise if needed, serve one URC or a due sweep."""
        try:
            if self._needs_init:
                self._initialise()
                self.sweep()
                self._needs_init = False
                self._failures = 0
            urc = self.modem.next_urc(timeout=wait_s)
            if urc is not None:
                self._on_unsolicited(urc)
            if self._clock() >= self._next_sweep:
                self.sweep()
        except ModemRebooted:
            self.stats.reboots += 1
            log.warning("gateway modem rebooted: initialising again")
            self.write_status("rebooting", "RDY: the modem restarted")
            self._wait_for_sms_ready()
            self._needs_init = True
        except ModemError as err:
            self._failures += 1
            log.warning("gateway modem error (%s): resynchronising", err)
            self.write_status("error", str(err))
            self._needs_init = True
            self._stop.wait(self._backoff())  # a stop request cuts the back-off short

    # --- initialisation ---------------------------------------------------------------

    def _initialise(self) -> None:
        self.stats.resyncs += 1
        if not self.modem.resync(timeout=self.config.command_timeout_s):
            raise ModemError("the modem does not answer AT")
        for cmd in INIT_COMMANDS:
            self.modem.command(cmd, timeout=self.config.command_timeout_s)
        log.info("gateway modem initialised (text mode, +CMTI announcements)")

    def _wait_for_sms_ready(self) -> None:
        """After RDY the SIM7600 says SMS DONE when its SMS service is usable."""
        deadline = self._clock() + self.config.boot_wait_s
        while self._clock() < deadline:
            line = self.modem.next_urc(timeout=0.5)
            if line == "SMS DONE":
                return
            if line is not None and line != "RDY":
                self._on_unsolicited(line, during_boot=True)

    # --- messages ---------------------------------------------------------------------

    def _on_unsolicited(self, line: str, during_boot: bool = False) -> None:
        index = parse_cmti(line)
        if index is not None:
            if not during_boot:
                self.fetch(index)
            return  # during boot the sweep that follows initialisation reads it
        if line == "RDY":
            raise ModemRebooted("RDY")
        if line.startswith(("+CPIN:", "SMS DONE", "PB DONE", "+CDS", "+CREG", "+CEREG",
                            "+CGREG", "+CIEV", "+CGEV")):
            log.debug("gateway urc %s", line)
            return
        self.stats.garbage_lines += 1
        log.debug("gateway ignored line %r", line[:80])

    def fetch(self, index: int) -> None:
        """Read the message at `index`, store it, then delete it from the modem."""
        sms = self.modem.read_sms(index, timeout=self.config.command_timeout_s)
        if sms is None:
            return  # already handled (e.g. by a sweep)
        self._store_then_delete(sms)

    def sweep(self) -> int:
        """Read every stored message (AT+CMGL="ALL"); returns how many were stored."""
        self.stats.sweeps += 1
        self._next_sweep = self._clock() + self.config.sweep_interval_s
        stored = 0
        for sms in self.modem.list_sms("ALL", timeout=self.config.list_timeout_s):
            stored += self._store_then_delete(sms)
        used, capacity = self.modem.storage_use()
        if capacity and used >= capacity:
            self.stats.storage_full += 1
            log.error("gateway SMS storage full (%d/%d) although swept: is the database "
                      "refusing writes?", used, capacity)
        self._storage = (used, capacity)
        self.write_status("ok")
        return stored

    def write_status(self, state: str, detail: str = "") -> None:
        """Rewrite the status file (atomically); never lets a disk problem stop the loop."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if state == "ok":
            self._last_ok_at = now
        path = self.config.status_path
        if path is None:
            return
        status = {"state": state, "detail": detail[:300], "at": now,
                  "last_ok_at": self._last_ok_at, "port": self.modem.port,
                  "storage_used": self._storage[0], "storage_capacity": self._storage[1],
                  "pid": os.getpid(), "stats": vars(self.stats)}
        try:
            tmp = Path(path).with_suffix(".tmp")
            tmp.write_text(json.dumps(status, indent=1))
            os.replace(tmp, path)
        except OSError as err:
            log.warning("gateway status file %s not written: %s", path, err)

    def _store_then_delete(self, sms: StoredSms) -> int:
        if not sms.received:
            # An outgoing draft someone stored on the gateway's SIM: not ours to store
            # as received nor to delete. (It does take a storage slot.)
            log.warning("gateway ignores stored outgoing SMS %d (%s)", sms.index, sms.status)
            return 0
        key = (sms.sender, sms.text, sms.scts)
        if key in self._stored_not_deleted:
            # Stored already, but AT+CMGD failed (modem reboot, noise): only delete now.
            log.info("gateway SMS %d from %s was stored already: deleting it", sms.index,
                     sms.sender)
            self.modem.delete_sms(sms.index)
            self._stored_not_deleted.pop(key, None)
            self.stats.deleted += 1
            return 0
        if sms.scts is not None:
            age_s = (datetime.now(UTC) - sms.scts).total_seconds()
            if abs(age_s) > 300:
                log.warning("gateway SMS %d from %s: SMSC time stamp %s is %.0f s off",
                            sms.index, sms.sender, sms.scts.isoformat(), age_s)
        # The server's clock, not the SMSC's: an SMSC stamp in the wrong time zone must
        # not keep an SMS out of the alarm it belongs to (ingest joins by time).
        received_at = datetime.now(UTC)
        try:
            self.deliver(sms.sender, sms.text, received_at)
        except Exception:  # noqa: BLE001 - any storage failure: keep it on the modem
            self.stats.delivery_failures += 1
            log.exception("gateway could not store SMS %d from %s: kept on the modem",
                          sms.index, sms.sender)
            self._next_sweep = min(self._next_sweep, self._clock() + self._backoff())
            return 0
        self.stats.delivered += 1
        self._stored_not_deleted[key] = None
        while len(self._stored_not_deleted) > _REMEMBERED_MAX:
            self._stored_not_deleted.popitem(last=False)
        self.modem.delete_sms(sms.index)
        self._stored_not_deleted.pop(key, None)
        self.stats.deleted += 1
        return 1

    def _backoff(self) -> float:
        steps = self.config.backoff_s
        return steps[min(self._failures, len(steps) - 1)]
