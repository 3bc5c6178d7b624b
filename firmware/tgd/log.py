# One line per event on stdout: "<ticks_ms> <EVENT> key=value ..." (docs/interfaces.md §2).
# The HIL rig parses these lines: values never contain spaces (they are replaced by "_").
import sys
import time


def _clean(value):
    s = str(value)
    if " " in s or "\n" in s or "\r" in s:
        s = s.replace(" ", "_").replace("\n", "_").replace("\r", "_")
    return s


class Log:
    """Event logger. `sink` (a callable taking one str line) replaces stdout, for tests."""

    def __init__(self, level="info", sink=None, ticks_ms=None):
        self._debug = level == "debug"
        self._sink = sink
        self._ticks = ticks_ms or time.ticks_ms
        self.dropped = 0  # lines that could not be made (MemoryError), not said yet

    def event(self, name, **fields):
        self._write(name, fields)

    def debug(self, name, **fields):
        if self._debug:
            self._write(name, fields)

    def error(self, where, what):
        """Something went wrong and was skipped: logged, never raised further (not even a
        MemoryError: see _write)."""
        try:
            if isinstance(what, BaseException):
                what = "%s:%s" % (type(what).__name__, what)
            self._write("ERROR", {"where": where, "what": what})
        except Exception:  # noqa: BLE001 - the line's own objects did not fit the heap
            self.dropped += 1

    def _write(self, name, fields):
        # Never raises: log.error runs in the handlers that keep the button loop, the AT
        # reader and the alarm's channels alive, and a MemoryError formatting a line there
        # once killed all three (campaign seed 10 on an updated handset: her next hold
        # dialled nothing). A line that cannot be made is counted, and said with the next.
        try:
            if self.dropped:
                self._emit("%d LOG_DROPPED n=%d" % (self._ticks(), self.dropped))
                self.dropped = 0
            parts = [str(self._ticks()), name]
            for key in sorted(fields):  # kwargs have no order in MicroPython: make lines stable
                parts.append("%s=%s" % (key, _clean(fields[key])))
            self._emit(" ".join(parts))
        except Exception:  # noqa: BLE001 - MemoryError included: a line is never worth a task
            self.dropped += 1

    def _emit(self, line):
        if self._sink is not None:
            self._sink(line)
            return
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except OSError:  # a broken console must never stop the alarm
            pass


class NullLog(Log):
    def _write(self, name, fields):
        pass
