"""What crossed the modem's line, for failure messages."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

RX = "rx"  # from the host (firmware) to the modem
TX = "tx"  # from the modem to the host
LOST = "lost"  # received while off, booting or silent: dropped as the real modem would
NOTE = "note"  # an emulator event (power, fault), text in `data`
# Sleep mode (AT+CSCLK=1): the module went to sleep / woke up, and the RI pulses it gave
# while asleep; text in `data` (tgd-rig power measures the modem's sleep from these).
SLEEP = "sleep"
WAKE = "wake"
RI = "ri"
_TEXT = (NOTE, SLEEP, WAKE, RI)


@dataclass(frozen=True)
class Entry:
    t: float  # time.monotonic()
    direction: str
    data: bytes


class Transcript:
    def __init__(self, maxlen: int = 20000):
        self._entries: deque[Entry] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.t0 = time.monotonic()

    def add(self, direction: str, data: bytes) -> None:
        with self._lock:
            self._entries.append(Entry(time.monotonic(), direction, data))

    def note(self, text: str) -> None:
        self.add(NOTE, text.encode())

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)

    def bytes_sent(self) -> bytes:
        """Everything the modem wrote to the host, concatenated."""
        return b"".join(e.data for e in self.entries() if e.direction == TX)

    def dump(self, path: str) -> str:
        """Write the whole transcript to `path` (for a failure message to point at)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.format(None) + "\n")
        return path

    def format(self, last: int | None = 60) -> str:
        """Consecutive chunks of one direction merged, one line each, oldest first."""
        merged: list[tuple[float, str, bytes]] = []
        for e in self.entries():
            if merged and merged[-1][1] == e.direction and e.direction not in _TEXT:
                t, d, data = merged[-1]
                merged[-1] = (t, d, data + e.data)
            else:
                merged.append((e.t, e.direction, e.data))
        if last is not None:
            merged = merged[-last:]
        lines = []
        for t, direction, data in merged:
            text = data.decode() if direction in _TEXT else repr(data)[2:-1]
            lines.append(f"{t - self.t0:9.3f} {direction:4} {text}")
        return "\n".join(lines)
