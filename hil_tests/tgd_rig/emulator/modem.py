"""One emulated SIM7600: power, the line (pty or serial), input modes, command dispatch.

The AT commands themselves live in the cmd_*.py modules, each a table of handlers
`handler(modem, command) -> list of lines | None` (None: the handler answers later).
Faults are in faults.py. Everything here runs in the network's loop thread; the
public methods hop into it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from . import calls, cmd_basic, cmd_gnss, cmd_http, cmd_mqtt, cmd_sms, cmd_voice, faults
from .atparse import AtSyntaxError, parse_line
from .cells import rsrp_dbm, serving_cell
from .errors import CmeFailure, CmsFailure, EmulatorError, Refused
from .formats import Radio, cme_error, cms_error, frame
from .network import Network
from .ports import PtyPort, PwrkeyFifo, SerialPort
from .state import ModemSettings, SmsStore
from .track import Track, TruePosition
from .transcript import LOST, RI, RX, SLEEP, TX, WAKE, Transcript
from .uart import Uart

BOOT_URCS = b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"
BOOT_URCS_NO_SIM = b"\r\nRDY\r\n"

OFF, BOOTING, ON = "off", "booting", "on"
MODE_COMMAND, MODE_PROMPT_WAIT, MODE_SMS_TEXT, MODE_DATA = "command", "prompt", "text", "data"

_MAX_LINE = 1024
DTR_SEEN_LATE_S = 0.01

Handler = Callable[["Sim7600Emulator", Any], "list[str] | None"]
COMMANDS: dict[str, Handler] = {}
for _table in (cmd_basic.COMMANDS, cmd_gnss.COMMANDS, cmd_voice.COMMANDS, cmd_sms.COMMANDS,
               cmd_http.COMMANDS, cmd_mqtt.COMMANDS):
    COMMANDS.update(_table)


class Sim7600Emulator:
    def __init__(
        self,
        net: Network,
        msisdn: str,
        imei: str = "866123045678901",
        iccid: str = "8968701000000123456F",
        imsi: str = "546010000123456",
        track: Track | None = None,
        indoor: bool = False,
        rat: str = "LTE",
        sms_capacity: int = 30,
        battery_mv: int = 4000,
        name: str | None = None,
    ):
        if rat not in ("LTE", "WCDMA", "GSM"):
            raise ValueError(f"rat must be LTE, WCDMA or GSM, got {rat!r}")
        if not msisdn or not set(msisdn.lstrip("+")) <= set("0123456789"):
            raise ValueError(f"msisdn must be digits with an optional leading +, got {msisdn!r}")
        if len(imei) != 15 or not imei.isdigit():
            raise ValueError(f"imei must be 15 digits, got {imei!r}")
        if not 18 <= len(iccid) <= 22 or not iccid.isalnum():
            raise ValueError(f"iccid must be 18-22 digits or hex letters, got {iccid!r}")
        if not imsi.isdigit() or not 6 <= len(imsi) <= 15:
            raise ValueError(f"imsi must be 6-15 digits, got {imsi!r}")
        self.net = net
        self.msisdn = msisdn
        self.imei = imei
        self.iccid = iccid
        self.imsi = imsi
        self.track = track or Track.fixed(-22.2758, 166.4580)
        self.indoor = indoor
        self.rat = rat
        self.battery_mv = battery_mv
        self.clir = False  # this subscriber's number is withheld from those it calls
        self.temperature_c = 29
        self.name = name or msisdn
        self.sms_store = SmsStore(sms_capacity)
        self.settings = ModemSettings()
        self.faults = faults.FaultState()
        self.transcript = Transcript()
        self.power = OFF
        self.sim_present = True
        self.port: str | None = None
        self.pwrkey_path: str | None = None
        self.reg_stat = 0  # 0 not registered, 1 home, 2 searching, 3 denied
        self.calls: list[Any] = []  # state.Call; two only when one is held (second_call hold)
        self.last_fix_at: float | None = None  # monotonic, for hot starts
        self._t0 = time.monotonic()
        self._epoch = 0  # bumped at every power change: stale timers do nothing
        self._line: PtyPort | SerialPort | None = None
        self._pwrkey: PwrkeyFifo | None = None
        self._pwrkey_timer: asyncio.TimerHandle | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._attach_timer: asyncio.TimerHandle | None = None
        self._serving: tuple[int, int] | None = None  # (lac, ci) last reported
        self._tmpdir: str | None = None
        self._uart: Uart | None = None
        self._mode = MODE_COMMAND
        self._line_buf = bytearray()
        self._busy = False
        self._held_input = bytearray()
        self._text_buf = bytearray()
        self._text_done: Callable[[bytes | None, bool], None] | None = None
        self._early_text = False
        self._early_end: int | None = None
        self._data_left = 0
        self._data_done: Callable[[bytes | None], None] | None = None
        self._data_timer: asyncio.TimerHandle | None = None
        self.silent_until = 0.0
        # Sleep mode: DTR as the host drives it (the FIFO at dtr_path, or set_dtr()).
        self.dtr_high = False
        self.asleep = False
        self.dtr_path: str | None = None
        self._dtr: PwrkeyFifo | None = None
        self._sleep_timer: asyncio.TimerHandle | None = None
        self._listen_at = 0.0  # monotonic: DTR fell, the UART listens from then on

    # == public API (any thread) ===============================================
    def open(
        self, pwrkey_fifo: bool = True, serial_url: str | None = None, baudrate: int = 115200
    ) -> None:
        """Create the pty (self.port) or open a real serial port, and the PWRKEY FIFO."""
        if self._line is not None:
            raise EmulatorError(f"{self.name}: already open")
        self.net.call_in_loop(self._open, pwrkey_fifo, serial_url, baudrate)

    def close(self) -> None:
        if self._line is None:
            return
        self.net.call_in_loop(self._close)

    def power_on(self) -> None:
        """As if PWRKEY had been pulsed: boot URCs after timing.boot_s."""
        self.net.call_in_loop(self._power_on, "boot_s")

    def power_off(self) -> None:
        """Power removed or switched off: everything volatile is lost."""
        self.net.call_in_loop(self._power_off, "power_off")

    def set_dtr(self, high: bool) -> None:
        """Drive the DTR line (as the host's FIFO at dtr_path does with b"1"/b"0")."""
        self.net.call_in_loop(self._on_dtr, high)

    def schedule(self, at_s: float, name: str, **params: Any) -> None:
        """Fault `name` at `at_s` wall-clock seconds after open() (see faults.py)."""
        faults.validate(name, params)
        self.net.call_in_loop(self._schedule_fault, at_s, name, params)

    def inject(self, name: str, **params: Any) -> None:
        """Fault `name` now."""
        faults.validate(name, params)
        self.net.call_in_loop(self._apply_fault, name, params)

    def flush_host_input(self) -> None:
        """Forget what the host has not read yet (after killing and restarting the host)."""
        if self._line is not None:
            self.net.call_in_loop(self._line.flush_input_of_host)

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self._t0

    def true_position(self) -> TruePosition:
        return self.track.at(time.monotonic() - self._t0)

    def true_position_at(self, monotonic_t: float) -> TruePosition:
        """Where the handset really was at time.monotonic() == monotonic_t."""
        return self.track.at(monotonic_t - self._t0)

    # == loop side ==============================================================
    def _open(self, pwrkey_fifo: bool, serial_url: str | None, baudrate: int) -> None:
        loop = self.net.loop
        self.net.attach(self)
        self._t0 = time.monotonic()
        self.transcript.t0 = self._t0
        def from_port(data: bytes) -> None:
            if self._uart is not None:
                self._uart.on_port_bytes(data)

        if serial_url:
            self._line = SerialPort(loop, from_port, serial_url, baudrate)
        else:
            self._line = PtyPort(loop, from_port)
        self._uart = Uart(
            loop, self._line, lambda: self.net.timing.uart_bps, lambda: self.faults.split,
            self.net.rng, self._receive, self.transcript.note,
        )
        self.port = self._line.path
        if pwrkey_fifo:
            self._tmpdir = tempfile.mkdtemp(prefix="sim7600-")
            path = os.path.join(self._tmpdir, "pwrkey")
            self._pwrkey = PwrkeyFifo(loop, path, self._on_pwrkey)
            self.pwrkey_path = path
            path = os.path.join(self._tmpdir, "dtr")
            self._dtr = PwrkeyFifo(loop, path, self._on_dtr)  # b"1": DTR high
            self.dtr_path = path
        self.transcript.note(f"open {self.port}")

    def _close(self) -> None:
        self._power_off("close")
        if self._pwrkey:
            self._pwrkey.close()
            self._pwrkey = None
        if self._dtr:
            self._dtr.close()
            self._dtr = None
            self.dtr_path = None
        if self._tmpdir:
            try:
                os.rmdir(self._tmpdir)
            except OSError:
                pass
            self._tmpdir = None
        if self._uart:
            self._uart.close()
            self._uart = None
        if self._line:
            self._line.close()
            self._line = None
        self.port = None
        self.pwrkey_path = None
        self.net.detach(self)

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        """fn(*args) after delay, unless the modem lost power or rebooted meanwhile."""
        epoch = self._epoch

        def guarded() -> None:
            if self._epoch == epoch:
                fn(*args)

        return self.net.later(delay, guarded)

    def draw(self, name: str) -> float:
        return self.net.draw(name)

    # -- power -------------------------------------------------------------------
    def _on_pwrkey(self, low: bool) -> None:
        if self._pwrkey_timer:
            self._pwrkey_timer.cancel()
            self._pwrkey_timer = None
        self.transcript.note(f"PWRKEY {'low' if low else 'released'} (power {self.power})")
        if not low:
            return
        t = self.net.timing
        if self.power == OFF:
            self._pwrkey_timer = self.net.later(t.pwrkey_on_s, self._power_on, "boot_s")
        else:
            self._pwrkey_timer = self.net.later(t.pwrkey_off_s, self._power_off, "pwrkey")

    def _power_on(self, delay_name: str) -> None:
        if self.power != OFF:
            return
        self._epoch += 1
        self.power = BOOTING
        self.silent_until = 0.0
        self.transcript.note("power on: booting")
        self.later(self.draw(delay_name), self._boot_done)

    def _boot_done(self) -> None:
        self.power = ON
        self.settings = ModemSettings()
        self._reset_input()
        self.transcript.note("boot done")
        self.net.event("modem_boot", modem=self.msisdn)
        self.emit(BOOT_URCS if self.sim_present else BOOT_URCS_NO_SIM)
        self.reg_stat = 2 if self.sim_present else 0
        self._attach_timer = None
        self.update_registration()
        self._schedule_tick()

    def _power_off(self, reason: str) -> None:
        if self._pwrkey_timer and reason != "pwrkey":
            self._pwrkey_timer.cancel()
            self._pwrkey_timer = None
        was = self.power
        self._epoch += 1
        self.power = OFF
        self.silent_until = 0.0
        calls.drop_all_calls(self, "caller_lost")
        cmd_mqtt.power_lost(self)
        self.settings = ModemSettings()
        self.reg_stat = 0
        self._attach_timer = None
        self._serving = None
        self.last_fix_at = None
        self._reset_input()
        self._drop_pending_output()
        self._end_sleep("power off")
        if self._tick:
            self._tick.cancel()
            self._tick = None
        if was != OFF:
            self.transcript.note(f"power off ({reason})")
            self.net.event("modem_off", modem=self.msisdn, reason=reason)

    def reboot(self, reason: str, delay_name: str = "reset_s") -> None:
        """State lost, RDY again after the reset delay."""
        self._power_off(reason)
        self._power_on(delay_name)

    # -- registration and radio ---------------------------------------------------
    def radio(self) -> Radio | None:
        """The serving cell as measured now, or None without service."""
        if self.power != ON or not self.sim_present or self.faults.no_service:
            return None
        pos = self.true_position()
        found = serving_cell(self.net.cells, pos.lat, pos.lon, self.rat)
        if found is None:
            return None
        cell, distance = found
        rsrp = self.faults.weak_rsrp_dbm
        return Radio(cell, rsrp if rsrp is not None else rsrp_dbm(cell, distance))

    @property
    def registered(self) -> bool:
        return self.reg_stat in (1, 5)

    @property
    def data_up(self) -> bool:
        """Packet data works: registered, not cut by the data_down fault, and PDP context 1
        names the APN the network needs."""
        need = self.net.required_apn
        return (self.registered and not self.faults.data_down
                and (need is None or self.settings.apn.get(1, ("", ""))[1] == need))

    def _desired_stat(self) -> int:
        if not self.sim_present:
            return 0
        if self.faults.denied:
            return 3
        if self.radio() is None:
            return 2  # searching
        return 1

    def update_registration(self) -> None:
        """Recompute the registration status; URCs when it changed.

        Gaining registration (at boot or when coverage comes back) takes
        timing.register_s, during which the modem is searching (stat 2).
        """
        if self.power != ON:
            return
        desired = self._desired_stat()
        if desired == 1 and self.reg_stat != 1:
            if self._attach_timer is None:
                self._attach_timer = self.later(self.draw("register_s"), self._attach_done)
            desired = 2
        elif desired != 1 and self._attach_timer is not None:
            self._attach_timer.cancel()
            self._attach_timer = None
        self._set_stat(desired)
        self._note_cell_change()

    def _note_cell_change(self) -> None:
        """A registered modem moving to another cell reports it (n=2 URCs carry lac/ci)."""
        radio = self.radio() if self.registered else None
        cell = (radio.cell.area, radio.cell.ci) if radio else None
        if cell != self._serving and cell is not None and self._serving is not None:
            self.net.event("cell_change", modem=self.msisdn, lac=cell[0], ci=cell[1])
            cmd_basic.registration_urcs(self, only_with_cell=True)
        self._serving = cell

    def _attach_done(self) -> None:
        self._attach_timer = None
        if self._desired_stat() == 1:
            self._set_stat(1)
            self._note_cell_change()  # the first serving cell
        else:
            self.update_registration()

    def _set_stat(self, new: int) -> None:
        if new == self.reg_stat:
            return
        self.reg_stat = new
        if self.registered and self.settings.ctzu == 1:
            self.settings.clock_synced = True  # NITZ comes with the registration
        self.net.event("registration", modem=self.msisdn, stat=new)
        cmd_basic.registration_urcs(self)
        if not self.registered:
            calls.drop_calls_on_radio_loss(self)
            cmd_http.radio_lost(self)
            cmd_mqtt.radio_lost(self)

    def _schedule_tick(self) -> None:
        self._tick = self.later(1.0, self._on_tick)

    def _on_tick(self) -> None:
        # The handset moves: coverage and the serving cell follow its true position.
        self.update_registration()
        self._schedule_tick()

    # -- sleep mode (AT+CSCLK=1) -------------------------------------------------------
    def _on_dtr(self, high: bool) -> None:
        if high == self.dtr_high:
            return
        self.dtr_high = high
        if high:
            self.sleep_rearm()
            return
        if self._sleep_timer:
            self._sleep_timer.cancel()
            self._sleep_timer = None
        # It listens dtr_wake_s after the edge. The edge is seen when the loop reads the
        # FIFO, up to a few ms late on a loaded PC while the host's 20 ms already run:
        # DTR_SEEN_LATE_S of that is forgiven (a host that does not wait at all still
        # loses its bytes: they follow the edge by far less).
        self._listen_at = time.monotonic() + max(0.0, self.net.timing.dtr_wake_s - DTR_SEEN_LATE_S)
        self._end_sleep("DTR low")

    def _end_sleep(self, why: str) -> None:
        if self._sleep_timer and why == "power off":
            self._sleep_timer.cancel()
            self._sleep_timer = None
        if self.asleep:
            self.asleep = False
            self.transcript.add(WAKE, why.encode())

    def sleep_rearm(self) -> None:
        """(Re)start the idle time after which the module sleeps: CSCLK=1, DTR high."""
        if self._sleep_timer:
            self._sleep_timer.cancel()
            self._sleep_timer = None
        if self.power == ON and self.settings.csclk == 1 and self.dtr_high and not self.asleep:
            self._sleep_timer = self.later(self.draw("sleep_after_s"), self._fall_asleep)

    def _fall_asleep(self) -> None:
        self._sleep_timer = None
        if self._busy or self._mode != MODE_COMMAND or self.calls:
            self.sleep_rearm()  # a command, a prompt or a call in progress: not idle
            return
        if self.power == ON and self.settings.csclk == 1 and self.dtr_high:
            self.asleep = True
            self.transcript.add(SLEEP, b"CSCLK=1, DTR high, idle")

    def _listening(self) -> bool:
        return not self.asleep and time.monotonic() >= self._listen_at

    # -- output ---------------------------------------------------------------------
    def emit(self, data: bytes) -> None:
        """Bytes to the host, unless the modem is off or silent."""
        if self.power != ON or self.is_silent():
            self.transcript.add(LOST, b"[not sent] " + data)
            return
        if self.asleep:
            # A URC while asleep: RI pulses low (~120 ms for an SMS, ~60 ms otherwise) to
            # wake the host, and the URC goes out; the module stays in sleep mode.
            self.transcript.add(RI, b"120 ms" if b"+CMTI:" in data else b"60 ms")
        else:
            self.sleep_rearm()
        self.transcript.add(TX, data)
        if self._uart is not None:
            self._uart.send(data)

    def urc(self, line: str) -> None:
        self.emit(frame(line))

    def respond(self, lines: list[str]) -> None:
        """A complete response: info lines then a final result, each framed."""
        framed = [frame(line) for line in lines]
        injected = self.faults.take("urc_in_response")
        if injected is not None:
            # A URC between the lines of a response (after the first one).
            framed.insert(1 if len(framed) > 1 else 0, frame(injected["urc"]))
        self.emit(b"".join(framed))

    def error_line(self, exc: Exception) -> str:
        if isinstance(exc, CmeFailure):
            return cme_error(exc.code, self.settings.cmee)
        if isinstance(exc, CmsFailure):
            return cms_error(exc.code, self.settings.cmee)
        return "ERROR"

    def _drop_pending_output(self) -> None:
        """Power cut: what was still queued for the line never goes out."""
        if self._uart is not None:
            for data in self._uart.drop_pending():
                self.transcript.add(LOST, b"[not sent] " + data)

    def is_silent(self) -> bool:
        return time.monotonic() < self.silent_until

    # -- input ----------------------------------------------------------------------
    def _reset_input(self) -> None:
        self._mode = MODE_COMMAND
        self._line_buf.clear()
        self._busy = False
        self._held_input.clear()
        self._text_buf.clear()
        self._text_done = None
        self._data_done = None
        if self._data_timer:
            self._data_timer.cancel()
            self._data_timer = None

    def _receive(self, data: bytes) -> None:
        if self.power != ON or self.is_silent():
            self.transcript.add(LOST, data)
            return
        if not self._listening():
            # Asleep (or DTR fell less than 20 ms ago): the UART does not listen.
            self.transcript.add(LOST, data)
            return
        self.sleep_rearm()
        self.transcript.add(RX, data)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self._busy and self._mode == MODE_COMMAND:
                # A command is still executing: the UART buffers what follows.
                self._held_input.extend(data[i:])
                return
            if self._mode == MODE_COMMAND:
                i = self._feed_command(data, i)
            elif self._mode == MODE_PROMPT_WAIT:
                # Bytes before the prompt are lost; a Ctrl-Z/Esc among them still ends
                # the input (with the `early` flag), so the command fails visibly.
                self._early_text = True
                rest = data[i:]
                self.transcript.note(f"input before the prompt dropped: {rest!r}")
                for terminator in (0x1A, 0x1B):
                    if terminator in rest and self._early_end is None:
                        self._early_end = terminator
                return
            elif self._mode == MODE_SMS_TEXT:
                i = self._feed_text(data, i)
            else:
                i = self._feed_data(data, i)

    def _feed_command(self, data: bytes, i: int) -> int:
        echo = bytearray()
        while i < len(data) and self._mode == MODE_COMMAND and not self._busy:
            b = data[i]
            i += 1
            if self.settings.echo:
                echo.append(b)
            if b == 0x0D:
                if echo:
                    self.emit(bytes(echo))
                    echo.clear()
                line = self._line_buf.decode("latin-1")
                self._line_buf.clear()
                self._run_line(line)
            elif b == 0x0A:
                continue  # LF after CR (or alone) is not part of a command
            elif b == 0x08:
                if self._line_buf:
                    self._line_buf.pop()
            elif len(self._line_buf) < _MAX_LINE:
                self._line_buf.append(b)
        if echo:
            self.emit(bytes(echo))
        return i

    def _run_line(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        if text[:2].upper() != "AT":
            self.transcript.note(f"ignored non-AT line {text!r}")
            return
        try:
            command = parse_line(text)
            handler = COMMANDS.get(command.name)
            if handler is None:
                raise Refused(f"unknown command {command.name}")
            lines = handler(self, command)
        except (AtSyntaxError, Refused, CmeFailure, CmsFailure) as exc:
            lines = [self.error_line(exc)]
        if lines is not None:
            self.respond(lines)

    # SMS text after the `> ` prompt ------------------------------------------------
    def start_text_input(self, done: Callable[[bytes | None, bool], None]) -> None:
        """Show the `> ` prompt after timing.prompt_s, then collect text up to Ctrl-Z.

        done(text, early) gets None when Esc cancelled; `early` says bytes came before the prompt.
        """
        self._busy = True
        self._mode = MODE_PROMPT_WAIT
        self._early_text = False
        self._early_end = None
        self._text_buf.clear()
        self._text_done = done

        def prompt() -> None:
            self._mode = MODE_SMS_TEXT
            self.emit(b"\r\n> ")
            if self._early_end is not None:
                self._feed_text(bytes([self._early_end]), 0)

        self.later(self.net.timing.prompt_s, prompt)

    def _feed_text(self, data: bytes, i: int) -> int:
        echo = bytearray()
        while i < len(data):
            b = data[i]
            i += 1
            if b in (0x1A, 0x1B):
                if echo and self.settings.echo:
                    self.emit(bytes(echo))
                done = self._text_done
                text = bytes(self._text_buf) if b == 0x1A else None
                self._text_buf.clear()
                self._text_done = None
                self._mode = MODE_COMMAND
                if done:
                    done(text, self._early_text)
                return i
            echo.append(b)
            self._text_buf.append(b)
        if echo and self.settings.echo:
            self.emit(bytes(echo))
        return i

    # HTTPDATA download -------------------------------------------------------------
    def start_data_input(
        self, length: int, timeout_s: float, done: Callable[[bytes | None], None],
        prompt_bytes: bytes | None = None,
    ) -> None:
        """DOWNLOAD (or `prompt_bytes`, e.g. the `>` of AT+CMQTTTOPIC), then exactly `length`
        raw bytes within timeout_s (done gets None on timeout)."""
        self._busy = True
        self._mode = MODE_PROMPT_WAIT
        self._early_text = False
        self._early_end = None
        self._text_buf.clear()
        self._data_left = length
        self._data_done = done

        def prompt() -> None:
            self._mode = MODE_DATA
            self.emit(frame("DOWNLOAD") if prompt_bytes is None else prompt_bytes)
            self._data_timer = self.later(timeout_s, self._data_timeout)

        self.later(self.net.timing.prompt_s, prompt)

    def _feed_data(self, data: bytes, i: int) -> int:
        take = min(self._data_left, len(data) - i)
        self._text_buf.extend(data[i : i + take])
        self._data_left -= take
        i += take
        if self._data_left == 0:
            self._finish_data(bytes(self._text_buf))
        return i

    def _data_timeout(self) -> None:
        self.transcript.note(f"data input timed out with {self._data_left} bytes missing")
        self._finish_data(None)

    def _finish_data(self, payload: bytes | None) -> None:
        if self._data_timer:
            self._data_timer.cancel()
            self._data_timer = None
        done = self._data_done
        self._data_done = None
        self._text_buf.clear()
        self._mode = MODE_COMMAND
        if done:
            done(payload)

    def finish(self, lines: list[str]) -> None:
        """The final answer of a command that was executing (busy): then read on."""
        self.respond(lines)
        self._busy = False
        self._mode = MODE_COMMAND
        if self._held_input:
            held = bytes(self._held_input)
            self._held_input.clear()
            self._feed(held)

    # -- faults -----------------------------------------------------------------------
    def _schedule_fault(self, at_s: float, name: str, params: dict[str, Any]) -> None:
        delay = self._t0 + at_s - time.monotonic()
        self.net.later(delay, self._apply_scheduled_fault, name, params)

    def _apply_scheduled_fault(self, name: str, params: dict[str, Any]) -> None:
        if self._line is None:
            return  # closed before its time came
        self._apply_fault(name, params)

    def _apply_fault(self, name: str, params: dict[str, Any]) -> None:
        if self._line is None:
            raise EmulatorError(f"{self.name}: fault {name} on a closed modem")
        self.transcript.note(f"fault {name} {params}")
        self.net.event("fault", modem=self.msisdn, name=name, **params)
        faults.apply(self, name, params)

    # -- incoming from the network ------------------------------------------------------
    def receive_sms(self, sender: str, text: str, scts_epoch: float) -> bool:
        return cmd_sms.receive(self, sender, text, scts_epoch)

    def sms_report(self, mr: int, to: str, scts: float, dt: float, st: int) -> bool:
        return cmd_sms.report(self, mr, to, scts, dt, st)



