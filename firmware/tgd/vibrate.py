# The vibration motor: the handset's only feedback (no sound, no light, ever).
import asyncio

# pattern name -> (on ms, off ms, on ms, ...)
PATTERNS = {
    "short": (150,),                          # the alarm is triggered
    "help": (400, 300, 400, 300, 400),        # a police operator took the alarm
    "error": (80, 120, 80, 120, 80, 120, 80), # the handset cannot work (safe mode)
}


class Vibrator:
    """`motor(on: bool)` drives the motor; one pattern at a time."""

    def __init__(self, motor, log):
        self._motor = motor
        self._log = log
        self._lock = asyncio.Lock()

    async def play(self, name):
        steps = PATTERNS.get(name)
        if steps is None:
            self._log.error("vibrate", "unknown_pattern_" + str(name))
            return
        async with self._lock:
            self._log.event("VIBRATE", pattern=name)
            try:
                on = True
                for ms in steps:
                    self._motor(on)
                    await asyncio.sleep_ms(ms)
                    on = not on
            finally:
                self._motor(False)
