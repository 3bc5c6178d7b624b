# The app's once-per-boot steps (app.py): read the config, open the journal, build the
# device, resume an unfinished alarm, then bring the modem up. App.run imports this
# module for them and drops it from sys.modules: its code leaves the heap once the
# modem is up (the dial waits only for `dev.ready`, never for this module); the
# start-up task itself is app_up.modem_up.
import gc
import sys
import time

from clock import Clock
from device import FW_VERSION, Device
from journal import Journal
from vibrate import Vibrator

# The modem start-up task lives in a module of its own: while it runs (seconds, with
# sim7600_boot loaded) only its few lines stay in the heap, not this whole module.
from app_up import modem_up  # noqa: F401 - App.run starts app_boot.modem_up(app)
sys.modules.pop("app_up", None)


def _sim7600(board, log):
    from at import AtEngine
    from sim7600 import Sim7600
    return Sim7600(AtEngine(board.open_uart(), log), board, log)


def setup(app):
    board, log = app.board, app.log
    log.event("BOOT", fw=FW_VERSION, board=board.name, reset=board.reset_cause())
    root = board.mount_flash()
    import config
    cfg, problems, safe = config.load(root + "/config.json")
    del config
    sys.modules.pop("config", None)  # read once at boot: give its RAM back
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
    end_t = getattr(state, "end_t", False)  # journal_rare: when the last alarm ended
    if end_t is not False:
        # Its police call-back window goes on (callback.py): by the clock when both
        # times are known, else counted from this boot (docs/firmware.md).
        app.alarm_end = (time.ticks_ms(), end_t)
    modem = (app._make_modem or _sim7600)(board, log)
    modem.dtr_idle_ms = app.timing.dtr_idle_ms
    app.dev = Device(modem, journal, cfg, safe, log, clock, Vibrator(board.motor, log),
                     app.timing)
    modem.on_call = app._on_call
    modem.on_sms_report = app._on_sms_report
    modem.on_reboot = app._on_reboot
    modem.on_registration = app._on_registration
    modem.on_sms = app._on_sms
    if cfg["transport"] == "mqtt" and not safe:
        from mqtt_uplink import MqttLink  # only then: every module costs heap
        app.dev.mqtt = MqttLink(app.dev)
    gc.collect()
    if state.alarm is not None:
        from alarm import Alarm
        app._start_alarm(Alarm.resume(app.dev, state.alarm))
