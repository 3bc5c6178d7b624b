"""Plain-text progress bars for long steps (no dependency).

On a terminal the bar redraws in place; elsewhere (a log, a pipe) it prints a
line every 25 % so logs stay short.
"""

from __future__ import annotations

import sys
from typing import TextIO

_WIDTH = 30


def render(label: str, done: int, total: int, width: int = _WIDTH) -> str:
    """One bar, e.g. ``upload alarm.mpy [#######.......] 50% (1024/2048)``."""
    if total <= 0:
        fraction = 1.0
    else:
        fraction = min(max(done / total, 0.0), 1.0)
    filled = int(round(fraction * width))
    bar = "#" * filled + "." * (width - filled)
    return f"{label} [{bar}] {int(fraction * 100):3d}% ({done}/{total})"


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_quarter = -1

    def update(self, done: int) -> None:
        self.done = done
        if self._tty:
            self._stream.write("\r" + render(self.label, done, self.total))
            self._stream.flush()
            return
        quarter = 4 if self.total <= 0 else int(4 * min(done, self.total) / self.total)
        if quarter != self._last_quarter:
            self._last_quarter = quarter
            self._stream.write(render(self.label, done, self.total) + "\n")
            self._stream.flush()

    def advance(self, step: int = 1) -> None:
        self.update(self.done + step)

    def finish(self) -> None:
        self.update(self.total)
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()
