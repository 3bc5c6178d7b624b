# Between alarms: a heartbeat every heartbeat_interval_s (battery, signal, serving
# cell, last fix, firmware), a low-battery message in time for a technician to act,
# and a last gasp when the battery reaches its cut-off.
import asyncio
import time

from errors import ModemError
from uplink import Uplink, take_commands

_LOW_HYSTERESIS_MV = 100


class Heartbeat:
    def __init__(self, dev):
        self._dev = dev
        self._uplink = Uplink(dev)
        self._last_beat = None
        self._last_check = None
        self.low_reported = False
        self.gasped = False

    async def run(self):
        """Runs between alarms (the app cancels it when an alarm starts)."""
        dev = self._dev
        await dev.online.wait()
        while True:
            now = time.ticks_ms()
            t = dev.timing
            if self._last_check is None or time.ticks_diff(now, self._last_check) >= t.battery_check_ms:
                self._last_check = now
                await self._check_battery()
            if self._last_beat is None or time.ticks_diff(
                    now, self._last_beat) >= t.s(dev.cfg["heartbeat_interval_s"]):
                self._last_beat = now
                await self.beat()
            await asyncio.sleep_ms(min(t.battery_check_ms, t.s(dev.cfg["heartbeat_interval_s"])))

    async def _refresh(self):
        dev = self._dev
        m = dev.modem
        for name in ("bat", "csq", "cell"):
            try:
                if name == "bat":
                    dev.bat = await dev.modem_call(m.battery_mv())
                elif name == "csq":
                    dev.csq = await dev.modem_call(m.signal())
                else:
                    dev.cell = await dev.modem_call(m.serving_cell())
            except ModemError as e:
                dev.log.error("heartbeat_" + name, e)

    def _snapshot(self):
        dev = self._dev
        return {"fix": dev.last_fix, "cell": dev.cell, "bat": dev.bat, "csq": dev.csq,
                "cmd": dev.last_cmd}

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
        return answer

    async def beat(self):
        dev = self._dev
        await self._refresh()
        answer = await self._send("heartbeat", 3)
        status = "safe_mode" if dev.safe else ("ok" if answer else "failed")
        dev.log.event("HEARTBEAT", seq=self._uplink.last_seq, status=status, bat=dev.bat)

    async def _check_battery(self):
        dev = self._dev
        try:
            mv = await dev.modem_call(dev.modem.battery_mv())
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
