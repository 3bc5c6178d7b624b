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

    def event(self, name, **fields):
        self._write(name, fields)

    def debug(self, name, **fields):
        if self._debug:
            self._write(name, fields)

    def error(self, where, what):
        """Something went wrong and was skipped: logged, never raised further."""
        if isinstance(what, BaseException):
            what = "%s:%s" % (type(what).__name__, what)
        self._write("ERROR", {"where": where, "what": what})

    def _write(self, name, fields):
        parts = [str(self._ticks()), name]
        for key in sorted(fields):  # kwargs have no order in MicroPython: make lines stable
            parts.append("%s=%s" % (key, _clean(fields[key])))
        line = " ".join(parts)
        if self._sink is not None:
            self._sink(line)
            return
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - a broken console must never stop the alarm
            pass


class NullLog(Log):
    def _write(self, name, fields):
        pass
