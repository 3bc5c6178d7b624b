# Wires the handset together: board, flash, configuration, journal, modem, button,
# alarm, heartbeat. The board object is the only thing that differs between an
# ESP32 and a PC (see board_*.py for the interface).
import asyncio
import gc
import time

from tgd import config
from tgd.alarm import Alarm
from tgd.button import Button, DOWN, TRIGGER, UP
from tgd import callback
from tgd.clock import Clock
from tgd.device import FW_VERSION, Device
from tgd.heartbeat import Heartbeat
from tgd.journal import Journal
from tgd.modem.at import AtEngine
from tgd.modem.sim7600 import Sim7600
from tgd.timing import Timing
from tgd.vibrate import Vibrator

_SLEEP_MAX_MS = 3600000  # with no timer at all (the board may cap it: ESP32 watchdog)


class App:
    def __init__(self, board, log, timing=None, make_modem=None):
        self.board = board
        self._make_modem = make_modem  # None: the SIM7600 on the board's UART
        self.log = log
        self.timing = timing or Timing(board.timing_scale())
        self.dev = None
        self.alarm = None
        self._heartbeat_task = None
        self._alarm_task = None
        self._tasks = []
        self.sleep_stats = [0, time.ticks_ms()]  # [ms asleep, since]: logged with HEARTBEAT
        # The last alarm's end, (ticks, Unix s or None), for the police call-back window
        # (callback.py); _setup sets it from the journal after a reboot.
        self.alarm_end = None
        self.ringing = None  # the task deciding on a ringing call (callback.py)
        self.root = None
        self.button = None
        self.ota = None  # tgd.ota.Updates: release_pub set, or updated before

    # -- start ----------------------------------------------------------------------
    async def run(self):
        self._setup()
        at = getattr(self.dev.modem, "at", None)  # absent on a scripted modem (tests)
        if at is not None:
            at.on_urc("+CLIP:", self._on_clip)  # caller id of a ringing call
        self._tasks.append(asyncio.create_task(self._button_loop()))
        self._tasks.append(asyncio.create_task(self._modem_up()))
        if self.dev.safe:
            asyncio.create_task(self.dev.vibrator.play("error"))
        if self.ota is not None and self.ota.trial:  # a new slot's first boot: its self-test
            self._tasks.append(asyncio.create_task(self.ota.boot_check()))
        # the heartbeat starts when the modem is up (_modem_up)
        try:
            await asyncio.Event().wait()  # forever; no timer, so nothing wakes the ESP32
        finally:
            self.deinit()

    def _setup(self):
        """Once per boot: read the config, open the journal, build the device, resume an
        unfinished alarm. The dial waits only for `dev.ready` (_modem_up)."""
        board, log = self.board, self.log
        log.event("BOOT", fw=FW_VERSION, board=board.name, reset=board.reset_cause())
        root = board.mount_flash()
        cfg, problems, safe = config.load(root + "/config.json")
        for key, why in problems:
            log.event("ERROR", where="config", what=key + ":" + why)
        if safe:
            log.event("SAFE_MODE", reason=safe)
        else:
            log.event("CONFIG", dev=cfg["device_id"], transport=cfg["transport"])
        journal = Journal(root, log)
        state = journal.open()
        clock = Clock()
        clock.set(board.rtc_unix())
        if state.last_end is not None:
            # Its police call-back window goes on (callback.py): by the clock when both
            # times are known, else counted from this boot (docs/firmware.md).
            self.alarm_end = (time.ticks_ms(), state.end_t)
        modem = (self._make_modem or _sim7600)(board, log)
        modem.dtr_idle_ms = self.timing.dtr_idle_ms
        modem.apn = cfg["apn"]
        self.dev = Device(modem, journal, cfg, safe, log, clock, Vibrator(board.motor, log),
                          self.timing)
        modem.on_call = self._on_call
        modem.on_sms_report = self._on_sms_report
        modem.on_reboot = self._on_reboot
        modem.on_registration = self._on_registration
        modem.on_sms = self._on_sms
        if cfg["transport"] == "mqtt" and not safe:
            # The one lazy load left: an HTTP handset never needs the MQTT link, whose
            # module holds 720 bytes of heap on the 32-bit VM at 48 KB (frozen code: its
            # dict and function objects; gc.mem_alloc() around this import after the
            # app's), 1.5 % of the heap; everything else is imported at once.
            from tgd.uplink.mqtt import MqttLink
            self.dev.mqtt = MqttLink(self.dev)
        self.root = root
        if _updated(root) or (cfg["release_pub"] and not safe):
            # Updates on: their resident part only (tgd/ota/__init__.py, a few hundred
            # bytes); a handset without a release key that never had an update pays nothing.
            from tgd.ota import Updates
            self.ota = Updates(self)
            if not safe:
                self.dev.ota = self.ota
        gc.collect()
        if state.alarm is not None:
            self._start_alarm(Alarm.resume(self.dev, state.alarm))

    async def _modem_up(self):
        """Power the modem on, then identity, network clock and registration."""
        dev, log = self.dev, self.log
        while True:
            try:
                await dev.modem.start()
                break
            except Exception as e:  # noqa: BLE001 - a modem or board fault: retry, never stop
                log.error("modem_start", e)
            await asyncio.sleep_ms(self.timing.modem_retry_ms)
        dev.ready.set()  # the alarm may dial now; the rest is nice to have
        try:
            dev.imei, dev.iccid = await dev.modem.identity()
            log.event("MODEM_READY", imei=dev.imei, iccid=dev.iccid)
        except Exception as e:  # noqa: BLE001 - even a MemoryError: READY must still come
            log.error("identity", e)
        try:
            dev.clock.set(await dev.modem.network_time())
        except Exception as e:  # noqa: BLE001
            log.error("network_time", e)
        try:
            if not await dev.modem.wait_registered(60000):
                log.event("ERROR", where="modem", what="not_registered")
        except Exception as e:  # noqa: BLE001
            log.error("registration", e)
        log.event("READY")
        dev.online.set()
        self._start_heartbeat()  # heartbeats wait for the network anyway

    def deinit(self):
        """Stop every task this app started (tests, and a restart by main.py)."""
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        for t in (self._heartbeat_task, self._alarm_task):
            if t is not None:
                t.cancel()
        self._heartbeat_task = None
        if self.alarm is not None:
            self.alarm.cancel()

    # -- button -------------------------------------------------------------------
    async def _button_loop(self):
        board = self.board
        button = Button(self.dev.cfg["trigger_hold_ms"],
                        getattr(board, "update_reset", False))  # main.boot_slot
        self.button = button
        feed = getattr(board, "watchdog_feed", None)
        sleep = getattr(board, "sleep_ms", None)
        while True:
            if feed is not None:
                feed()
            raw = True
            try:
                raw = board.button_pressed()
                ev = button.update(raw, time.ticks_ms())
            except Exception as e:  # noqa: BLE001 - a broken input must not stop the loop
                self.log.error("button", e)
                ev = None
                await asyncio.sleep_ms(1000)
            try:
                if ev == DOWN or ev == UP:
                    self.log.event("BUTTON", state=ev)
                    if ev == DOWN and hasattr(self.dev.modem, "prewake"):
                        self.dev.modem.prewake()  # DTR low now: the dial will not wait 20 ms
                elif ev == TRIGGER:
                    self._triggered()
            except Exception as e:  # noqa: BLE001 - the button must outlive any fault
                self.log.error("trigger", e)
            ms = 0
            if sleep is not None and not raw and not button.pressed:
                ms = self._idle_ms()
            if ms >= self.timing.sleep_min_ms:
                # Nothing due for ms: light sleep, woken early by the button or the modem
                # (RI / UART); then poll and debounce as usual.
                t0 = time.ticks_ms()
                sleep(ms)
                self.sleep_stats[0] += time.ticks_diff(time.ticks_ms(), t0)
                await asyncio.sleep_ms(0)
            else:
                await asyncio.sleep_ms(Button.POLL_MS)

    def idle(self):
        """No alarm open and the button up: an update downloads, installs and resets
        only then (a hold under way may become an alarm)."""
        if self.alarm is not None and self.alarm.is_open:
            return False
        if self.button is not None and self.button.pressed:
            return False
        try:
            return not self.board.button_pressed()
        except Exception:  # noqa: BLE001 - a broken input: the button loop logs it
            return True

    def release_ended(self):
        """Let an ended alarm's objects go (tgd/ota/run.py: Ed25519 wants the heap). Its journal
        has everything; a late SMS report for it is then only logged by the driver."""
        if self.alarm is None or self.alarm.is_open:
            return False
        self.alarm = None
        return True

    def _idle_ms(self):
        # How long nothing is due: 0 during an alarm or an exchange with the modem,
        # else the time to the first timer in asyncio's queue (tasks waiting for I/O
        # or an event are not in it: I/O wakes the board, events follow other tasks).
        if self.alarm is not None and self.alarm.is_open:
            return 0
        busy = getattr(self.dev.modem, "busy", None)
        if busy is not None and busy():
            return 0
        nxt = asyncio.core._task_queue.peek()  # type: ignore[attr-defined]
        if nxt is None:
            return _SLEEP_MAX_MS
        return min(_SLEEP_MAX_MS, time.ticks_diff(nxt.ph_key, time.ticks_ms()))

    def _triggered(self):
        if self.alarm is not None and self.alarm.is_open:
            self.alarm.repress()  # no second alarm: the open one again, its call if dropped
            return
        self._new_alarm()

    def _new_alarm(self):
        alarm = Alarm.trigger(self.dev)  # journaled before anything else
        self._start_alarm(alarm)
        asyncio.create_task(self.dev.vibrator.play("short"))

    # -- alarm --------------------------------------------------------------------
    def _start_alarm(self, alarm):
        self.alarm = alarm
        if hasattr(self.dev.modem, "stay_awake"):
            self.dev.modem.stay_awake(True)  # DTR low, no sleep, until the alarm ends
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()  # the alarm has the UART to itself
            self._heartbeat_task = None
        self._alarm_task = asyncio.create_task(self._run_alarm(alarm))

    async def _run_alarm(self, alarm):
        try:
            await alarm.run()
        except Exception as e:  # noqa: BLE001 - never a crash: log, the app goes on
            self.log.error("alarm", e)
        if not alarm.is_open:
            # its "end" journal record has the time too: the window outlives a reboot
            self.alarm_end = (time.ticks_ms(), getattr(alarm, "end_t", None))
            if alarm.hold_pending and self.alarm is alarm:
                # She held the button and the alarm ended (the operator's close overtook
                # the redial) before 17 was dialled for that hold: a hold is never lost,
                # it opens a new alarm (campaign seed 13, mpt_repress.py).
                self.log.event("BUTTON", state="held", alarm="ended_before_dial", aid=alarm.aid)
                self._new_alarm()
                return
            if hasattr(self.dev.modem, "stay_awake"):
                self.dev.modem.stay_awake(False)
            self._start_heartbeat()

    def _start_heartbeat(self):
        if self._heartbeat_task is None and (self.alarm is None or not self.alarm.is_open):
            beat = Heartbeat(self.dev, self.board, self.sleep_stats)
            self._heartbeat_task = asyncio.create_task(beat.run())

    # -- modem callbacks ----------------------------------------------------------
    def _on_call(self, state, reason=None):
        if self.alarm is not None and self.alarm.is_open:
            self.alarm.on_call(state, reason)

    def _on_clip(self, line):
        # callback.py answers or rejects the call
        if self.ringing is None:
            self.ringing = asyncio.create_task(callback.handle(self, line))

    def _on_sms_report(self, mr, st):
        if self.alarm is not None:
            self.alarm.on_sms_report(mr, st)

    def _on_reboot(self):
        # the driver logs MODEM_REBOOT and re-initialises the modem
        if self.alarm is not None and self.alarm.is_open:
            self.alarm.on_reboot()

    def _on_registration(self, registered):
        self.log.debug("REGISTRATION", registered=int(bool(registered)))

    def _on_sms(self, index):
        self.log.debug("SMS_IN", index=index)


def _updated(root):
    try:
        __import__("os").stat(root + "/ota")
        return True
    except OSError:
        return False


def _sim7600(board, log):
    return Sim7600(AtEngine(board.open_uart(), log), board, log)
