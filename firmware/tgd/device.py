# What the alarm, the heartbeat and the app share: the modem, the journal, the
# configuration, the clock and what is known of the handset (identity, last fix).
import asyncio

FW_VERSION = "1.0.0"
_SILENT_LIMIT = 2  # consecutive time-outs before the modem is power-cycled


class Device:
    def __init__(self, modem, journal, cfg, safe, log, clock, vibrator, timing):
        self.modem = modem
        self.journal = journal
        self.cfg = cfg
        self.safe = safe            # None, or why the handset runs in safe mode
        self.log = log
        self.clock = clock
        self.vibrator = vibrator
        self.timing = timing
        self.fw = FW_VERSION
        self.ready = asyncio.Event()  # the modem answers and is initialised
        self.online = asyncio.Event()  # ... and the start-up is over (registered or not)
        self.imei = None
        self.iccid = None
        self.bat = None
        self.csq = None
        self.cell = None
        self.last_fix = None        # last GNSS fix ({"m":"G",...}), kept between alarms
        self.last_cmd = None        # id of the last server command carried out
        self.ota = None             # tgd.ota.Updates when updates are on (release_pub set)
        self._recovering = False
        # A silent modem gets power-cycled: the AT engine counts the commands in a row
        # that got no answer (a late URC, e.g. a slow network's +HTTPACTION, does not count).
        modem.on_silent = self._silence

    def _silence(self, n):
        # Sim7600.on_silent: the n-th command in a row without a final result code.
        self.log.debug("MODEM_TIMEOUT", n=n)
        if n >= _SILENT_LIMIT and not self._recovering:
            self._recovering = True
            asyncio.create_task(self._power_cycle())

    async def _power_cycle(self):
        self.log.event("ERROR", where="modem", what="silent_power_cycle")
        try:
            await self.modem.power_cycle()
        except Exception as e:  # noqa: BLE001 - logged; the next time-outs try again
            self.log.error("power_cycle", e)
        finally:
            self._recovering = False
