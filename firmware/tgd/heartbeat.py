# Between alarms: a heartbeat every heartbeat_interval_s (battery, signal, serving
# cell, last fix, firmware), a low-battery message in time for a technician to act,
# and a last gasp when the battery reaches its cut-off.
import asyncio
import time

from tgd.modem.errors import ModemError
from tgd.uplink.commands import take_commands
from tgd.uplink.link import Uplink

_LOW_HYSTERESIS_MV = 100


class Heartbeat:
    def __init__(self, dev, board=None, sleep_stats=None):
        self._dev = dev
        self._sleep = sleep_stats  # the app's [ms asleep, since]
        self._board_mv = getattr(board, "battery_mv", None)
        self._adc = self._read_adc() is not None  # the board reads VBAT itself
        self._uplink = Uplink(dev)
        self._last_beat = None
        self._last_check = None
        self.low_reported = False
        self.gasped = False

    async def run(self):
        """Runs between alarms (the app cancels it when an alarm starts).

        The battery is read on the board's ADC when it has one (free: checked every
        battery_check_ms, 60 s); otherwise through the modem (AT+CBC wakes it), and then
        only with each heartbeat. Between the two it sleeps until the next one is due.
        """
        dev = self._dev
        await dev.online.wait()
        while True:
            now = time.ticks_ms()
            t = dev.timing
            interval = t.s(dev.cfg["heartbeat_interval_s"])
            try:
                await self._due(now, interval)
            except Exception as e:  # noqa: BLE001 - a MemoryError building a beat once ended
                dev.log.error("heartbeat", e)  # the beats for good (campaign seed 10): not now
            now = time.ticks_ms()
            wait = 0 if self._last_beat is None else interval - time.ticks_diff(now, self._last_beat)
            if self._adc:
                wait = min(wait, t.battery_check_ms - time.ticks_diff(now, self._last_check))
            await asyncio.sleep_ms(max(0, wait))

    async def _due(self, now, interval):
        dev = self._dev
        if self._last_beat is None or time.ticks_diff(now, self._last_beat) >= interval:
            self._last_beat = now
            self._last_check = now
            await self._check_battery()  # a low battery / last gasp goes before the beat
            if await self.beat() and getattr(dev, "ota", None) is not None:
                try:
                    await dev.ota.step()  # an update offered: download while idle (tgd/ota/)
                except Exception as e:  # noqa: BLE001 - even a MemoryError: beats go on
                    dev.log.error("ota", e)
        elif self._adc and time.ticks_diff(now, self._last_check) >= dev.timing.battery_check_ms:
            self._last_check = now
            await self._check_battery()

    async def _refresh(self):
        dev = self._dev
        m = dev.modem
        for name in ("csq", "cell"):  # dev.bat: _check_battery has just read it
            try:
                if name == "csq":
                    dev.csq = await m.signal()
                else:
                    dev.cell = await m.serving_cell()
            except ModemError as e:
                dev.log.error("heartbeat_" + name, e)

    def _snapshot(self):
        dev = self._dev
        return {"fix": dev.last_fix, "cell": dev.cell, "bat": dev.bat, "csq": dev.csq,
                "cmd": dev.last_cmd, "ota": dev.ota.report() if getattr(dev, "ota", None) is not None else None}

    async def _send(self, mtype, attempts):
        dev = self._dev
        if dev.safe:
            return None
        tries = [0]

        def wanted():
            tries[0] += 1
            return tries[0] <= attempts

        answer = await self._uplink.deliver(mtype, self._snapshot, wanted,
                                            dev.timing.heartbeat_backoff_ms)
        if answer is not None and take_commands(dev, answer):
            self._last_beat = None  # `locate` between alarms: a fresh heartbeat at once
        if mtype == "heartbeat" and answer is not None and getattr(dev, "ota", None) is not None \
                and answer.get("update") is not None:
            dev.ota.offer(answer["update"])  # only a heartbeat's answer offers one (kept)
        return answer

    async def beat(self):
        dev = self._dev
        await self._refresh()
        answer = await self._send("heartbeat", 3)
        status = "safe_mode" if dev.safe else ("ok" if answer else "failed")
        st = self._sleep
        if st is None:
            dev.log.event("HEARTBEAT", seq=self._uplink.last_seq, status=status, bat=dev.bat)
            return answer is not None
        # Time asleep since the last HEARTBEAT line, of `span` ms (tgd-rig power reads them).
        now = time.ticks_ms()
        dev.log.event("HEARTBEAT", seq=self._uplink.last_seq, status=status, bat=dev.bat,
                      slept=st[0], span=time.ticks_diff(now, st[1]))
        st[0] = 0
        st[1] = now
        return answer is not None

    def _read_adc(self):
        if self._board_mv is None:
            return None
        try:
            return self._board_mv()
        except Exception as e:  # noqa: BLE001 - a bad ADC read: the modem tells instead
            self._dev.log.error("battery_adc", e)
            return None

    async def _check_battery(self):
        dev = self._dev
        mv = self._read_adc()
        if mv is None:
            try:
                mv = await dev.modem.battery_mv()
            except ModemError as e:
                dev.log.error("battery", e)
                return
        if not isinstance(mv, int):
            return
        dev.bat = mv
        cfg = dev.cfg
        if mv <= cfg["cutoff_mv"]:
            if not self.gasped:
                self.gasped = True
                dev.log.event("LAST_GASP", mv=mv)
                await self._refresh()
                await self._send("last_gasp", 2)
        elif mv < cfg["low_battery_mv"]:
            if not self.low_reported:
                self.low_reported = True
                dev.log.event("LOW_BATTERY", mv=mv)
                await self._refresh()
                await self._send("low_battery", 5)
        elif mv >= cfg["low_battery_mv"] + _LOW_HYSTERESIS_MV:
            self.low_reported = False  # charged: report the next low battery again
            self.gasped = False
