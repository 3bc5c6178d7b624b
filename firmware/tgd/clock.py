# Wall-clock time (Unix seconds UTC) from the network or the board's RTC, kept with
# ticks_ms so it does not depend on the port's time epoch.
import time


class Clock:
    def __init__(self):
        self._base = None
        self._at = 0

    def set(self, unix):
        if unix is None or unix < 1577836800:  # before 2020: not a real time
            return
        self._base = int(unix)
        self._at = time.ticks_ms()

    def now(self):
        """Unix seconds UTC, or None while the handset does not know the time."""
        if self._base is None:
            return None
        return self._base + time.ticks_diff(time.ticks_ms(), self._at) // 1000

    @property
    def known(self):
        return self._base is not None
