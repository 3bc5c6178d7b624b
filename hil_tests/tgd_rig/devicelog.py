"""The device log: the firmware's event lines, parsed, kept, and waited on.

The firmware prints one event per line (docs/interfaces.md §2):
``<ticks_ms> <EVENT> key=value ...``. A reader thread feeds every line it gets
(from the firmware process's stdout, or from a board's console port) into a
`DeviceLog`; tests wait on it with `expect()`, which fails with the recent lines
and the path of the full log.

Lines that are not events (a MicroPython traceback, a banner) are kept as they
are, with `event=None`, so they show in the log and in failure messages.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import ExpectTimeout, FirmwareExited

_EVENT_LINE = re.compile(r"^(\d+) ([A-Z][A-Z0-9_]*)((?: \S+)*)\s*$")
RECENT_LINES = 30


@dataclass(frozen=True)
class LogLine:
    index: int          # position in this log, from 0
    t: float            # host time.monotonic() when the line arrived
    raw: str
    ticks_ms: int | None = None
    event: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)

    def int(self, key: str) -> int:
        """A field as an integer; ValueError/KeyError if absent or not a number."""
        return int(self.fields[key])

    def matches(self, event: str | None, fields: dict[str, str],
                where: Callable[[LogLine], bool] | None) -> bool:
        if event is not None and self.event != event:
            return False
        for key, value in fields.items():
            if self.fields.get(key) != str(value):
                return False
        return where is None or bool(where(self))


def parse_log_line(raw: str) -> tuple[int | None, str | None, dict[str, str]]:
    """Split one console line into (ticks_ms, EVENT, fields); (None, None, {}) if not an event.

    A word without `=` after the event is kept as a field with an empty value, so
    nothing the firmware printed is dropped.
    """
    m = _EVENT_LINE.match(raw.rstrip("\r\n"))
    if not m:
        return None, None, {}
    fields: dict[str, str] = {}
    for word in m.group(3).split():
        key, sep, value = word.partition("=")
        fields[key] = value if sep else ""
    return int(m.group(1)), m.group(2), fields


class DeviceLog:
    """Every line one handset printed, across firmware restarts, in arrival order."""

    def __init__(self, name: str, path: Path | None = None, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.path = path
        self._clock = clock
        self._lines: list[LogLine] = []
        self._cond = threading.Condition()
        self._listeners: list[Callable[[LogLine], None]] = []
        self._file = None
        self.cursor = 0  # where the next expect() starts looking
        self.dead_reason: str | None = None  # set when the source died on its own

    # -- writing ---------------------------------------------------------------------------

    def open(self) -> None:
        if self.path is not None and self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        with self._cond:
            if self._file is not None:
                self._file.close()
                self._file = None

    def feed(self, raw: str) -> LogLine:
        """Add one line (without its line end) and wake up whoever waits for it."""
        raw = raw.rstrip("\r\n")
        ticks, event, fields = parse_log_line(raw)
        with self._cond:
            line = LogLine(len(self._lines), self._clock(), raw, ticks, event, fields)
            self._lines.append(line)
            if self._file is not None:
                self._file.write(f"{line.t:.3f} {raw}\n")
                self._file.flush()
            listeners = list(self._listeners)
            self._cond.notify_all()
        for listener in listeners:
            listener(line)
        return line

    def note(self, text: str) -> LogLine:
        """A line from the rig itself (power cut, restart...), marked so it is never an event."""
        return self.feed(f"--- rig: {text}")

    def follow(self, stream: BinaryIO, on_end: Callable[[], None] | None = None) -> threading.Thread:
        """Start a daemon thread that feeds every line of `stream` until it ends."""

        def pump() -> None:
            try:
                for raw in iter(stream.readline, b""):
                    self.feed(raw.decode("utf-8", "replace"))
            except (OSError, ValueError):
                pass  # the stream was closed under us: the process was killed
            finally:
                if on_end is not None:
                    on_end()

        thread = threading.Thread(target=pump, name=f"log-{self.name}", daemon=True)
        thread.start()
        return thread

    def source_died(self, reason: str) -> None:
        """The firmware ended by itself: waits fail at once instead of timing out."""
        self.note(f"firmware ended: {reason}")
        with self._cond:
            self.dead_reason = reason
            self._cond.notify_all()

    def source_started(self) -> None:
        with self._cond:
            self.dead_reason = None

    def subscribe(self, listener: Callable[[LogLine], None]) -> None:
        """Call `listener(line)` for every line from now on (from the reader thread)."""
        with self._cond:
            self._listeners.append(listener)

    # -- reading ---------------------------------------------------------------------------

    @property
    def lines(self) -> list[LogLine]:
        with self._cond:
            return list(self._lines)

    def mark(self) -> int:
        """Index of the next line to arrive: pass it as `since=` to look only after now."""
        with self._cond:
            return len(self._lines)

    def find(self, event: str | None = None, since: int = 0,
             where: Callable[[LogLine], bool] | None = None, **fields: object) -> list[LogLine]:
        """Every line from `since` on that matches, without waiting."""
        wanted = {k: str(v) for k, v in fields.items()}
        with self._cond:
            return [ln for ln in self._lines[since:] if ln.matches(event, wanted, where)]

    def recent(self, count: int = RECENT_LINES) -> list[str]:
        with self._cond:
            return [ln.raw for ln in self._lines[-count:]]

    def expect(self, event: str | None = None, timeout: float = 10.0, since: int | None = None,
               where: Callable[[LogLine], bool] | None = None, **fields: object) -> LogLine:
        """Wait for the first line after the cursor (or `since`) that matches.

        `expect("CALL", state="active")` matches `... CALL state=active ...`.
        Moves the cursor past the line found; raises ExpectTimeout with the
        recent lines and the full log's path.
        """
        wanted = {k: str(v) for k, v in fields.items()}
        start = self.cursor if since is None else since
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self._lines):
                    line = self._lines[index]
                    index += 1
                    if line.matches(event, wanted, where):
                        self.cursor = line.index + 1
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self.dead_reason is not None:
                    raise FirmwareExited(describe(event, wanted, where), self.dead_reason,
                                         self.recent(), str(self.path) if self.path else None)
                self._cond.wait(remaining)
        raise ExpectTimeout(describe(event, wanted, where), timeout, self.recent(),
                            str(self.path) if self.path else None)

    def expect_any(self, events: Iterable[str], timeout: float = 10.0,
                   since: int | None = None) -> LogLine:
        names = set(events)
        return self.expect(None, timeout, since, where=lambda ln: ln.event in names)


def describe(event: str | None, fields: dict[str, str], where: object) -> str:
    text = event or "any line"
    if fields:
        text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
    if where is not None:
        text += " (with a condition)"
    return repr(text)
